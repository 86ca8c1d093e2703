// Heat overlays: a small h×w map (atlas activations, similarity maps) bilinearly upsampled onto a
// canvas laid over its image, in one colormap with a legend saying what the colours mean.
import './heatmap.css';
import { h } from '../dom';

/** Colormap stops (inferno-like: dark purple → red → yellow), perceptually ordered, readable on photos. */
const STOPS: [number, number, number][] = [
  [0, 0, 4],
  [87, 16, 110],
  [188, 55, 84],
  [249, 142, 9],
  [252, 255, 164],
];

/** t in [0, 1] (clamped) → RGB. */
export function colormap(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  const a = STOPS[i]!;
  const b = STOPS[i + 1]!;
  return [Math.round(a[0] + (b[0] - a[0]) * f), Math.round(a[1] + (b[1] - a[1]) * f), Math.round(a[2] + (b[2] - a[2]) * f)];
}

/**
 * Bilinear upsampling of a row-major h×w map to H×W with half-pixel centres (each map cell covers
 * an equal patch of the image, as a conv map does), edges clamped.
 */
export function upsampleBilinear(map: ArrayLike<number>, h: number, w: number, H: number, W: number): Float32Array {
  if (map.length !== h * w) throw new Error(`upsampleBilinear: ${map.length} values for ${h}×${w}`);
  const out = new Float32Array(H * W);
  for (let Y = 0; Y < H; Y++) {
    const sy = Math.min(h - 1, Math.max(0, ((Y + 0.5) * h) / H - 0.5));
    const y0 = Math.floor(sy);
    const y1 = Math.min(h - 1, y0 + 1);
    const fy = sy - y0;
    for (let X = 0; X < W; X++) {
      const sx = Math.min(w - 1, Math.max(0, ((X + 0.5) * w) / W - 0.5));
      const x0 = Math.floor(sx);
      const x1 = Math.min(w - 1, x0 + 1);
      const fx = sx - x0;
      const top = map[y0 * w + x0]! * (1 - fx) + map[y0 * w + x1]! * fx;
      const bot = map[y1 * w + x0]! * (1 - fx) + map[y1 * w + x1]! * fx;
      out[Y * W + X] = top * (1 - fy) + bot * fy;
    }
  }
  return out;
}

export interface HeatOptions {
  lo: number; // value drawn with the colormap's first colour (and below)
  hi: number; // … last colour (and above)
  alpha: number; // overlay opacity, 0…1
  size?: number; // canvas pixels per side (default 128)
}

/** A canvas with the map drawn as a translucent heat overlay (position it over the image with CSS). */
export function heatCanvas(map: ArrayLike<number>, mh: number, mw: number, opts: HeatOptions): HTMLCanvasElement {
  const size = opts.size ?? 128;
  const canvas = h('canvas', { class: 'heat', attrs: { width: size, height: size, 'aria-hidden': 'true' } });
  const ctx = canvas.getContext('2d');
  if (!ctx) return canvas;
  const up = upsampleBilinear(map, mh, mw, size, size);
  const img = ctx.createImageData(size, size);
  const span = opts.hi - opts.lo || 1;
  const a = Math.round(255 * opts.alpha);
  for (let p = 0; p < up.length; p++) {
    const [r, g, b] = colormap((up[p]! - opts.lo) / span);
    img.data[p * 4] = r;
    img.data[p * 4 + 1] = g;
    img.data[p * 4 + 2] = b;
    img.data[p * 4 + 3] = a;
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

/** A pixel box in an image (x, y from the top left). */
export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/**
 * Where the picture is inside a thumbnail cell (RGBA pixels, w×h): the thumbnails stage shrinks
 * each image to fit its cell and centres it on the manifest's `background` colour (docs/bundle.md
 * "Thumbnails"), so a non-square or small image has background-coloured borders. Rows and columns
 * entirely within `tol` of the background are trimmed from each side. The writer centres (opposite
 * borders differ by ≤ 1 px); where they differ more, the picture itself has background-coloured
 * rows at one edge, and both sides keep the smaller border. All background: the whole cell.
 */
export function contentBox(px: ArrayLike<number>, w: number, h: number, bg: [number, number, number], tol = 12): Box {
  const isBg = (x: number, y: number) => {
    const i = (y * w + x) * 4;
    return Math.abs(px[i]! - bg[0]) <= tol && Math.abs(px[i + 1]! - bg[1]) <= tol && Math.abs(px[i + 2]! - bg[2]) <= tol;
  };
  const rowBg = (y: number) => { for (let x = 0; x < w; x++) if (!isBg(x, y)) return false; return true; };
  const colBg = (x: number) => { for (let y = 0; y < h; y++) if (!isBg(x, y)) return false; return true; };
  let top = 0;
  while (top < h && rowBg(top)) top++;
  if (top === h) return { x: 0, y: 0, w, h };
  let bottom = h;
  while (bottom > top && rowBg(bottom - 1)) bottom--;
  let left = 0;
  while (left < w && colBg(left)) left++;
  let right = w;
  while (right > left && colBg(right - 1)) right--;
  if (Math.abs(top - (h - bottom)) > 1) [top, bottom] = [Math.min(top, h - bottom), h - Math.min(top, h - bottom)];
  if (Math.abs(left - (w - right)) > 1) [left, right] = [Math.min(left, w - right), w - Math.min(left, w - right)];
  return { x: left, y: top, w: right - left, h: bottom - top };
}

/** "#rrggbb" → [r, g, b]. */
export function parseHex(colour: string): [number, number, number] {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(colour);
  if (!m) throw new Error(`not a #rrggbb colour: ${colour}`);
  return [parseInt(m[1]!, 16), parseInt(m[2]!, 16), parseInt(m[3]!, 16)];
}

/** contentBox of a loaded thumbnail <img> (decoded into a canvas; it must be same-origin or a blob). */
export async function thumbContent(img: HTMLImageElement, background: string): Promise<Box> {
  if (!img.complete || img.naturalWidth === 0) await img.decode();
  const w = img.naturalWidth;
  const hh = img.naturalHeight;
  const c = document.createElement('canvas');
  c.width = w;
  c.height = hh;
  const g = c.getContext('2d', { willReadFrequently: true });
  if (!g) return { x: 0, y: 0, w, h: hh };
  g.drawImage(img, 0, 0);
  return contentBox(g.getImageData(0, 0, w, hh).data, w, hh, parseHex(background));
}

/**
 * Lays a heat canvas over the picture only, not the letterbox around it (a map covers the image
 * the network saw: the picture stretched to the input size). The <img> fills its box (1:1 cell).
 */
export function placeOverContent(canvas: HTMLCanvasElement, box: Box, cellW: number, cellH: number): void {
  const pct = (a: number, b: number) => `${((a / b) * 100).toFixed(3)}%`;
  Object.assign(canvas.style, { inset: 'auto', left: pct(box.x, cellW), top: pct(box.y, cellH), width: pct(box.w, cellW), height: pct(box.h, cellH) });
}

/** An image (its URL, or an <img> such as views/thumb.ts thumbImg's) with its heat overlay, stacked. */
export function heatFigure(src: string | HTMLImageElement, alt: string, canvas: HTMLCanvasElement, caption: (string | HTMLElement)[], onClick?: () => void): HTMLElement {
  const img = typeof src === 'string' ? h('img', { attrs: { src, alt, width: 128, height: 128, decoding: 'async' } }) : src;
  const stack = h('span', { class: 'heat-stack' }, [img, canvas]);
  const body = onClick ? h('button', { class: 'heat-btn', attrs: { type: 'button', title: `${alt}: click to search with it` }, on: { click: onClick } }, [stack]) : stack;
  return h('figure', { class: 'heat-fig' }, [body, h('figcaption', {}, caption)]);
}

/** A "Show the maps" checkbox that hides every heat overlay inside `scope` (to see the pictures). */
export function overlayToggle(scope: HTMLElement): HTMLElement {
  const box = h('input', { attrs: { type: 'checkbox', checked: true } });
  box.addEventListener('change', () => scope.classList.toggle('heat-off', !box.checked));
  scope.classList.remove('heat-off');
  return h('label', { class: 'heat-toggle' }, [box, 'Show the maps']);
}

/** Colour bar: "lo ▮▮▮▮ hi" with a label saying what is measured. */
export function heatLegend(lo: string, hi: string, label: string): HTMLElement {
  const bar = h('span', { class: 'heat-legend-bar', attrs: { 'aria-hidden': 'true' } });
  bar.style.background = `linear-gradient(to right, ${Array.from({ length: 9 }, (_, i) => `rgb(${colormap(i / 8).join(',')})`).join(', ')})`;
  return h('p', { class: 'heat-legend' }, [h('span', { class: 'heat-legend-label', text: label }), h('span', { text: lo }), bar, h('span', { text: hi })]);
}
