// Pure score and geometry math for the explorer. No DOM, no fetch: unit-tested directly.
import type { KnnTable, Manifest, Neighbor } from './types';

/** Configuration index c of (model position, layer position), as docs/bundle.md defines it. */
export function configIndex(layerCounts: readonly number[], model: number, layer: number): number {
  if (model < 0 || model >= layerCounts.length) throw new RangeError(`model position ${model} out of range`);
  const count = layerCounts[model] ?? 0;
  if (layer < 0 || layer >= count) throw new RangeError(`layer position ${layer} out of range for model ${model}`);
  let c = 0;
  for (let m = 0; m < model; m++) c += layerCounts[m] ?? 0;
  return c + layer;
}

export function layerCounts(manifest: Manifest): number[] {
  return manifest.models.map((m) => m.layers.length);
}

/** Row q of a neighbour table: the k nearest images, ascending distance. */
export function knnRow(table: KnnTable, q: number): Neighbor[] {
  if (q < 0 || q >= table.n) throw new RangeError(`query ${q} out of range 0…${table.n - 1}`);
  const out: Neighbor[] = [];
  for (let i = 0; i < table.k; i++) {
    const j = q * table.k + i;
    out.push({ id: table.ids[j] ?? 0, distance: table.distances[j] ?? 0 });
  }
  return out;
}

/**
 * Bar lengths in [0, 1] for one query's results, meaningful for every metric: distances are
 * "smaller is closer" but their ranges differ (cosine 0…2, euclidean unbounded), so 1 − d (what
 * ConvNet Playground drew) is negative for euclidean. Scale per query instead: the bar shrinks
 * linearly with distance, from full at distance 0 to 1/5 at the farthest result shown
 * (bar = 1 − d / (1.25 · dmax)). Unlike dmin / d, a near-duplicate result (d ≈ 0) does not squash
 * every other bar to nothing. A floor keeps every bar visible.
 */
export const BAR_HEADROOM = 1.25;

export function barFractions(distances: readonly number[], floor = 0.04): number[] {
  const valid = distances.filter((d) => Number.isFinite(d) && d >= 0);
  const dmax = valid.length ? Math.max(...valid) : 0;
  return distances.map((d) => {
    if (d === 0) return 1;
    if (!Number.isFinite(d) || d < 0 || dmax === 0) return floor;
    return Math.max(floor, Math.min(1, 1 - d / (BAR_HEADROOM * dmax)));
  });
}

/** Weight of result rank i (0-based) among `top`: (top − i) / top. */
export function rankWeight(i: number, top: number): number {
  return i < top ? (top - i) / top : 0;
}

export interface SearchScore {
  /** Weighted score 0…1: Σ wᵢ·[same class] / Σ wᵢ over the first `top` results. */
  score: number;
  /** How many of the first `top` results share the query's class. */
  same: number;
  top: number;
  /** Per result: shares the query's class. */
  matches: boolean[];
}

/** ConvNet Playground's search score of one query from the labels of its ranked results. */
export function searchScore(queryLabel: number, resultLabels: readonly number[], top: number): SearchScore {
  const n = Math.min(top, resultLabels.length);
  let num = 0;
  let den = 0;
  let same = 0;
  const matches = resultLabels.map((l) => l === queryLabel);
  for (let i = 0; i < top; i++) den += rankWeight(i, top);
  for (let i = 0; i < n; i++) {
    if (matches[i]) {
      num += rankWeight(i, top);
      same++;
    }
  }
  return { score: den > 0 ? num / den : 0, same, top, matches };
}

/** Score of query q under configuration c, from a scores/<metric>.u8 file (stored as score·scale). */
/** One query's stored score under pooling position `pooling` and configuration `c`, from its row
 * [pooling][configuration] of `configs` configurations per pooling (see DataProvider.queryScores). */
/** A stored score numerator meaning "this query has no value in the field": not scored. */
export const NO_VALUE = 255;

export function storedScore(row: Uint8Array, configs: number, pooling: number, c: number, scale: number): number {
  const v = c >= 0 && c < configs ? row[pooling * configs + c] : undefined;
  if (v === undefined) throw new RangeError(`no stored score for pooling ${pooling}, configuration ${c}`);
  return v / scale;
}

export interface Cell {
  model: number;
  layer: number;
  value: number;
}

/** Best (highest) cell of a ragged [model][layer] table; ties go to the first in manifest order. */
export function bestCell(table: readonly (readonly number[])[]): Cell | null {
  let best: Cell | null = null;
  table.forEach((row, m) =>
    row.forEach((value, l) => {
      if (Number.isFinite(value) && (best === null || value > best.value)) best = { model: m, layer: l, value };
    }),
  );
  return best;
}

/** Colour ramp 0…1 → CSS colour for heatmaps (light yellow → deep blue, readable labels both ends). */
export function heatColor(t: number): string {
  const x = Math.max(0, Math.min(1, Number.isFinite(t) ? t : 0));
  const hue = 55 + x * 170; // yellow → blue
  const light = 92 - x * 55;
  return `hsl(${hue.toFixed(0)} 70% ${light.toFixed(0)}%)`;
}

/** Whether text on heatColor(t) should be light. */
export function heatTextLight(t: number): boolean {
  return t > 0.6;
}

/** Compact human number: 3228864 → "3.2 M". */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return '–';
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(1)} G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}

/** Distance with enough significant digits to tell neighbours apart at any scale. */
export function formatDistance(d: number): string {
  if (!Number.isFinite(d)) return String(d);
  if (d === 0) return '0';
  const a = Math.abs(d);
  if (a >= 1000) return d.toExponential(3);
  if (a < 0.001) return d.toExponential(2);
  return d.toPrecision(4);
}

/** Affine map of the unit square into a w×h box inset by pad, aspect kept, centred; y up. */
export interface PlotTransform {
  scale: number;
  ox: number;
  oy: number;
}

export function plotTransform(w: number, h: number, pad: number): PlotTransform {
  const scale = Math.max(1, Math.min(w, h) - 2 * pad);
  return { scale, ox: (w - scale) / 2, oy: (h - scale) / 2 };
}

export function toScreen(t: PlotTransform, x: number, y: number): [number, number] {
  return [t.ox + x * t.scale, t.oy + (1 - y) * t.scale];
}

/** Nearest point to (sx, sy) in screen space within maxDist px, or −1. Linear scan: 10⁴ points is ~0.1 ms. */
export function nearestPoint(
  xy: Float32Array,
  t: PlotTransform,
  sx: number,
  sy: number,
  maxDist: number,
): number {
  let best = -1;
  let bestD = maxDist * maxDist;
  const n = xy.length / 2;
  for (let i = 0; i < n; i++) {
    const [px, py] = toScreen(t, xy[2 * i] ?? 0, xy[2 * i + 1] ?? 0);
    const d = (px - sx) ** 2 + (py - sy) ** 2;
    if (d <= bestD) {
      bestD = d;
      best = i;
    }
  }
  return best;
}
