// The dataset's browser-search features as downloaded: float32, float16, uint8, pca_uint8 or pca_u8u4
// (layouts and distances defined in convnet_search/browser_features.py, docs/bundle.md). Reading is
// typed-array views over the downloaded bytes (no copy, except float16 → float32 once); search is
// the Python twin's: the metric between the exact query and each *decoded* vector x̂, from the codes
// (q·x̂ and ‖x̂‖, the latter once at load), without rebuilding x̂. Pure functions, tested in
// features.test.ts against a brute-force reference and against distances Python computed on the same bytes.
import type { FeatureEncoding } from '../data/types';
import { distances, rowNorms, type LiveMetric } from './metrics';

export type { FeatureEncoding };
export const FEATURE_ENCODINGS: readonly FeatureEncoding[] = ['float32', 'float16', 'uint8', 'pca_uint8', 'pca_u8u4'];

export interface FeatureLayout {
  encoding: FeatureEncoding;
  n: number; // vectors
  dim: number; // the model output's dimension (the query's length)
  dims: number; // stored coordinates per vector: dim, or the number of principal axes
}

/** pca_u8u4: the leading axes stored in 8 bits (the rest in 4, two per byte). */
export const u8u4Head = (dims: number) => Math.floor(dims / 4);

/** Bytes of a file in this layout (browser_features.Layout.nbytes). */
export function layoutBytes({ encoding, n, dim, dims }: FeatureLayout): number {
  if (encoding === 'float32') return 4 * n * dim;
  if (encoding === 'float16') return 2 * n * dim;
  if (encoding === 'pca_u8u4') {
    const head = u8u4Head(dims);
    return 4 * (dim + dims * dim) + 8 * dims + n * (head + (dims - head) / 2);
  }
  return (encoding === 'pca_uint8' ? 4 * (dim + dims * dim) : 0) + 8 * n + n * dims;
}

/** A features file, read. Float kinds have `rows`; quantized kinds the per-vector terms and codes. */
export interface FeatureIndex {
  layout: FeatureLayout;
  rows?: Float32Array; // [n·dim]
  rowNorms?: Float64Array; // ‖row‖ of the float rows, ‖x̂‖ of the quantized ones
  mean?: Float32Array; // [dim] (pca_uint8)
  basis?: Float32Array; // [dims·dim], orthonormal rows (pca_uint8)
  low?: Float32Array; // [n], per axis [dims] for pca_u8u4
  step?: Float32Array; // [n], per axis [dims] for pca_u8u4
  code?: Uint8Array; // [n·dims]; pca_u8u4: [n·head]
  nibbles?: Uint8Array; // pca_u8u4: [n·(dims − head)/2], axis head + 2j in the low nibble of byte j
}

let halfTable: Float32Array | null = null;
/** float16 bit pattern → float32 value, for all 65,536 patterns (built once, 256 KB). */
function halfToFloat(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const f = h & 0x3ff;
    t[h] = e === 0 ? sign * f * 2 ** -24 : e === 31 ? (f ? NaN : sign * Infinity) : sign * (1 + f / 1024) * 2 ** (e - 15);
  }
  return (halfTable = t);
}

/** Reads a downloaded file; throws if its size does not match the layout. Little-endian hosts only
 * (every browser the page supports). */
export function readFeatures(buf: ArrayBuffer, layout: FeatureLayout): FeatureIndex {
  const want = layoutBytes(layout);
  if (buf.byteLength !== want) {
    throw new Error(`${buf.byteLength} bytes, the ${layout.encoding} layout of ${layout.n} images × ${layout.dim} dims (${layout.dims} stored) needs ${want}`);
  }
  const { encoding, n, dim, dims } = layout;
  if (encoding === 'float32' || encoding === 'float16') {
    let rows: Float32Array;
    if (encoding === 'float32') rows = new Float32Array(buf);
    else {
      const half = new Uint16Array(buf);
      const table = halfToFloat();
      rows = new Float32Array(half.length);
      for (let i = 0; i < half.length; i++) rows[i] = table[half[i]!]!;
    }
    return { layout, rows, rowNorms: rowNorms(rows, dim) };
  }
  if (encoding === 'pca_u8u4' && dims % 8 !== 0) throw new Error(`pca_u8u4 needs a multiple of 8 axes, got ${dims}`);
  let at = 0;
  const f32 = (count: number) => {
    const a = new Float32Array(buf, at, count);
    at += 4 * count;
    return a;
  };
  const pca = encoding !== 'uint8';
  const mean = pca ? f32(dim) : undefined;
  const basis = pca ? f32(dims * dim) : undefined;
  if (encoding === 'pca_u8u4') {
    const head = u8u4Head(dims);
    const low = f32(dims);
    const step = f32(dims);
    const code = new Uint8Array(buf, at, n * head);
    const nibbles = new Uint8Array(buf, at + n * head, (n * (dims - head)) / 2);
    const f: FeatureIndex = { layout, mean, basis, low, step, code, nibbles };
    f.rowNorms = decodedNorms(f);
    return f;
  }
  const low = f32(n);
  const step = f32(n);
  const code = new Uint8Array(buf, at, n * dims);
  const f: FeatureIndex = { layout, ...(pca ? { mean, basis } : {}), low, step, code };
  f.rowNorms = decodedNorms(f);
  return f;
}

/** Stored coordinate r of vector i: low + step·code, per vector (uint8, pca_uint8) or per axis (pca_u8u4). */
function coordAt(f: FeatureIndex): (i: number, r: number) => number {
  const { low, step, code, nibbles } = f as Required<Pick<FeatureIndex, 'low' | 'step' | 'code'>> & FeatureIndex;
  const dims = f.layout.dims;
  if (!nibbles) return (i, r) => low[i]! + step[i]! * code[i * dims + r]!;
  const head = u8u4Head(dims);
  const half = (dims - head) / 2;
  return (i, r) => {
    if (r < head) return low[r]! + step[r]! * code[i * head + r]!;
    const t = r - head;
    const b = nibbles[i * half + (t >> 1)]!;
    return low[r]! + step[r]! * (t & 1 ? b >> 4 : b & 15);
  };
}

/** ‖x̂‖ of every vector, once at load. x̂ = mean + basisᵀ·c (orthonormal rows): ‖x̂‖² = ‖mean‖² + 2 (basis·mean)·c + ‖c‖². */
function decodedNorms(f: FeatureIndex): Float64Array {
  const { n, dim, dims } = f.layout;
  const { mean, basis } = f;
  const meanAxes = mean && basis ? project(basis, mean, dims, dim) : null;
  let mm = 0;
  if (mean) for (let j = 0; j < dim; j++) mm += mean[j]! * mean[j]!;
  const at = coordAt(f);
  const norms = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let cc = 0;
    let cm = 0;
    for (let r = 0; r < dims; r++) {
      const c = at(i, r);
      cc += c * c;
      if (meanAxes) cm += c * meanAxes[r]!;
    }
    norms[i] = Math.sqrt(Math.max(0, mm + 2 * cm + cc));
  }
  return norms;
}

/** basis·v: v [dim] onto the stored axes, float64 [dims]. */
function project(basis: Float32Array, v: ArrayLike<number>, dims: number, dim: number): Float64Array {
  const out = new Float64Array(dims);
  for (let r = 0; r < dims; r++) {
    let s = 0;
    const o = r * dim;
    for (let j = 0; j < dim; j++) s += basis[o + j]! * v[j]!;
    out[r] = s;
  }
  return out;
}

/**
 * The distance the page ranks by, from the exact query `q` to every vector of `f`
 * (browser_features.search_distances): the metric between q and the decoded vector x̂, with
 * q·x̂ = q·mean + (basis·q)·c for the dot-product metrics; Minkowski on x̂ (uint8) or, for
 * pca_uint8, in the principal subspace: ‖basis·(q − mean) − c‖ₚ.
 */
export function searchDistances(q: Float32Array, f: FeatureIndex, metric: LiveMetric, p = 3): Float64Array {
  const { n, dim, dims } = f.layout;
  if (q.length !== dim) throw new Error(`query has ${q.length} values, features have ${dim}`);
  if (f.rows) return distances(q, f.rows, dim, metric, p, f.rowNorms);
  const { low, step, code, mean, basis, rowNorms: norms } = f as Required<Pick<FeatureIndex, 'low' | 'step' | 'code' | 'rowNorms'>> & FeatureIndex;
  const pca = basis && mean;
  // The query in stored coordinates: q itself (uint8), or basis·q (pca_uint8).
  const qs = pca ? project(basis, q, dims, dim) : Float64Array.from(q);
  const out = new Float64Array(n);
  if (metric === 'minkowski') {
    if (!(p >= 1) || !Number.isFinite(p)) throw new Error(`minkowski p must be a finite number ≥ 1, got ${p}`);
    if (pca) {
      const ma = project(basis, mean, dims, dim);
      for (let r = 0; r < dims; r++) qs[r]! -= ma[r]!;
    }
    if (f.nibbles) {
      const at = coordAt(f);
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let r = 0; r < dims; r++) {
          const d = Math.abs(qs[r]! - at(i, r));
          s += p === 3 ? d * d * d : d ** p; // p = 3 (the default): no Math.pow
        }
        out[i] = s ** (1 / p);
      }
      return out;
    }
    for (let i = 0; i < n; i++) {
      const o = i * dims;
      const lo = low[i]!;
      const st = step[i]!;
      let s = 0;
      if (p === 3) {
        for (let r = 0; r < dims; r++) {
          const d = Math.abs(qs[r]! - (lo + st * code[o + r]!));
          s += d * d * d;
        }
      } else for (let r = 0; r < dims; r++) s += Math.abs(qs[r]! - (lo + st * code[o + r]!)) ** p;
      out[i] = s ** (1 / p);
    }
    return out;
  }
  let qMean = 0; // q·mean
  if (pca) for (let j = 0; j < dim; j++) qMean += q[j]! * mean[j]!;
  let qq = 0;
  for (let j = 0; j < dim; j++) qq += q[j]! * q[j]!;
  const qn = Math.sqrt(qq);
  const dot = f.nibbles ? axisScaledDots(qs, f) : vectorScaledDots(qs, f);
  for (let i = 0; i < n; i++) {
    dot[i]! += qMean;
    const xn = norms[i]!;
    if (metric === 'cosine') {
      const den = qn * xn;
      out[i] = den > 0 ? Math.min(2, Math.max(0, 1 - dot[i]! / den)) : 1;
    } else {
      const sq = Math.max(0, qq + xn * xn - 2 * dot[i]!);
      out[i] = metric === 'sqeuclidean' ? sq : Math.sqrt(sq);
    }
  }
  return out;
}

/** qs·c_i with per-vector terms (uint8, pca_uint8): low_i·Σqs + step_i·(qs·code_i). */
function vectorScaledDots(qs: Float64Array, f: FeatureIndex): Float64Array {
  const { n, dims } = f.layout;
  const low = f.low!;
  const step = f.step!;
  let qSum = 0;
  for (let r = 0; r < dims; r++) qSum += qs[r]!;
  const out = codeDots(qs, f.code!, n, dims); // the one O(n·dims) loop of a search
  for (let i = 0; i < n; i++) out[i] = low[i]! * qSum + step[i]! * out[i]!;
  return out;
}

/** qs·c_i with per-axis terms (pca_u8u4): Σ qs_r·low_r + Σ (qs_r·step_r)·code_ir, 8-bit then 4-bit codes. */
function axisScaledDots(qs: Float64Array, f: FeatureIndex): Float64Array {
  const { n, dims } = f.layout;
  const head = u8u4Head(dims);
  const low = f.low!;
  const step = f.step!;
  let base = 0;
  const w = new Float64Array(dims);
  for (let r = 0; r < dims; r++) {
    base += qs[r]! * low[r]!;
    w[r] = qs[r]! * step[r]!;
  }
  const out = codeDots(w.subarray(0, head), f.code!, n, head);
  const tail = nibbleDots(w.subarray(head), f.nibbles!, n, dims - head);
  for (let i = 0; i < n; i++) out[i] = base + out[i]! + tail[i]!;
  return out;
}

/**
 * ws · code_i for 4-bit codes, two per byte (axis 2j in the low nibble of byte j). Like codeDots:
 * whole 32-bit words (8 codes) when the rows allow it, else byte by byte.
 */
export function nibbleDots(ws: Float64Array, nibbles: Uint8Array, n: number, count: number): Float64Array {
  const out = new Float64Array(n);
  const perRow = count / 2;
  if (perRow % 4 === 0 && nibbles.byteOffset % 4 === 0) {
    const words = new Uint32Array(nibbles.buffer, nibbles.byteOffset, (n * perRow) / 4);
    for (let i = 0, o = 0; i < n; i++) {
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let r = 0; r < count; r += 8, o++) {
        const x = words[o]!;
        s0 += ws[r]! * (x & 15) + ws[r + 4]! * ((x >>> 16) & 15);
        s1 += ws[r + 1]! * ((x >>> 4) & 15) + ws[r + 5]! * ((x >>> 20) & 15);
        s2 += ws[r + 2]! * ((x >>> 8) & 15) + ws[r + 6]! * ((x >>> 24) & 15);
        s3 += ws[r + 3]! * ((x >>> 12) & 15) + ws[r + 7]! * (x >>> 28);
      }
      out[i] = s0 + s1 + s2 + s3;
    }
    return out;
  }
  for (let i = 0; i < n; i++) {
    const o = i * perRow;
    let s = 0;
    for (let j = 0; j < perRow; j++) {
      const b = nibbles[o + j]!;
      s += ws[2 * j]! * (b & 15) + ws[2 * j + 1]! * (b >> 4);
    }
    out[i] = s;
  }
  return out;
}

/**
 * qs · code_i for every vector i, in float64 without decoding a code. When the rows are whole
 * 32-bit words (dims % 4 = 0, aligned: every uint8 / pca_uint8 file of a real layer) the codes
 * are read 4 at a time as one uint32 with 4 partial sums: 2.2× the byte-at-a-time loop in V8
 * (13 vs 29 ms at 100,000 × 256, measured in Node 20; sums differ from the sequential order by
 * float64 rounding only). Little-endian, like readFeatures.
 */
export function codeDots(qs: Float64Array, code: Uint8Array, n: number, dims: number): Float64Array {
  const out = new Float64Array(n);
  if (dims % 4 === 0 && code.byteOffset % 4 === 0) {
    const words = new Uint32Array(code.buffer, code.byteOffset, (n * dims) / 4);
    for (let i = 0, o = 0; i < n; i++) {
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let r = 0; r < dims; r += 4, o++) {
        const w = words[o]!;
        s0 += qs[r]! * (w & 255);
        s1 += qs[r + 1]! * ((w >>> 8) & 255);
        s2 += qs[r + 2]! * ((w >>> 16) & 255);
        s3 += qs[r + 3]! * (w >>> 24);
      }
      out[i] = s0 + s1 + s2 + s3;
    }
    return out;
  }
  for (let i = 0; i < n; i++) {
    const o = i * dims;
    let sc = 0;
    for (let r = 0; r < dims; r++) sc += qs[r]! * code[o + r]!;
    out[i] = sc;
  }
  return out;
}
