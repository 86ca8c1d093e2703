// Python writes → TS reads: features.fixture.bin holds the four encodings of the same 50 vectors, as
// convnet_search/browser_features.py writes them (tests/test_browser_features.py generates it), and
// features.fixture.json the distances Python's search_distances computed from those bytes.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { codeDots, nibbleDots, FEATURE_ENCODINGS, layoutBytes, readFeatures, searchDistances, type FeatureIndex, type FeatureLayout } from './features';
import { distances, LIVE_METRICS, topK, type LiveMetric } from './metrics';

interface Case {
  layout: FeatureLayout;
  offset: number;
  bytes: number;
  distances: Record<LiveMetric, number[][]>;
}
const doc = JSON.parse(readFileSync(new URL('./features.fixture.json', import.meta.url), 'utf8')) as { queries: number[][]; p: number; cases: Record<string, Case> };
const blob = readFileSync(new URL('./features.fixture.bin', import.meta.url));
const bytesOf = (c: Case) => blob.buffer.slice(blob.byteOffset + c.offset, blob.byteOffset + c.offset + c.bytes);
const queries = doc.queries.map((q) => Float32Array.from(q));

/** Brute-force reference: rebuild every decoded vector x̂, then metrics.ts's exact distances. */
function decodedRows(f: FeatureIndex): Float32Array {
  const { n, dim, dims } = f.layout;
  if (f.rows) return f.rows;
  const out = new Float32Array(n * dim);
  // pca_u8u4: per-axis terms; the first dims/4 codes are bytes, the rest nibbles (low one first)
  const head = Math.floor(dims / 4);
  const codeOf = (i: number, r: number) => {
    if (!f.nibbles) return f.code![i * dims + r]!;
    if (r < head) return f.code![i * head + r]!;
    const b = f.nibbles[i * ((dims - head) / 2) + Math.floor((r - head) / 2)]!;
    return (r - head) % 2 ? b >> 4 : b & 15;
  };
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < dim; j++) {
      let v = f.mean ? f.mean[j]! : 0;
      for (let r = 0; r < dims; r++) {
        const c = f.nibbles ? f.low![r]! + f.step![r]! * codeOf(i, r) : f.low![i]! + f.step![i]! * codeOf(i, r);
        if (f.basis) v += c * f.basis[r * dim + j]!;
        else if (r === j) v = c;
      }
      out[i * dim + j] = v;
    }
  }
  return out;
}

describe('browser features (fixture written by Python)', () => {
  it('has every encoding, each file the size its layout says', () => {
    expect(Object.keys(doc.cases).sort()).toEqual([...FEATURE_ENCODINGS].sort());
    for (const c of Object.values(doc.cases)) expect(layoutBytes(c.layout)).toBe(c.bytes);
  });

  for (const [enc, c] of Object.entries(doc.cases)) {
    it(`${enc}: the page's distances equal Python's for every metric`, () => {
      const f = readFeatures(bytesOf(c), c.layout);
      for (const metric of LIVE_METRICS) {
        queries.forEach((q, qi) => {
          const got = searchDistances(q, f, metric, doc.p);
          const want = c.distances[metric][qi]!;
          // Python sums Minkowski's terms in float32 (speed at 100k): agreement to 1e-6, relative.
          got.forEach((d, i) => expect(Math.abs(d - want[i]!)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want[i]!))));
          expect(topK(got, 15).map((h) => h.id)).toEqual(topK(Float64Array.from(want), 15).map((h) => h.id));
        });
      }
    });

    it(`${enc}: equals brute force on the decoded vectors${enc.startsWith('pca') ? ' (Minkowski: in the principal subspace)' : ''}`, () => {
      const f = readFeatures(bytesOf(c), c.layout);
      const rows = decodedRows(f);
      for (const metric of LIVE_METRICS) {
        if (enc.startsWith('pca') && metric === 'minkowski') continue; // by definition not on x̂; the Python fixture covers it
        for (const q of queries) {
          const want = distances(q, rows, c.layout.dim, metric, doc.p);
          searchDistances(q, f, metric, doc.p).forEach((d, i) => expect(d).toBeCloseTo(want[i]!, 4));
        }
      }
    });
  }

  it('codeDots: word-at-a-time equals the byte-at-a-time sum, and ranks the same', () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (const [n, dims, offset] of [[500, 64, 0], [300, 12, 8], [200, 10, 0], [100, 16, 2]] as const) {
      const buf = new ArrayBuffer(offset + n * dims);
      const code = new Uint8Array(buf, offset, n * dims);
      for (let i = 0; i < code.length; i++) code[i] = Math.floor(rand() * 256);
      const qs = Float64Array.from({ length: dims }, () => rand() * 2 - 1);
      const want = new Float64Array(n);
      for (let i = 0; i < n; i++) for (let r = 0; r < dims; r++) want[i]! += qs[r]! * code[i * dims + r]!;
      const got = codeDots(qs, code, n, dims);
      got.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(want[i]!))));
      expect(topK(got, 15).map((h) => h.id)).toEqual(topK(want, 15).map((h) => h.id));
    }
  });

  it('nibbleDots: word-at-a-time equals the nibble-by-nibble sum (low nibble first), and ranks the same', () => {
    let seed = 11;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (const [n, count, offset] of [[500, 48, 0], [300, 16, 4], [200, 6, 0], [100, 8, 1]] as const) {
      const buf = new ArrayBuffer(offset + (n * count) / 2);
      const packed = new Uint8Array(buf, offset, (n * count) / 2);
      for (let i = 0; i < packed.length; i++) packed[i] = Math.floor(rand() * 256);
      const ws = Float64Array.from({ length: count }, () => rand() * 2 - 1);
      const want = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        for (let r = 0; r < count; r++) {
          const b = packed[i * (count / 2) + Math.floor(r / 2)]!;
          want[i]! += ws[r]! * (r % 2 ? Math.floor(b / 16) : b % 16);
        }
      }
      const got = nibbleDots(ws, packed, n, count);
      got.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(want[i]!))));
      expect(topK(got, 15).map((h) => h.id)).toEqual(topK(want, 15).map((h) => h.id));
    }
  });

  it('refuses a file whose size does not match its layout', () => {
    const c = doc.cases.uint8!;
    expect(() => readFeatures(bytesOf(c).slice(1), c.layout)).toThrow(/bytes, the uint8 layout of 50 images × 12 dims \(12 stored\) needs/);
  });

  it('decodes float16 bit patterns exactly (normal, subnormal, zero, infinity)', () => {
    const halves = new Uint16Array([0x3c00, 0xc000, 0x0001, 0x0000, 0x7bff, 0x7c00]);
    const f = readFeatures(halves.buffer, { encoding: 'float16', n: 1, dim: 6, dims: 6 });
    expect(Array.from(f.rows!)).toEqual([1, -2, 2 ** -24, 0, 65504, Infinity]);
  });
});
