import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { plotTransform, toScreen } from '../data/score';
import { keepInView, MAX_ZOOM, panBy, toData, viewPlacing, WHOLE_MAP, zoomAbout, zoomedTransform, type MapView2D } from './mapmath';

const W = 700, H = 500, MARGIN = 50;
const base = plotTransform(W, H, 16);
const screenOf = (v: MapView2D, p: [number, number]) => toScreen(zoomedTransform(base, v), p[0], p[1]);
const inView = ([x, y]: [number, number], m = MARGIN) => x >= m - 1e-6 && x <= W - m + 1e-6 && y >= m - 1e-6 && y <= H - m + 1e-6;
const point = fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }));
/** A reachable view: the whole map, or zoomed in and panned anywhere (even off the data). */
const view = fc.record({ zoom: fc.double({ min: 1, max: MAX_ZOOM, noNaN: true }), cx: fc.double({ min: -0.5, max: 1.5, noNaN: true }), cy: fc.double({ min: -0.5, max: 1.5, noNaN: true }) })
  .map((v): MapView2D => (v.zoom === 1 ? WHOLE_MAP : v));

describe('map view math', () => {
  it('zoom 1 is the plain plot transform; toData inverts toScreen', () => {
    expect(zoomedTransform(base, WHOLE_MAP)).toEqual(base);
    fc.assert(fc.property(view, point, (v, p) => {
      const t = zoomedTransform(base, v);
      const [x, y] = toData(t, ...toScreen(t, p[0], p[1]));
      expect(x).toBeCloseTo(p[0], 9);
      expect(y).toBeCloseTo(p[1], 9);
    }));
  });

  it('viewPlacing puts the data point under `from` at `to`, clamps the zoom, and zoom 1 is the whole map', () => {
    const t = zoomedTransform(base, { zoom: 3, cx: 0.2, cy: 0.7 });
    const v = viewPlacing(base, t, [100, 80], [300, 250], 6);
    expect(v.zoom).toBe(6);
    const [x, y] = toScreen(zoomedTransform(base, v), ...toData(t, 100, 80));
    expect([x, y].map((c) => Math.round(c * 1e6) / 1e6)).toEqual([300, 250]);
    expect(viewPlacing(base, t, [1, 1], [1, 1], 1e9).zoom).toBe(MAX_ZOOM);
    expect(viewPlacing(base, t, [1, 1], [9, 9], 0.5)).toEqual(WHOLE_MAP);
  });

  it('panBy moves every point by the same screen distance, and not at all on the whole map', () => {
    fc.assert(fc.property(view, point, fc.double({ min: -500, max: 500, noNaN: true }), fc.double({ min: -500, max: 500, noNaN: true }), (v, p, dx, dy) => {
      const [x0, y0] = screenOf(v, p);
      const [x1, y1] = screenOf(panBy(base, v, dx, dy), p);
      expect(x1 - x0).toBeCloseTo(dx, 6);
      expect(y1 - y0).toBeCloseTo(dy, 6);
    }));
    expect(panBy(base, WHOLE_MAP, 40, 40)).toBe(WHOLE_MAP);
  });

  it('keepInView brings an off-screen point inside the margins and leaves a visible one alone', () => {
    const v: MapView2D = { zoom: 32, cx: 0.5, cy: 0.5 };
    const far: [number, number] = [0.05, 0.9];
    expect(inView(screenOf(v, far))).toBe(false);
    const moved = keepInView(base, v, far, W, H, MARGIN);
    expect(moved.zoom).toBe(32);
    expect(inView(screenOf(moved, far))).toBe(true);
    const visible = toData(zoomedTransform(base, moved), W / 2 + 100, H / 2 - 80);
    expect(keepInView(base, moved, visible, W, H, MARGIN)).toBe(moved);
    fc.assert(fc.property(view, point, (v2, p) => {
      const kept = keepInView(base, v2, p, W, H, MARGIN);
      // On the whole map (zoom 1: nothing to pan) the plot's own 16 px inset is the margin.
      expect(inView(screenOf(kept, p), kept.zoom === 1 ? 16 : MARGIN)).toBe(true);
    }));
  });

  it('zoomAbout keeps a visible point where it is, brings a hidden one into view, and uses the centre without a point', () => {
    const v: MapView2D = { zoom: 4, cx: 0.4, cy: 0.6 };
    const p: [number, number] = [0.42, 0.55];
    const before = screenOf(v, p);
    expect(inView(before)).toBe(true);
    const z = zoomAbout(base, v, 2, p, W, H, MARGIN);
    expect(z.zoom).toBe(8);
    screenOf(z, p).forEach((c, i) => expect(c).toBeCloseTo(before[i]!, 6));
    const centre = zoomAbout(base, v, 2, null, W, H, MARGIN);
    const c0 = toData(zoomedTransform(base, v), W / 2, H / 2);
    toData(zoomedTransform(base, centre), W / 2, H / 2).forEach((c, i) => expect(c).toBeCloseTo(c0[i]!, 9));
    expect(zoomAbout(base, v, 1 / 8, p, W, H, MARGIN)).toEqual(WHOLE_MAP);
    // Any view, any point, any sequence of zooms in and out: the point stays in view.
    fc.assert(fc.property(view, point, fc.array(fc.constantFrom(2, 0.5), { minLength: 1, maxLength: 12 }), (v2, q, steps) => {
      let cur = v2;
      for (const f of steps) {
        cur = zoomAbout(base, cur, f, q, W, H, MARGIN);
        expect(inView(screenOf(cur, q), cur.zoom === 1 ? 16 : MARGIN)).toBe(true);
      }
    }));
  });

  it('the issue\'s sequence: + five times, then the selection moves to points elsewhere on the map; each stays in view', () => {
    let v: MapView2D = WHOLE_MAP;
    for (let i = 0; i < 5; i++) v = zoomAbout(base, v, 2, null, W, H, MARGIN);
    expect(v.zoom).toBe(32);
    for (const p of [[0.02, 0.03], [0.97, 0.5], [0.5, 0.99], [0.1, 0.6]] as [number, number][]) {
      v = keepInView(base, v, p, W, H, MARGIN);
      expect(inView(screenOf(v, p))).toBe(true);
      expect(v.zoom).toBe(32);
    }
  });
});
