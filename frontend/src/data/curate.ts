// Curation lists (docs/bundle.md "Curation"): their types and the checks every file passes before
// the Curate view draws it (ids < N, labels < the number of classes, parallel arrays of one length).
import { BundleError } from './errors';

/** files.curate: one configuration's near-duplicate groups (most certain first) and top outliers. */
export interface CurateConfig {
  threshold: number;
  groups_total: number;
  /** First (up to 8) members of each listed group, ascending ids; group_size: its whole size. */
  groups: number[][];
  group_size: number[];
  group_min: number[];
  group_max: number[];
  outliers: number[];
  uniqueness: number[];
}

export interface LabelSuspects {
  total: number;
  ids: number[];
  given: number[];
  suggested: number[];
  margin: number[];
  self_confidence: number[];
  /** "<model>/<pooling>/<layer>/<metric>" whose vectors the label classifier saw; null: neighbour votes. */
  classifier: string | null;
}

/** files.curate_labels: per label field, its suspects, most confident first. */
export interface CurateLabels {
  fields: Record<string, LabelSuspects>;
}

const isId = (x: unknown, n: number): x is number => Number.isInteger(x) && (x as number) >= 0 && (x as number) < n;
const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

function ids(raw: unknown, n: number, what: string, url: string): number[] {
  if (!Array.isArray(raw) || !raw.every((x) => isId(x, n))) throw new BundleError(url, `"${what}" must be image ids below ${n}`);
  return raw as number[];
}

function nums(raw: unknown, len: number, what: string, url: string): number[] {
  if (!Array.isArray(raw) || raw.length !== len || !raw.every(isNum)) throw new BundleError(url, `"${what}" must be ${len} numbers`);
  return raw as number[];
}

function sizes(raw: unknown, groups: number[][], url: string): number[] {
  const s = nums(raw, groups.length, 'group_size', url);
  if (!s.every((x, i) => Number.isInteger(x) && x >= groups[i]!.length)) throw new BundleError(url, '"group_size" must be each group\'s size, at least its listed members');
  return s;
}

export function checkCurateConfig(raw: unknown, n: number, url = 'curate'): CurateConfig {
  const c = raw as Partial<CurateConfig> | null;
  if (c === null || typeof c !== 'object') throw new BundleError(url, 'not a JSON object');
  if (!isNum(c.threshold) || !Number.isInteger(c.groups_total)) throw new BundleError(url, '"threshold" and "groups_total" must be numbers');
  if (!Array.isArray(c.groups)) throw new BundleError(url, '"groups" must be a list of groups');
  const groups = c.groups.map((g, i) => {
    const m = ids(g, n, `groups[${i}]`, url);
    if (m.length < 2) throw new BundleError(url, `groups[${i}] has fewer than 2 images`);
    return m;
  });
  const outliers = ids(c.outliers, n, 'outliers', url);
  return {
    threshold: c.threshold, groups_total: c.groups_total as number, groups,
    group_size: sizes(c.group_size, groups, url),
    group_min: nums(c.group_min, groups.length, 'group_min', url), group_max: nums(c.group_max, groups.length, 'group_max', url),
    outliers, uniqueness: nums(c.uniqueness, outliers.length, 'uniqueness', url),
  };
}

export function checkCurateLabels(raw: unknown, n: number, classes: number, url = 'curate labels'): CurateLabels {
  const c = raw as { fields?: unknown } | null;
  if (c === null || typeof c !== 'object' || c.fields === null || typeof c.fields !== 'object') throw new BundleError(url, '"fields" must be an object');
  const fields: Record<string, LabelSuspects> = {};
  for (const [name, v] of Object.entries(c.fields as Record<string, Partial<LabelSuspects>>)) {
    const s = ids(v?.ids, n, `${name}.ids`, url);
    // "class" labels index the manifest's classes; other fields (issue 20's) carry their own ids
    const lim = name === 'class' ? classes : Number.MAX_SAFE_INTEGER;
    const given = ids(v?.given, lim, `${name}.given`, url);
    const suggested = ids(v?.suggested, lim, `${name}.suggested`, url);
    if (given.length !== s.length || suggested.length !== s.length) throw new BundleError(url, `${name}: "ids", "given" and "suggested" differ in length`);
    fields[name] = { total: Number(v?.total ?? s.length), ids: s, given, suggested, margin: nums(v?.margin, s.length, `${name}.margin`, url), self_confidence: nums(v?.self_confidence, s.length, `${name}.self_confidence`, url), classifier: typeof v?.classifier === 'string' ? v.classifier : null };
  }
  return { fields };
}
