import { describe, expect, it } from 'vitest';
import { featvizTileStyle } from './modelexplorer';

describe('featvizTileStyle', () => {
  it('crops tile i of a 4×4 grid, row-major', () => {
    expect(featvizTileStyle(0, 16)).toEqual({ size: '400% 400%', position: '0% 0%' });
    expect(featvizTileStyle(5, 16)).toEqual({ size: '400% 400%', position: `33.3333% 33.3333%` });
    expect(featvizTileStyle(15, 16)).toEqual({ size: '400% 400%', position: '100% 100%' });
  });
  it('follows the short grids of layers with fewer than 16 channels: ⌈n/4⌉ rows of min(n, 4)', () => {
    expect(featvizTileStyle(2, 3)).toEqual({ size: '300% 100%', position: '100% 0%' });
    expect(featvizTileStyle(5, 6)).toEqual({ size: '400% 200%', position: `33.3333% 100%` });
    expect(featvizTileStyle(0, 1)).toEqual({ size: '100% 100%', position: '0% 0%' });
  });
});
