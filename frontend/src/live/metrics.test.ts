import { describe, expect, test } from 'vitest';
import { LIVE_METRICS, distances, rowNorms, topK, type LiveMetric } from './metrics';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomMatrix(n: number, dim: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n * dim }, () => r() * 2 - 1);
}

/** Straightforward reference implementations of docs/bundle.md's definitions. */
function reference(q: number[], x: number[], metric: LiveMetric, p: number): number {
  const diff = q.map((v, i) => v - x[i]!);
  switch (metric) {
    case 'cosine': {
      const dot = q.reduce((s, v, i) => s + v * x[i]!, 0);
      const nq = Math.hypot(...q);
      const nx = Math.hypot(...x);
      return nq === 0 || nx === 0 ? 1 : 1 - dot / (nq * nx);
    }
    case 'euclidean':
      return Math.hypot(...diff);
    case 'sqeuclidean':
      return diff.reduce((s, d) => s + d * d, 0);
    case 'minkowski':
      return diff.reduce((s, d) => s + Math.abs(d) ** p, 0) ** (1 / p);
  }
}

describe('distances', () => {
  const dim = 7;
  const data = randomMatrix(20, dim, 1);
  const q = randomMatrix(1, dim, 2);
  for (const metric of LIVE_METRICS) {
    for (const p of metric === 'minkowski' ? [3, 1.5, 4] : [3]) {
      test(`${metric}${metric === 'minkowski' ? ` p=${p}` : ''} matches the definition`, () => {
        const d = distances(q, data, dim, metric, p);
        expect(d.length).toBe(20);
        for (let i = 0; i < 20; i++) {
          const row = Array.from(data.subarray(i * dim, (i + 1) * dim));
          expect(d[i]).toBeCloseTo(reference(Array.from(q), row, metric, p), 10);
        }
      });
    }
  }

  test('a row equal to the query is at distance 0 under every metric', () => {
    const row = data.slice(3 * dim, 4 * dim);
    for (const metric of LIVE_METRICS) {
      expect(distances(row, data, dim, metric)[3]).toBeCloseTo(0, 12);
    }
  });

  test('cosine: zero vectors are at distance 1, scaled copies at 0, opposite at 2', () => {
    const x = new Float32Array([1, 2, 3, 0, 0, 0, -2, -4, -6, 10, 20, 30]);
    const d = distances(new Float32Array([1, 2, 3]), x, 3, 'cosine');
    expect(Array.from(d)).toEqual([0, 1, 2, 0]);
    expect(Array.from(distances(new Float32Array(3), x, 3, 'cosine'))).toEqual([1, 1, 1, 1]);
  });

  test('cosine with precomputed norms equals cosine without', () => {
    const norms = rowNorms(data, dim);
    expect(Array.from(distances(q, data, dim, 'cosine', 3, norms))).toEqual(Array.from(distances(q, data, dim, 'cosine')));
  });

  test('tiny feature values (random-weight deep layers, ~1e-19) keep full relative precision', () => {
    const scale = 1e-19;
    const small = data.map((v) => v * scale);
    const d = distances(q.map((v) => v * scale), small, dim, 'cosine');
    const ref = distances(q, data, dim, 'cosine');
    for (let i = 0; i < 20; i++) expect(d[i]).toBeCloseTo(ref[i]!, 5);
  });

  test('rejects mismatched sizes and bad p, naming them', () => {
    expect(() => distances(new Float32Array(3), data, dim, 'euclidean')).toThrow(/3 values, features have 7/);
    expect(() => distances(q, data.subarray(1), dim, 'euclidean')).toThrow(/not a multiple of 7/);
    expect(() => distances(q, data, dim, 'minkowski', 0.5)).toThrow(/p must be/);
  });
});

describe('topK', () => {
  test('equals a full stable sort (ascending, ties to the smaller id) on random data with ties', () => {
    const r = rng(7);
    for (let trial = 0; trial < 50; trial++) {
      const n = 1 + Math.floor(r() * 300);
      const d = Float64Array.from({ length: n }, () => Math.floor(r() * 20) / 4);
      const k = Math.floor(r() * 25);
      const expected = Array.from(d, (distance, id) => ({ id, distance }))
        .sort((a, b) => a.distance - b.distance || a.id - b.id)
        .slice(0, k);
      expect(topK(d, k)).toEqual(expected);
    }
  });

  test('k larger than n returns everything; k = 0 nothing; NaN sorts last', () => {
    expect(topK(new Float64Array([3, 1, 2]), 10).map((h) => h.id)).toEqual([1, 2, 0]);
    expect(topK(new Float64Array([3, 1, 2]), 0)).toEqual([]);
    expect(topK(new Float64Array([NaN, 1, 2]), 3).map((h) => h.id)).toEqual([1, 2, 0]);
  });
});
