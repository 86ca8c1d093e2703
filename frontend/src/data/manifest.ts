// Everything the explorer checks about a manifest before it draws anything: the JSON Schema
// (docs/manifest.schema.json, imported as is: the one source of truth), then what a schema cannot
// say: sizes within what a browser tab can hold, references that exist, and URLs on this origin.
// A manifest is input from whoever hosts the bundle: nothing here may trust it.
import schemaJson from '../../../docs/manifest.schema.json';
import { sameOriginUrl } from './origin';
import { schemaProblem, type Schema } from './schema';
import type { Manifest } from './types';

/** Upper bounds the explorer accepts (docs/bundle.md, "Validation"). */
const LABEL_LIMIT = { uint8: 0x100, uint16: 0x10000, uint32: 2 ** 32 } as const;

export const LIMITS = {
  /** Neighbours per image: the search view draws k results; more is no longer a "search". */
  k: 1000,
  /** Images per dataset: 10 M × k=15 uint32 neighbour rows is already 1.2 GB per configuration. */
  images: 10_000_000,
  /** Feature dimension of a layer (the engine's own flatten limit, models.MAX_FLATTEN_DIM). */
  dim: 200_000,
  /** Network input side in pixels (the worker allocates an input tensor of this size). */
  inputSide: 4096,
  /** File names per names page. */
  namesPage: 65_536,
} as const;

const schema = schemaJson as Schema;

/** First schema problem of a parsed manifest, or null. */
export function manifestSchemaProblem(raw: unknown): string | null {
  return schemaProblem(raw, schema);
}

function firstDuplicate(ids: string[]): string | undefined {
  const seen = new Set<string>();
  return ids.find((id) => (seen.has(id) ? true : (seen.add(id), false)));
}

/**
 * What the schema cannot express, for a manifest that already passed it: bounds that keep the tab
 * alive (k, N, dimensions) and references to models, layers and datasets that must exist.
 */
export function manifestBoundsProblem(m: Manifest): string | null {
  if (m.k > LIMITS.k) return `k = ${m.k} neighbours per image is more than this explorer accepts (at most ${LIMITS.k})`;
  const dup = (what: string, ids: string[]) => {
    const d = firstDuplicate(ids);
    return d === undefined ? null : `${what} "${d}" is listed twice`;
  };
  const p = dup('dataset', m.datasets.map((d) => d.id)) ?? dup('model', m.models.map((x) => x.id)) ?? dup('metric', m.metrics.map((x) => x.id)) ?? dup('pooling', m.poolings.map((x) => x.id));
  if (p) return p;
  const lv = dup('thumbnail level', m.thumbnails.levels.map((l) => l.id));
  if (lv) return lv;
  if (!m.thumbnails.levels.some((l) => l.id === m.thumbnails.pack_level)) return `thumbnails.pack_level "${m.thumbnails.pack_level}" is not one of the thumbnail levels`;
  for (const d of m.datasets) {
    if (d.size > LIMITS.images) return `dataset "${d.id}" has size ${d.size}: more than this explorer accepts (at most ${LIMITS.images.toLocaleString('en')} images)`;
    // Each dataset stores min(k, N − 1) neighbours per image (bundle v3) and scores its top ones.
    if (d.k > m.k) return `dataset "${d.id}": k = ${d.k} is more than the manifest's k = ${m.k}`;
    if (d.k > d.size - 1) return `dataset "${d.id}": k = ${d.k} but it has only ${d.size} images (k must be at most N − 1 = ${d.size - 1})`;
    if (d.score.top > d.k) return `dataset "${d.id}": score.top = ${d.score.top} is more than its k = ${d.k}`;
    if (d.score.scale !== (d.score.top * (d.score.top + 1)) / 2) return `dataset "${d.id}": score.scale must be top(top+1)/2 = ${(d.score.top * (d.score.top + 1)) / 2}, not ${d.score.scale}`;
    if (d.id_dtype === 'uint16' && d.size > 65536) return `dataset "${d.id}": ${d.size} images cannot be numbered with uint16 ids`;
    if (d.classes.length > LABEL_LIMIT[d.label_dtype]) return `dataset "${d.id}": ${d.classes.length} classes cannot be numbered with ${d.label_dtype} labels`;
    // A names page is fetched whole to show one name: keep it small (the writer uses 256).
    if (d.names_page > LIMITS.namesPage) return `dataset "${d.id}": names_page ${d.names_page} is more than ${LIMITS.namesPage}`;
  }
  for (const model of m.models) {
    if (model.input_size.some((s) => s > LIMITS.inputSide)) return `model "${model.id}": input size ${model.input_size.join('×')} is larger than ${LIMITS.inputSide} px`;
    const d = dup(`model "${model.id}": layer`, model.layers.map((l) => l.name));
    if (d) return d;
    for (const l of model.layers) {
      const missing = m.poolings.find((p) => !(p.id in l.dims));
      if (missing) return `model "${model.id}", layer "${l.name}": no dimension for pooling "${missing.id}"`;
      const big = Object.entries(l.dims).find(([, dim]) => dim > LIMITS.dim);
      if (big) return `model "${model.id}", layer "${l.name}": ${big[0]} dimension ${big[1]} is more than this explorer accepts (at most ${LIMITS.dim})`;
    }
  }
  const bs = m.browser_search;
  if (bs) {
    const model = m.models.find((x) => x.id === bs.model);
    if (!model) return `browser_search.model "${bs.model}" is not one of the manifest's models`;
    if (bs.input_size.some((s) => s > LIMITS.inputSide)) return `browser_search.input_size ${bs.input_size.join('×')} is larger than ${LIMITS.inputSide} px`;
    for (const o of bs.outputs) {
      if (!model.layers.some((l) => l.name === o.layer)) return `browser_search.outputs: layer "${o.layer}" is not a layer of model "${model.id}"`;
      if (!m.poolings.some((p) => p.id === o.pooling)) return `browser_search.outputs: pooling "${o.pooling}" is not one of the manifest's poolings`;
      if (o.dim > LIMITS.dim) return `browser_search.outputs: layer "${o.layer}" has dimension ${o.dim} (at most ${LIMITS.dim})`;
    }
    if (!bs.outputs.some((o) => o.layer === bs.default_layer)) return `browser_search.default_layer "${bs.default_layer}" is not one of its outputs`;
    const missing = bs.datasets.find((id) => !m.datasets.some((d) => d.id === id));
    if (missing !== undefined) return `browser_search.datasets: "${missing}" is not one of the manifest's datasets`;
    for (const f of bs.features ?? []) {
      const out = bs.outputs.find((o) => o.layer === f.layer && o.pooling === f.pooling);
      if (!out) return `browser_search.features: layer "${f.layer}" with pooling "${f.pooling}" is not one of its outputs`;
      if (f.dims > out.dim) return `browser_search.features: ${f.layer}/${f.pooling} stores ${f.dims} dims of a ${out.dim}-dim output`;
    }
  }
  return null;
}

/** File templates that would send the explorer to another origin. */
export function manifestOriginProblem(m: Manifest, manifestUrl: string, origin: string): string | null {
  for (const [kind, template] of Object.entries(m.files)) {
    // Placeholder values are URL-encoded when filled, so they cannot change the origin.
    const r = sameOriginUrl(template.replace(/\{\w+\}/g, 'x'), manifestUrl, origin);
    if ('problem' in r) return `files.${kind}: ${r.problem}`;
  }
  return null;
}
