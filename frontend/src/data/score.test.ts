import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  barFractions, bestCell, configIndex, formatCount, formatDistance, heatColor, knnRow, nearestPoint,
  plotTransform, rankWeight, searchScore, storedScore, toScreen,
} from './score';

describe('configIndex', () => {
  it('enumerates (model, layer) model by model, layer by layer', () => {
    const counts = [3, 2, 4];
    const all: number[] = [];
    counts.forEach((n, m) => { for (let l = 0; l < n; l++) all.push(configIndex(counts, m, l)); });
    expect(all).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });
  it('rejects positions out of range', () => {
    expect(() => configIndex([3], 1, 0)).toThrow(/model position 1/);
    expect(() => configIndex([3], 0, 3)).toThrow(/layer position 3/);
  });
});

describe('searchScore', () => {
  it('matches the documented formula: score·120 = Σ over matching ranks of (15 − i)', () => {
    const labels = [1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const s = searchScore(1, labels, 15);
    expect(s.same).toBe(4);
    expect(s.score * 120).toBeCloseTo(15 + 13 + 12 + 1, 10);
    expect(s.matches.filter(Boolean).length).toBe(4);
  });
  it('is 1 when all match, 0 when none match', () => {
    expect(searchScore(2, Array(15).fill(2), 15).score).toBeCloseTo(1, 12);
    expect(searchScore(2, Array(15).fill(1), 15).score).toBe(0);
  });
  it('property: in [0, 1], ·120 is an integer, and moving a match up never lowers it', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: 15, maxLength: 15 }), fc.nat(13), (m, i) => {
        const labels: number[] = m.map((x) => (x ? 7 : 0));
        const s = searchScore(7, labels, 15);
        expect(s.score).toBeGreaterThanOrEqual(0);
        expect(s.score).toBeLessThanOrEqual(1);
        expect(Math.abs(s.score * 120 - Math.round(s.score * 120))).toBeLessThan(1e-9);
        if (!m[i] && m[i + 1]) {
          const up = [...labels];
          [up[i], up[i + 1]] = [up[i + 1]!, up[i]!];
          expect(searchScore(7, up, 15).score).toBeGreaterThan(s.score);
        }
      }),
    );
  });
  it('weights fall linearly with rank', () => {
    expect(rankWeight(0, 15)).toBe(1);
    expect(rankWeight(14, 15)).toBeCloseTo(1 / 15);
    expect(rankWeight(15, 15)).toBe(0);
  });
});

describe('barFractions', () => {
  it('shrinks linearly with distance, to 1/5 at the farthest result', () => {
    const f = barFractions([2, 4, 8]);
    expect(f.map((x) => +x.toFixed(6))).toEqual([0.8, 0.6, 0.2]);
  });
  it('works for euclidean-scale distances where 1 − d would be negative', () => {
    const f = barFractions([12.5, 13, 40]);
    expect(f[0]).toBeGreaterThan(f[2]!);
    expect(f.every((x) => x >= 0.2 - 1e-9)).toBe(true);
  });
  it('a near-duplicate (d ≈ 0) does not collapse the other bars', () => {
    const f = barFractions([0, 0.00005, 0.002, 0.004]);
    expect(f[0]).toBe(1);
    expect(f[2]).toBeCloseTo(0.6, 6);
    expect(f[3]).toBeCloseTo(0.2, 6);
  });
  it('property: in [floor, 1], non-increasing for ascending distances, scale-free', () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ min: Math.fround(1e-6), max: Math.fround(1e6), noNaN: true }), { minLength: 1, maxLength: 30 }),
        fc.float({ min: Math.fround(1e-3), max: Math.fround(1e3), noNaN: true }),
        (ds, c) => {
          const sorted = [...ds].sort((a, b) => a - b);
          const f = barFractions(sorted);
          f.forEach((x, i) => {
            expect(x).toBeGreaterThanOrEqual(0.04);
            expect(x).toBeLessThanOrEqual(1);
            if (i > 0) expect(x).toBeLessThanOrEqual(f[i - 1]! + 1e-12);
          });
          const g = barFractions(sorted.map((d) => d * c));
          g.forEach((x, i) => expect(x).toBeCloseTo(f[i]!, 4));
        },
      ),
    );
  });
  it('never returns NaN for bad input', () => {
    expect(barFractions([NaN, -1, Infinity])).toEqual([0.04, 0.04, 0.04]);
    expect(barFractions([])).toEqual([]);
  });
});

describe('knnRow and storedScore', () => {
  it('reads row q of the distances and ids', () => {
    const table = { n: 2, k: 3, distances: new Float32Array([0.1, 0.2, 0.3, 1, 2, 3]), ids: new Uint16Array([1, 0, 0, 0, 1, 1]) };
    expect(knnRow(table, 1)).toEqual([{ id: 0, distance: 1 }, { id: 1, distance: 2 }, { id: 1, distance: 3 }]);
    expect(() => knnRow(table, 2)).toThrow(/out of range/);
  });
  it('reads a query row [pooling][configuration]: u8[pooling·C + c] / scale', () => {
    const row = new Uint8Array([0, 120, 60, 30]); // 2 poolings x 2 configurations
    expect(storedScore(row, 2, 1, 0, 120)).toBe(0.5);
    expect(storedScore(row, 2, 0, 1, 120)).toBe(1);
    expect(storedScore(row, 2, 1, 1, 10)).toBe(3);
    expect(() => storedScore(row, 2, 0, 2, 120)).toThrow(/configuration 2/);
    expect(() => storedScore(row, 2, 2, 0, 120)).toThrow(/pooling 2/);
  });
});

describe('bestCell', () => {
  it('finds the maximum of a ragged table, first one on ties', () => {
    expect(bestCell([[0.1, 0.5], [0.5, 0.2, 0.3]])).toEqual({ model: 0, layer: 1, value: 0.5 });
    expect(bestCell([])).toBeNull();
  });
});

describe('plot geometry', () => {
  it('maps the unit square into the padded box, y up, and finds points back', () => {
    const t = plotTransform(200, 100, 10);
    expect(toScreen(t, 0, 0)).toEqual([60, 90]);
    expect(toScreen(t, 1, 1)).toEqual([140, 10]);
    const xy = new Float32Array([0, 0, 1, 1, 0.5, 0.5]);
    expect(nearestPoint(xy, t, 101, 49, 5)).toBe(2);
    expect(nearestPoint(xy, t, 0, 0, 5)).toBe(-1);
  });
});

describe('formatting', () => {
  it('formats counts and distances compactly', () => {
    expect(formatCount(3228864)).toBe('3.2 M');
    expect(formatCount(999)).toBe('999');
    expect(formatDistance(0)).toBe('0');
    expect(formatDistance(0.0020031)).toBe('0.002003');
    expect(formatDistance(12345.6)).toBe('1.235e+4');
    expect(heatColor(0)).not.toBe(heatColor(1));
  });
});
