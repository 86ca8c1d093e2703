// Application state <-> URL query string. Every view is a deep link; back/forward restore it.
import type { Manifest } from './data/types';

export const VIEWS = ['search', 'map', 'compare', 'explorer', 'curate', 'about'] as const;
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
}

function pick<T>(value: T | undefined | null, allowed: readonly T[], fallback: T): T {
  return value !== undefined && value !== null && allowed.includes(value) ? value : fallback;
}

/** Defaults make the first screen useful: first dataset, first model's deepest layer, cosine, image 0. */
export function parseState(params: URLSearchParams, manifest: Manifest): AppState {
  const datasets = manifest.datasets.map((d) => d.id);
  const dataset = pick(params.get('dataset'), datasets, datasets[0]!);
  const modelIds = manifest.models.map((m) => m.id);
  const model = pick(params.get('model'), modelIds, modelIds[0]!);
  const layers = manifest.models.find((m) => m.id === model)!.layers.map((l) => l.name);
  const layer = pick(params.get('layer'), layers, layers[layers.length - 1]!);
  const metricIds = manifest.metrics.map((m) => m.id);
  const metric = pick(params.get('metric'), metricIds, metricIds.includes('cosine') ? 'cosine' : metricIds[0]!);
  const poolingIds = manifest.poolings.map((p) => p.id);
  const pooling = pick(params.get('pooling'), poolingIds, poolingIds[0]!);
  const size = manifest.datasets.find((d) => d.id === dataset)!.size;
  const qRaw = params.get('q');
  const qNum = qRaw === null ? 0 : qRaw === '' || qRaw === 'none' ? null : Number(qRaw);
  const q = qNum !== null && Number.isInteger(qNum) && qNum >= 0 && qNum < size ? qNum : qRaw === 'none' ? null : size > 0 ? 0 : null;
  return {
    view: pick(params.get('view') as View | null, VIEWS, 'search'),
    dataset,
    model,
    layer,
    metric,
    pooling,
    q,
    gallery: pick(params.get('gallery') as GalleryMode | null, ['all', 'class'] as const, 'all'),
  };
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
  return next;
}

function closestByDepth<T extends { depth: number }>(layers: readonly T[], depth: number): T {
  let best = layers[layers.length - 1]!;
  for (const l of layers) if (Math.abs(l.depth - depth) < Math.abs(best.depth - depth)) best = l;
  return best;
}
