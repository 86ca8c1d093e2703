import { describe, expect, test } from 'vitest';
import { mirrorHint, visibleRows } from './curate';

describe('the Curate lists render only the rows in view', () => {
  test('rows of a scrolled box, with the overscan, clamped to the list', () => {
    expect(visibleRows(1000, 100, 0, 500, 3)).toEqual([0, 8]);
    expect(visibleRows(1000, 100, 5000, 500, 3)).toEqual([47, 58]);
    expect(visibleRows(10, 100, 5000, 500, 3)).toEqual([10, 10]);
    expect(visibleRows(0, 100, 0, 500)).toEqual([0, 0]);
  });
  test('at 100,000 rows a screen is a few dozen elements', () => {
    const [a, b] = visibleRows(100_000, 112, 112 * 50_000, 760);
    expect(b - a).toBeLessThan(20);
  });
});

describe('the duplicates list points at the mirror grid', () => {
  test('switch when the bundle has it, how to get it when not, nothing when it is shown', () => {
    expect(mirrorHint(['avg', 'grid3', 'mgrid3'], 'grid3')).toBe('switch');
    expect(mirrorHint(['avg', 'grid3'], 'avg')).toBe('precompute');
    expect(mirrorHint(['avg', 'mgrid3'], 'mgrid3')).toBeNull();
  });
});
