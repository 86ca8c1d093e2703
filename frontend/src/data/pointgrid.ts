// Spatial grid over the unit square for picking among 10⁵ map points: the nearest point to the
// cursor looks at a few cells instead of every point (score.nearestPoint scans all of them).
import type { PlotTransform } from './score';

export interface PointGrid {
  g: number;
  /** Point ids sorted by cell; cell c holds ids[start[c] … start[c + 1]). */
  ids: Uint32Array;
  start: Uint32Array;
  xy: Float32Array;
}

const cellOf = (v: number, g: number) => Math.min(g - 1, Math.max(0, Math.floor(v * g)));

/** Counting sort of the points into g × g cells (about 8 points per cell by default). */
export function buildGrid(xy: Float32Array, g = Math.max(1, Math.min(512, Math.round(Math.sqrt(xy.length / 2 / 8))))): PointGrid {
  const n = xy.length / 2;
  const cell = new Uint32Array(n);
  const start = new Uint32Array(g * g + 1);
  for (let i = 0; i < n; i++) {
    const c = cellOf(xy[2 * i + 1]!, g) * g + cellOf(xy[2 * i]!, g);
    cell[i] = c;
    start[c + 1]!++;
  }
  for (let c = 0; c < g * g; c++) start[c + 1]! += start[c]!;
  const fill = start.slice(0, g * g);
  const ids = new Uint32Array(n);
  for (let i = 0; i < n; i++) ids[fill[cell[i]!]!++] = i;
  return { g, ids, start, xy };
}

/** Calls fn(id) for every point whose cell meets the data-space box [x0, x1] × [y0, y1]. */
export function forEachInBox(grid: PointGrid, x0: number, y0: number, x1: number, y1: number, fn: (id: number) => void): void {
  const { g, ids, start } = grid;
  if (x1 < 0 || y1 < 0 || x0 > 1 || y0 > 1) return;
  const cx0 = cellOf(x0, g), cx1 = cellOf(x1, g), cy0 = cellOf(y0, g), cy1 = cellOf(y1, g);
  for (let cy = cy0; cy <= cy1; cy++) {
    for (let cx = cx0; cx <= cx1; cx++) {
      const c = cy * g + cx;
      for (let j = start[c]!; j < start[c + 1]!; j++) fn(ids[j]!);
    }
  }
}

/** Same answer as score.nearestPoint (nearest within maxDist screen px, ties to the larger id; −1 if none). */
export function nearestInGrid(grid: PointGrid, t: PlotTransform, sx: number, sy: number, maxDist: number): number {
  const x = (sx - t.ox) / t.scale;
  const y = 1 - (sy - t.oy) / t.scale;
  const r = maxDist / t.scale;
  let best = -1;
  let bestD = maxDist * maxDist;
  forEachInBox(grid, x - r, y - r, x + r, y + r, (i) => {
    const px = t.ox + grid.xy[2 * i]! * t.scale;
    const py = t.oy + (1 - grid.xy[2 * i + 1]!) * t.scale;
    const d = (px - sx) ** 2 + (py - sy) ** 2;
    if (d < bestD || (d === bestD && i > best)) {
      bestD = d;
      best = i;
    }
  });
  return best;
}

/** How many points lie in the cells meeting the box (an upper bound of those inside it). */
export function countInBox(grid: PointGrid, x0: number, y0: number, x1: number, y1: number): number {
  const { g, start } = grid;
  if (x1 < 0 || y1 < 0 || x0 > 1 || y0 > 1) return 0;
  const cx0 = cellOf(x0, g), cx1 = cellOf(x1, g), cy0 = cellOf(y0, g), cy1 = cellOf(y1, g);
  let n = 0;
  for (let cy = cy0; cy <= cy1; cy++) n += start[cy * g + cx1 + 1]! - start[cy * g + cx0]!;
  return n;
}
