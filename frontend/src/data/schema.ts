// A small JSON Schema (draft 2020-12) checker for exactly the keywords docs/manifest.schema.json
// uses. Why not Ajv at run time: its generated code for this schema is ~5.5 KB gzip, a third of the
// explorer's first download; this is ~1 KB. Ajv stays the reference: src/data/manifest.test.ts
// checks both agree on valid and broken manifests. A keyword this file does not know throws (it
// must never be silently ignored), and that test runs on the real schema file.

export type Schema = boolean | { [keyword: string]: unknown };

/** Keywords that only annotate; they never make a value invalid. */
const ANNOTATIONS = new Set(['$schema', '$id', 'title', 'description', '$defs', '$comment']);

const typeOf = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' && Number.isInteger(v) ? 'integer' : typeof v;

const hasType = (v: unknown, t: string): boolean => {
  const actual = typeOf(v);
  return actual === t || (t === 'number' && actual === 'integer');
};

/** JSON equality for const/enum: values from JSON.parse (no cycles, no undefined). */
function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

const patterns = new Map<string, RegExp>();
const regex = (src: string): RegExp => {
  let r = patterns.get(src);
  if (!r) patterns.set(src, (r = new RegExp(src, 'u')));
  return r;
};

const show = (v: unknown): string => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? `${s.slice(0, 37)}…` : s;
};

/** JSON path of a problem, as a reader would write it: datasets[0].size */
const join = (path: string, key: string | number): string => (typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key);

/**
 * Returns the first problem of `value` against `schema` ("where: what"), or null when it is valid.
 * `root` resolves "#/…" references.
 */
export function schemaProblem(value: unknown, schema: Schema, root: Schema = schema, path = ''): string | null {
  if (schema === true) return null;
  if (schema === false) return `${path || 'value'}: not allowed`;
  const at = path || 'the manifest';
  const s = schema;
  const v = value as Record<string, unknown> & unknown[];
  for (const [kw, arg] of Object.entries(s)) {
    let p: string | null = null;
    switch (kw) {
      case 'type': {
        const types = Array.isArray(arg) ? (arg as string[]) : [arg as string];
        if (!types.some((t) => hasType(value, t))) p = `${at}: must be ${types.join(' or ')}, not ${typeOf(value)} ${show(value)}`;
        break;
      }
      case 'const':
        if (!same(value, arg)) p = `${at}: must be ${show(arg)}, not ${show(value)}`;
        break;
      case 'enum':
        if (!(arg as unknown[]).some((x) => same(value, x))) p = `${at}: must be one of ${(arg as unknown[]).map(show).join(', ')}, not ${show(value)}`;
        break;
      case 'minimum':
        if (typeof value === 'number' && value < (arg as number)) p = `${at}: must be ≥ ${arg as number}, not ${value}`;
        break;
      case 'maximum':
        if (typeof value === 'number' && value > (arg as number)) p = `${at}: must be ≤ ${arg as number}, not ${value}`;
        break;
      case 'minLength':
        // Code points, as JSON Schema counts them.
        if (typeof value === 'string' && [...value].length < (arg as number)) p = `${at}: must have at least ${arg as number} characters`;
        break;
      case 'pattern':
        if (typeof value === 'string' && !regex(arg as string).test(value)) p = `${at}: ${show(value)} does not match ${arg as string}`;
        break;
      case 'minItems':
        if (Array.isArray(value) && value.length < (arg as number)) p = `${at}: must have at least ${arg as number} item(s), has ${value.length}`;
        break;
      case 'maxItems':
        if (Array.isArray(value) && value.length > (arg as number)) p = `${at}: must have at most ${arg as number} item(s), has ${value.length}`;
        break;
      case 'items':
        if (Array.isArray(value)) for (let i = 0; i < value.length && !p; i++) p = schemaProblem(v[i], arg as Schema, root, join(path, i));
        break;
      case 'required':
        if (typeOf(value) === 'object') {
          const missing = (arg as string[]).filter((k) => !Object.hasOwn(v, k));
          if (missing.length) p = `${at}: missing ${missing.map((k) => `"${k}"`).join(', ')}`;
        }
        break;
      case 'properties':
        if (typeOf(value) === 'object') {
          for (const [k, sub] of Object.entries(arg as Record<string, Schema>)) {
            if (Object.hasOwn(v, k) && (p = schemaProblem(v[k as never], sub, root, join(path, k)))) break;
          }
        }
        break;
      case 'additionalProperties':
        if (typeOf(value) === 'object') {
          const known = (s.properties ?? {}) as Record<string, unknown>;
          for (const k of Object.keys(v)) {
            if (Object.hasOwn(known, k)) continue;
            if (arg === false) p = `${at}: unknown field "${k}"`;
            else p = schemaProblem(v[k as never], arg as Schema, root, join(path, k));
            if (p) break;
          }
        }
        break;
      case 'minProperties':
        if (typeOf(value) === 'object' && Object.keys(v).length < (arg as number)) p = `${at}: must have at least ${arg as number} field(s)`;
        break;
      case 'propertyNames':
        if (typeOf(value) === 'object') {
          for (const k of Object.keys(v)) {
            const bad = schemaProblem(k, arg as Schema, root, path);
            if (bad) {
              p = `${at}: field name "${k}" is not allowed (${bad.slice(bad.indexOf(':') + 1).trim()})`;
              break;
            }
          }
        }
        break;
      case 'not':
        if (schemaProblem(value, arg as Schema, root, path) === null) p = `${at}: ${show(value)} is not allowed here`;
        break;
      case 'if': {
        const branch = schemaProblem(value, arg as Schema, root, path) === null ? s.then : s.else;
        if (branch !== undefined) p = schemaProblem(value, branch as Schema, root, path);
        break;
      }
      case 'then':
      case 'else':
        break; // handled with "if"
      case 'oneOf': {
        const problems = (arg as Schema[]).map((sub) => schemaProblem(value, sub, root, path));
        const ok = problems.filter((x) => x === null).length;
        // No branch fits: the most specific complaint (the deepest path) says the most.
        if (ok === 0) p = problems.reduce((a, b) => ((b ?? '').split(':')[0]!.length > (a ?? '').split(':')[0]!.length ? b : a));
        else if (ok > 1) p = `${at}: matches more than one of the allowed forms`;
        break;
      }
      case '$ref': {
        const ref = arg as string;
        if (!ref.startsWith('#/')) throw new Error(`schema: only local "#/…" references are supported, not ${ref}`);
        const target = ref.slice(2).split('/').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], root);
        if (target === undefined) throw new Error(`schema: reference ${ref} points nowhere`);
        p = schemaProblem(value, target as Schema, root, path);
        break;
      }
      default:
        if (!ANNOTATIONS.has(kw)) throw new Error(`schema keyword "${kw}" is not supported by src/data/schema.ts: add it there`);
    }
    if (p) return p;
  }
  return null;
}
