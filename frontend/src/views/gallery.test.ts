import { describe, expect, it } from 'vitest';
import { GAP, HEAD_H, TILE_MIN, classRow, galleryColumns, galleryRows, rowAt } from './gallery';

describe('virtual gallery rows', () => {
  const labels = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2];
  const inp = { size: 10, labels, classes: ['a', 'b', 'c'], byClass: false };

  it('columns fill the width with tiles of at least TILE_MIN px', () => {
    expect(galleryColumns(TILE_MIN).cols).toBe(1);
    expect(galleryColumns(2 * TILE_MIN + GAP).cols).toBe(2);
    expect(galleryColumns(2 * TILE_MIN + GAP - 1).cols).toBe(1);
    expect(galleryColumns(1000).cols).toBe(13);
  });

  it('"All": consecutive ids, rows of `cols` tiles', () => {
    const rows = galleryRows(inp, 4, 80);
    expect(rows.map((r) => [r.from, r.to, r.top])).toEqual([[0, 4, 0], [4, 8, 80], [8, 10, 160]]);
    expect(classRow(rows, labels, 1)).toBe(0);
    expect(classRow(rows, labels, 2)).toBe(1);
  });

  it('"By category": a heading, then that class\'s ids, for every class', () => {
    const rows = galleryRows({ ...inp, byClass: true }, 4, 80);
    const flat = rows.map((r) => (r.head >= 0 ? `h${r.head}` : Array.from(r.ids!).slice(r.from, r.to).join(',')));
    expect(flat).toEqual(['h0', '0,1,2', 'h1', '3,4', 'h2', '5,6,7,8', '9']);
    expect(rows[1]!.top).toBe(HEAD_H);
    expect(classRow(rows, labels, 2)).toBe(4);
  });

  it('rowAt finds the row covering a scroll offset', () => {
    const rows = galleryRows({ ...inp, byClass: true }, 4, 80);
    for (const y of [0, 1, HEAD_H, HEAD_H + 79, HEAD_H + 80, 10_000]) {
      const r = rowAt(rows, y);
      expect(rows[r]!.top).toBeLessThanOrEqual(y);
      if (r + 1 < rows.length) expect(rows[r + 1]!.top).toBeGreaterThan(y);
    }
  });

  it('100,000 images make ~8,000 row records, not DOM nodes', () => {
    const n = 100_000;
    const big = galleryRows({ size: n, labels: Array.from({ length: n }, (_, i) => i % 7), classes: 'abcdefg'.split(''), byClass: true }, 13, 80);
    expect(big.length).toBe(7 + 7 * Math.ceil(n / 7 / 13));
    expect(rowAt(big, big[5000]!.top + 3)).toBe(5000);
  });
});
