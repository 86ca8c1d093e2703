import { describe, expect, it } from 'vitest';
import { colormap, contentBox, parseHex, upsampleBilinear } from './heatmap';
import { whyAvailability } from './why';
import type { Manifest } from '../data/types';

describe('upsampleBilinear', () => {
  it('is the identity at the same size and keeps a constant map constant', () => {
    const m = [1, 2, 3, 4, 5, 6];
    expect(Array.from(upsampleBilinear(m, 2, 3, 2, 3))).toEqual(m);
    expect(Array.from(upsampleBilinear([7, 7, 7, 7], 2, 2, 5, 3)).every((x) => Math.abs(x - 7) < 1e-6)).toBe(true);
  });
  it('interpolates between cell centres with half-pixel centres and clamps at the edges', () => {
    // 1×2 map [0, 1] → 1×4: output centres at source x = -0.25, 0.25, 0.75, 1.25 → clamp, 0.25, 0.75, clamp
    expect(Array.from(upsampleBilinear([0, 1], 1, 2, 1, 4))).toEqual([0, 0.25, 0.75, 1]);
    expect(() => upsampleBilinear([1, 2, 3], 2, 2, 4, 4)).toThrow(/3 values for 2×2/);
  });
});

describe('colormap', () => {
  it('goes from dark to bright and clamps', () => {
    const lum = (t: number) => colormap(t).reduce((a, b) => a + b, 0);
    for (let i = 0; i < 10; i++) expect(lum((i + 1) / 10)).toBeGreaterThan(lum(i / 10));
    expect(colormap(-1)).toEqual(colormap(0));
    expect(colormap(2)).toEqual(colormap(1));
    expect(colormap(NaN)).toEqual(colormap(0));
  });
});

describe('whyAvailability', () => {
  const bs = { model: 'mob', spatial_outputs: [{ layer: 'l2', output: 'Identity_3:0', shape: [7, 7, 8] }] };
  const m = { models: [{ id: 'mob', name: 'MobileNet' }, { id: 'vgg', name: 'VGG16' }], browser_search: bs } as unknown as Manifest;
  it('gives the spatial output of the browser model’s layer', () => {
    expect(whyAvailability(m, 'mob', 'l2')).toEqual({ output: 'Identity_3:0' });
  });
  it('says why otherwise: another model, another layer, an older bundle, no browser model', () => {
    expect(whyAvailability(m, 'vgg', 'l2')).toHaveProperty('reason', expect.stringMatching(/VGG16 is not exported to the browser.*Choose MobileNet/));
    expect(whyAvailability(m, 'mob', 'l1')).toHaveProperty('reason', expect.stringMatching(/Layer l1 is not an output.*l2/));
    expect(whyAvailability({ ...m, browser_search: { ...bs, spatial_outputs: undefined } } as unknown as Manifest, 'mob', 'l2')).toHaveProperty('reason', expect.stringMatching(/older bundle/));
    expect(whyAvailability({ ...m, browser_search: null }, 'mob', 'l2')).toHaveProperty('reason', expect.stringMatching(/has none/));
  });
});

describe('jointRange', () => {
  it('spans both maps, and widens a flat map so it still draws', async () => {
    const { jointRange } = await import('./why');
    expect(jointRange([0.7, 0.9], [0.8, 0.96])).toEqual({ lo: 0.7, hi: 0.96 });
    expect(jointRange([0.5], [0.5])).toEqual({ lo: 0, hi: 1 });
  });
});

describe('contentBox: the picture inside a letterboxed thumbnail cell', () => {
  const BG: [number, number, number] = [238, 238, 238];
  /** A w×h RGBA cell of background with a picture at (x, y, pw, ph); pixel(x, y) colours it. */
  function cell(w: number, h: number, x: number, y: number, pw: number, ph: number, pixel = (_x: number, _y: number): [number, number, number] => [10, 200, 30]): Uint8ClampedArray {
    const px = new Uint8ClampedArray(w * h * 4);
    for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) {
      const inside = i >= x && i < x + pw && j >= y && j < y + ph;
      const [r, g, b] = inside ? pixel(i - x, j - y) : [BG[0] + ((i + j) % 3) - 1, BG[1] + 2, BG[2] - 3]; // JPEG noise within tolerance
      px.set([r, g, b, 255], (j * w + i) * 4);
    }
    return px;
  }
  it('finds a centred picture: small (border on all sides), wide and tall', () => {
    expect(contentBox(cell(96, 96, 16, 16, 64, 64), 96, 96, BG)).toEqual({ x: 16, y: 16, w: 64, h: 64 });
    expect(contentBox(cell(96, 96, 0, 24, 96, 48), 96, 96, BG)).toEqual({ x: 0, y: 24, w: 96, h: 48 });
    expect(contentBox(cell(96, 96, 20, 0, 57, 96), 96, 96, BG)).toEqual({ x: 20, y: 0, w: 57, h: 96 }); // odd: borders 20 and 19
  });
  it('keeps background-coloured rows of the picture itself (a grey sky): both sides keep the smaller border', () => {
    const sky = (_x: number, y: number): [number, number, number] => (y < 10 ? [238, 238, 238] : [90, 60, 40]);
    expect(contentBox(cell(96, 96, 16, 16, 64, 64, sky), 96, 96, BG)).toEqual({ x: 16, y: 16, w: 64, h: 64 });
    expect(contentBox(cell(8, 8, 0, 0, 8, 8, sky), 8, 8, BG)).toEqual({ x: 0, y: 0, w: 8, h: 8 });
  });
  it('a cell that is all background (or has no border) is the whole cell', () => {
    expect(contentBox(cell(6, 4, 0, 0, 0, 0), 6, 4, BG)).toEqual({ x: 0, y: 0, w: 6, h: 4 });
    expect(contentBox(cell(6, 4, 0, 0, 6, 4), 6, 4, BG)).toEqual({ x: 0, y: 0, w: 6, h: 4 });
  });
  it('parses the manifest background', () => {
    expect(parseHex('#eeeeee')).toEqual([238, 238, 238]);
    expect(() => parseHex('eee')).toThrow(/#rrggbb/);
  });
});
