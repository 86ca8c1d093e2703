import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { buildGrid, forEachInBox, nearestInGrid } from './pointgrid';
import { nearestPoint, plotTransform, type PlotTransform } from './score';

function points(n: number, seed: number): Float32Array {
  let a = seed;
  const r = () => ((a = (a * 1103515245 + 12345) >>> 0) / 2 ** 32);
  return Float32Array.from({ length: 2 * n }, r);
}

describe('point grid', () => {
  it('holds every point exactly once', () => {
    const xy = points(1000, 1);
    const g = buildGrid(xy, 7);
    const seen: number[] = [];
    forEachInBox(g, 0, 0, 1, 1, (i) => seen.push(i));
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });

  it('finds the same point as the linear scan, zoomed or not', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 400 }), fc.integer({ min: 0, max: 1000 }), fc.double({ min: 0, max: 800, noNaN: true }), fc.double({ min: 0, max: 800, noNaN: true }), fc.double({ min: 1, max: 50, noNaN: true }), (n, seed, sx, sy, zoom) => {
      const xy = points(n, seed);
      const base = plotTransform(800, 800, 16);
      const t: PlotTransform = { scale: base.scale * zoom, ox: base.ox - base.scale * (zoom - 1) / 2, oy: base.oy - base.scale * (zoom - 1) / 2 };
      const grid = buildGrid(xy);
      expect(nearestInGrid(grid, t, sx, sy, 10)).toBe(nearestPoint(xy, t, sx, sy, 10));
    }), { numRuns: 300 });
  });
});
