// Distances between one query vector and every row of a feature matrix, and top-k selection.
// Definitions are exactly docs/bundle.md's (the engine computes the stored neighbours with the
// same ones), in float64 so a few thousand float32 terms do not lose digits:
//   cosine      1 − x·y / (‖x‖‖y‖), a zero vector has distance 1 to everything
//   euclidean   ‖x − y‖₂
//   sqeuclidean ‖x − y‖₂²
//   minkowski   (Σ |xᵢ − yᵢ|ᵖ)^(1/p)
// Pure functions on typed arrays: no TF.js, no DOM, unit-tested in metrics.test.ts.
// The list of metrics is the engine's registry (convnet_search/metrics.py), generated into
// metricRegistry.ts; tests/test_metrics.py checks the two agree.

import { DEFAULT_MINKOWSKI_P, METRIC_IDS, type MetricId } from './metricRegistry';

export type LiveMetric = MetricId;
export const LIVE_METRICS: readonly LiveMetric[] = METRIC_IDS;

export interface Hit {
  id: number;
  distance: number;
}

export function isLiveMetric(m: string): m is LiveMetric {
  return (LIVE_METRICS as readonly string[]).includes(m);
}

/** Euclidean norm of every row of a row-major [n, dim] matrix. */
export function rowNorms(data: Float32Array, dim: number): Float64Array {
  const n = Math.floor(data.length / dim);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    const o = i * dim;
    for (let j = 0; j < dim; j++) {
      const v = data[o + j]!;
      s += v * v;
    }
    out[i] = Math.sqrt(s);
  }
  return out;
}

/**
 * Distance from `q` to each of the n rows of `data`. `norms` (from rowNorms) is only needed for
 * cosine; pass it to avoid recomputing it per query.
 */
export function distances(
  q: Float32Array,
  data: Float32Array,
  dim: number,
  metric: LiveMetric,
  p = DEFAULT_MINKOWSKI_P,
  norms?: Float64Array,
): Float64Array {
  if (q.length !== dim) throw new Error(`query has ${q.length} values, features have ${dim}`);
  if (data.length % dim !== 0) throw new Error(`feature matrix of ${data.length} values is not a multiple of ${dim}`);
  const n = data.length / dim;
  const out = new Float64Array(n);
  if (metric === 'cosine') {
    const rn = norms ?? rowNorms(data, dim);
    let qq = 0;
    for (let j = 0; j < dim; j++) qq += q[j]! * q[j]!;
    const qn = Math.sqrt(qq);
    for (let i = 0; i < n; i++) {
      const o = i * dim;
      let dot = 0;
      for (let j = 0; j < dim; j++) dot += q[j]! * data[o + j]!;
      const den = qn * rn[i]!;
      // Clamp: rounding can push x·y/(‖x‖‖y‖) a hair outside [-1, 1].
      out[i] = den > 0 ? Math.min(2, Math.max(0, 1 - dot / den)) : 1;
    }
    return out;
  }
  if (metric === 'euclidean' || metric === 'sqeuclidean') {
    for (let i = 0; i < n; i++) {
      const o = i * dim;
      let s = 0;
      for (let j = 0; j < dim; j++) {
        const d = q[j]! - data[o + j]!;
        s += d * d;
      }
      out[i] = metric === 'euclidean' ? Math.sqrt(s) : s;
    }
    return out;
  }
  if (!(p >= 1) || !Number.isFinite(p)) throw new Error(`minkowski p must be a finite number ≥ 1, got ${p}`);
  for (let i = 0; i < n; i++) {
    const o = i * dim;
    let s = 0;
    if (p === 3) {
      // Math.pow per element is ~10× slower than two multiplies; p = 3 is the bundle default.
      for (let j = 0; j < dim; j++) {
        const d = Math.abs(q[j]! - data[o + j]!);
        s += d * d * d;
      }
    } else {
      for (let j = 0; j < dim; j++) s += Math.abs(q[j]! - data[o + j]!) ** p;
    }
    out[i] = s ** (1 / p);
  }
  return out;
}

/** Is (da, ia) ranked after (db, ib)? Ascending distance, ties to the smaller id (as the .knn files). */
function after(da: number, ia: number, db: number, ib: number): boolean {
  return da > db || (da === db && ia > ib);
}

/**
 * The k smallest distances, ascending, ties broken by the smaller id. NaN distances sort last.
 * O(n log k) with a bounded max-heap, so 10,000 rows and k = 15 cost well under a millisecond.
 */
export function topK(dist: Float64Array, k: number): Hit[] {
  const kk = Math.max(0, Math.min(k, dist.length));
  const hd = new Float64Array(kk);
  const hi = new Int32Array(kk);
  let size = 0;
  const key = (d: number) => (Number.isNaN(d) ? Infinity : d);
  const siftDown = (start: number) => {
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < size && after(hd[l]!, hi[l]!, hd[m]!, hi[m]!)) m = l;
      if (r < size && after(hd[r]!, hi[r]!, hd[m]!, hi[m]!)) m = r;
      if (m === i) return;
      [hd[i], hd[m]] = [hd[m]!, hd[i]!];
      [hi[i], hi[m]] = [hi[m]!, hi[i]!];
      i = m;
    }
  };
  for (let id = 0; id < dist.length; id++) {
    const d = key(dist[id]!);
    if (size < kk) {
      let i = size++;
      hd[i] = d;
      hi[i] = id;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!after(hd[i]!, hi[i]!, hd[parent]!, hi[parent]!)) break;
        [hd[i], hd[parent]] = [hd[parent]!, hd[i]!];
        [hi[i], hi[parent]] = [hi[parent]!, hi[i]!];
        i = parent;
      }
    } else if (kk > 0 && after(hd[0]!, hi[0]!, d, id)) {
      hd[0] = d;
      hi[0] = id;
      siftDown(0);
    }
  }
  const hits: Hit[] = [];
  for (let i = 0; i < size; i++) hits.push({ id: hi[i]!, distance: hd[i]! });
  hits.sort((a, b) => (after(a.distance, a.id, b.distance, b.id) ? 1 : -1));
  return hits.map((h) => ({ id: h.id, distance: dist[h.id]! }));
}
