// Application state <-> URL query string. Every view is a deep link; back/forward restore it.
import type { BestConfig, Manifest } from './data/types';

export const VIEWS = ['search', 'map', 'compare', 'side', 'judge', 'explorer', 'curate', 'about'] as const;
export type View = (typeof VIEWS)[number];
export type GalleryMode = 'all' | 'class';

export interface AppState {
  view: View;
  dataset: string;
  model: string;
  layer: string;
  metric: string;
  pooling: string;
  /** Query image id, or null for none. */
  q: number | null;
  gallery: GalleryMode;
  /** Label field the scores are computed against ('' when the dataset has none). */
  field: string;
  /** What the map colours points by: a label field id, or 'folder' (the dataset's groups). */
  colour: string;
  /** Side-by-side columns ("model|layer|pooling|metric", 2–4), or null: the defaults (columnsOf). */
  cols: string[] | null;
}

export interface Column {
  model: string;
  layer: string;
  pooling: string;
  metric: string;
}

export const MAX_COLS = 4;

export function colKey(c: Column): string {
  return [c.model, c.layer, c.pooling, c.metric].join('|');
}

/** A column spec from the URL, or null if it names something the bundle lacks. */
export function parseCol(spec: string, m: Manifest): Column | null {
  const [model, layer, pooling, metric, ...rest] = spec.split('|');
  const ok = rest.length === 0 && m.models.find((x) => x.id === model)?.layers.some((l) => l.name === layer)
    && m.poolings.some((p) => p.id === pooling) && m.metrics.some((x) => x.id === metric);
  return ok ? { model: model!, layer: layer!, pooling: pooling!, metric: metric! } : null;
}

/**
 * The side-by-side columns: the URL's, else an early layer (the 3rd, or earlier in a model with
 * fewer) next to the last layer of the current model, pooling and metric.
 */
export function columnsOf(s: AppState, m: Manifest): Column[] {
  const cols = (s.cols ?? []).map((c) => parseCol(c, m)).filter((c): c is Column => c !== null);
  if (cols.length >= 2) return cols.slice(0, MAX_COLS);
  const layers = m.models.find((x) => x.id === s.model)!.layers;
  const early = layers[Math.max(0, Math.min(2, layers.length - 2))]!.name;
  return [early, layers[layers.length - 1]!.name].map((layer) => ({ model: s.model, layer, pooling: s.pooling, metric: s.metric }));
}

function pick<T>(value: T | undefined | null, allowed: readonly T[], fallback: T): T {
  return value !== undefined && value !== null && allowed.includes(value) ? value : fallback;
}

/**
 * Defaults make the first screen useful: first dataset, its best configuration among the models
 * with trained weights (`best`, from the engine), else the first model's deepest layer, cosine,
 * first pooling; image 0.
 */
export function parseState(params: URLSearchParams, manifest: Manifest): AppState {
  const datasets = manifest.datasets.map((d) => d.id);
  const dataset = pick(params.get('dataset'), datasets, datasets[0]!);
  const best = bestConfig(manifest, dataset, params.get('model'));
  const modelIds = manifest.models.map((m) => m.id);
  const model = pick(params.get('model'), modelIds, best?.model ?? modelIds[0]!);
  const layers = manifest.models.find((m) => m.id === model)!.layers.map((l) => l.name);
  const layer = pick(params.get('layer'), layers, best?.layer ?? layers[layers.length - 1]!);
  const metricIds = manifest.metrics.map((m) => m.id);
  const metric = pick(params.get('metric'), metricIds, best?.metric ?? (metricIds.includes('cosine') ? 'cosine' : metricIds[0]!));
  const poolingIds = manifest.poolings.map((p) => p.id);
  const pooling = pick(params.get('pooling'), poolingIds, best?.pooling ?? poolingIds[0]!);
  const size = manifest.datasets.find((d) => d.id === dataset)!.size;
  const qRaw = params.get('q');
  const qNum = qRaw === null ? 0 : qRaw === '' || qRaw === 'none' ? null : Number(qRaw);
  const q = qNum !== null && Number.isInteger(qNum) && qNum >= 0 && qNum < size ? qNum : qRaw === 'none' ? null : size > 0 ? 0 : null;
  const fieldIds = (manifest.datasets.find((d) => d.id === dataset)!.fields ?? []).map((f) => f.id);
  const field = pick(params.get('field'), fieldIds, fieldIds[0] ?? '');
  const colour = pick(params.get('colour'), [...fieldIds, 'folder'], field || 'folder');
  return {
    field,
    colour,
    view: pick(params.get('view') as View | null, VIEWS, 'search'),
    dataset,
    model,
    layer,
    metric,
    pooling,
    q,
    gallery: pick(params.get('gallery') as GalleryMode | null, ['all', 'class'] as const, 'all'),
    cols: parseCols(params.getAll('col'), manifest),
  };
}

function parseCols(specs: string[], m: Manifest): string[] | null {
  const ok = specs.filter((c) => parseCol(c, m) !== null).slice(0, MAX_COLS);
  return ok.length >= 2 ? ok : null;
}

/**
 * The dataset's best trained configuration, when it names things this manifest has and the URL
 * chose no other model (a deep link to another model keeps that model's own defaults).
 */
function bestConfig(manifest: Manifest, dataset: string, urlModel: string | null): BestConfig | null {
  const best = manifest.datasets.find((d) => d.id === dataset)?.best ?? null;
  if (!best || (urlModel !== null && urlModel !== best.model)) return null;
  const model = manifest.models.find((m) => m.id === best.model);
  const known = model && model.layers.some((l) => l.name === best.layer) && manifest.poolings.some((p) => p.id === best.pooling) && manifest.metrics.some((m) => m.id === best.metric);
  return known ? best : null;
}

/** Query string for a state; `keep` carries parameters that are not state (e.g. ?data=). */
export function stateToSearch(state: AppState, keep: URLSearchParams): string {
  const p = new URLSearchParams();
  const data = keep.get('data');
  if (data !== null) p.set('data', data);
  p.set('view', state.view);
  p.set('dataset', state.dataset);
  p.set('model', state.model);
  p.set('layer', state.layer);
  p.set('metric', state.metric);
  p.set('pooling', state.pooling);
  p.set('q', state.q === null ? 'none' : String(state.q));
  if (state.gallery !== 'all') p.set('gallery', state.gallery);
  if (state.field) p.set('field', state.field);
  p.set('colour', state.colour);
  for (const c of state.cols ?? []) p.append('col', c);
  return '?' + p.toString();
}

/** Apply a change, keeping the state consistent (a new model picks a valid layer, a new dataset resets q). */
export function applyPatch(state: AppState, patch: Partial<AppState>, manifest: Manifest): AppState {
  const next = { ...state, ...patch };
  const model = manifest.models.find((m) => m.id === next.model) ?? manifest.models[0]!;
  next.model = model.id;
  if (!model.layers.some((l) => l.name === next.layer)) {
    // Same relative depth in the new model: the comparison people want when switching models.
    const old = manifest.models.find((m) => m.id === state.model)?.layers.find((l) => l.name === state.layer);
    next.layer = closestByDepth(model.layers, old?.depth ?? 1).name;
  }
  if (patch.dataset !== undefined && patch.dataset !== state.dataset && patch.q === undefined) next.q = 0;
  // A dataset's own fields: keep the field by id when the new dataset has it, else its first.
  const fields = (manifest.datasets.find((d) => d.id === next.dataset)?.fields ?? []).map((f) => f.id);
  if (!fields.includes(next.field)) next.field = fields[0] ?? '';
  if (next.colour !== 'folder' && !fields.includes(next.colour)) next.colour = next.field || 'folder';
  return next;
}

function closestByDepth<T extends { depth: number }>(layers: readonly T[], depth: number): T {
  let best = layers[layers.length - 1]!;
  for (const l of layers) if (Math.abs(l.depth - depth) < Math.abs(best.depth - depth)) best = l;
  return best;
}
