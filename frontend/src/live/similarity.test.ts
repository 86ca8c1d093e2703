import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { meanPool, similarityMap, whySimilar, type SpatialMap } from './similarity';

/** Brute force, straight from the definition, with the map as a nested array F[i][j][k]. */
function reference(f: number[][][], g: number[][][]): number[][] {
  const c = f[0]![0]!.length;
  const v = new Array<number>(c).fill(0);
  let n = 0;
  for (const row of g) for (const cell of row) {
    n++;
    for (let k = 0; k < c; k++) v[k] = v[k]! + cell[k]!;
  }
  for (let k = 0; k < c; k++) v[k] = v[k]! / n;
  const norm = (x: number[]) => Math.sqrt(x.reduce((s, a) => s + a * a, 0));
  return f.map((row) => row.map((cell) => {
    const a = norm(cell);
    const b = norm(v);
    if (a === 0 || b === 0) return 0;
    return cell.reduce((s, x, k) => s + x * v[k]!, 0) / (a * b);
  }));
}

const flat = (f: number[][][]): SpatialMap => ({ data: Float32Array.from(f.flat(2)), h: f.length, w: f[0]!.length, c: f[0]![0]!.length });

const maps = (h: number, w: number, c: number) =>
  fc.array(fc.array(fc.array(fc.oneof(fc.constant(0), fc.float({ min: -4, max: 4, noNaN: true, noDefaultInfinity: true })), { minLength: c, maxLength: c }), { minLength: w, maxLength: w }), { minLength: h, maxLength: h });

describe('similarity maps', () => {
  it('match the brute-force definition on random maps (zeros included)', () => {
    fc.assert(
      fc.property(
        fc.record({ h: fc.integer({ min: 1, max: 4 }), w: fc.integer({ min: 1, max: 4 }), h2: fc.integer({ min: 1, max: 4 }), w2: fc.integer({ min: 1, max: 4 }), c: fc.integer({ min: 1, max: 6 }) }).chain(({ h, w, h2, w2, c }) => fc.tuple(maps(h, w, c), maps(h2, w2, c))),
        ([q, r]) => {
          const got = whySimilar(flat(q), flat(r));
          const wantQ = reference(q, r).flat();
          const wantR = reference(r, q).flat();
          expect(got.query.length).toBe(wantQ.length);
          expect(got.result.length).toBe(wantR.length);
          wantQ.forEach((x, i) => expect(got.query[i]).toBeCloseTo(x, 4));
          wantR.forEach((x, i) => expect(got.result[i]).toBeCloseTo(x, 4));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('is 1 where a position points like the mean, 0 for an all-zero position or mean', () => {
    // 1×3 map, 2 channels: [1,0] [0,1] [0,0]; mean of the other image = [2, 0]
    const f: SpatialMap = { data: Float32Array.from([1, 0, 0, 1, 0, 0]), h: 1, w: 3, c: 2 };
    expect(Array.from(similarityMap(f, [2, 0]))).toEqual([1, 0, 0]);
    expect(Array.from(similarityMap(f, [0, 0]))).toEqual([0, 0, 0]);
    expect(Array.from(meanPool(f))).toEqual([1 / 3, 1 / 3]);
  });

  it('refuses mismatched shapes', () => {
    const f: SpatialMap = { data: new Float32Array(8), h: 2, w: 2, c: 2 };
    expect(() => similarityMap(f, [1, 2, 3])).toThrow(/3 values, the map 2 channels/);
    expect(() => whySimilar(f, { data: new Float32Array(3), h: 1, w: 1, c: 3 })).toThrow(/2 vs 3 channels/);
  });
});

describe('parity with Python (convnet_search/atlas.py similarity_map)', () => {
  it('gives the maps of the shared fixture (tests/test_similarity_parity.py checks it against Python)', async () => {
    const fx = (await import('./similarity.fixture.json')).default as { shape: [number, number, number]; query_map: number[]; result_map: number[]; query: number[]; result: number[] };
    const [h, w, c] = fx.shape;
    const got = whySimilar({ data: Float32Array.from(fx.query_map), h, w, c }, { data: Float32Array.from(fx.result_map), h, w, c });
    fx.query.forEach((x, i) => expect(got.query[i]).toBeCloseTo(x, 5));
    fx.result.forEach((x, i) => expect(got.result[i]).toBeCloseTo(x, 5));
    expect(got.query[0]).toBe(0);
  });
});
