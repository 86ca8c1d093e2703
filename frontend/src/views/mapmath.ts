// Pan and zoom of the UMAP map as pure functions of the view (views/map.ts draws and listens;
// these decide where the map goes). Screen points are CSS px in the canvas; data points are the
// bundle's UMAP coordinates in [0, 1]² (y up).
import { toScreen, type PlotTransform } from '../data/score';

export const MAX_ZOOM = 400;

/** Pan/zoom state: the data point at the plot's centre and the magnification. */
export interface MapView2D {
  zoom: number;
  cx: number;
  cy: number;
}

/** Zoom 1: the whole map, centred (nothing to pan to). */
export const WHOLE_MAP: MapView2D = { zoom: 1, cx: 0.5, cy: 0.5 };

/** The base transform (whole unit square in the canvas) magnified about (cx, cy). */
export function zoomedTransform(base: PlotTransform, v: MapView2D): PlotTransform {
  return { scale: base.scale * v.zoom, ox: base.ox + base.scale * (0.5 - v.cx * v.zoom), oy: base.oy + base.scale * (0.5 + v.zoom * v.cy - v.zoom) };
}

/** The data point drawn at screen point (sx, sy) by transform t (toScreen's inverse). */
export function toData(t: PlotTransform, sx: number, sy: number): [number, number] {
  return [(sx - t.ox) / t.scale, 1 - (sy - t.oy) / t.scale];
}

/** The view at `zoom` (clamped to 1…MAX_ZOOM) that shows the data point under screen point `from`
 * of transform t at screen point `to`: zoom about a point, pan, or both (a pinch). */
export function viewPlacing(base: PlotTransform, t: PlotTransform, from: [number, number], to: [number, number], zoom: number): MapView2D {
  const [dx, dy] = toData(t, from[0], from[1]);
  const z = Math.min(MAX_ZOOM, Math.max(1, zoom));
  if (z === 1) return WHOLE_MAP;
  // Solve zoomedTransform(base, {zoom, cx, cy}) maps (dx, dy) to `to`.
  return { zoom: z, cx: dx - (to[0] - base.ox - base.scale * 0.5) / (base.scale * z), cy: dy + (to[1] - base.oy - base.scale * 0.5) / (base.scale * z) };
}

/** The view moved by (dx, dy) screen px: what was drawn at (x, y) is drawn at (x + dx, y + dy).
 * The whole map (zoom 1) does not pan. */
export function panBy(base: PlotTransform, v: MapView2D, dx: number, dy: number): MapView2D {
  if (v.zoom <= 1) return v;
  const s = base.scale * v.zoom;
  return { ...v, cx: v.cx - dx / s, cy: v.cy + dy / s };
}

/** Screen point (x, y) moved into the w×h canvas less `margin` px on every side. */
function clampInto(x: number, y: number, w: number, h: number, margin: number): [number, number] {
  const mx = Math.min(margin, w / 2), my = Math.min(margin, h / 2);
  return [Math.min(w - mx, Math.max(mx, x)), Math.min(h - my, Math.max(my, y))];
}

/** The view panned as little as needed to draw data point p at least `margin` px inside the w×h
 * canvas (unchanged when it already is, or at zoom 1, where every point is in view). */
export function keepInView(base: PlotTransform, v: MapView2D, p: [number, number], w: number, h: number, margin: number): MapView2D {
  const [x, y] = toScreen(zoomedTransform(base, v), p[0], p[1]);
  const [tx, ty] = clampInto(x, y, w, h, margin);
  return tx === x && ty === y ? v : panBy(base, v, tx - x, ty - y);
}

/** Zoom by `factor` about data point p: p stays where it is on screen, or, if it was not at least
 * `margin` px inside the canvas, comes to the nearest place that is. Without a point, about the
 * canvas centre. */
export function zoomAbout(base: PlotTransform, v: MapView2D, factor: number, p: [number, number] | null, w: number, h: number, margin: number): MapView2D {
  const t = zoomedTransform(base, v);
  const from: [number, number] = p ? toScreen(t, p[0], p[1]) : [w / 2, h / 2];
  return viewPlacing(base, t, from, clampInto(from[0], from[1], w, h, margin), v.zoom * factor);
}
