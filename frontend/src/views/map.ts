// UMAP view: a WebGL canvas draws every image as a dot coloured by class (10⁵ points in one draw
// call), with pan (drag, one finger) and zoom (wheel, pinch, +/− keys and buttons); zoomed in far enough, the images
// themselves are drawn from the thumbnail sprite sheets. A 2-D overlay rings the query and its
// top-k. Hover shows the thumbnail, click makes that image the query; picking uses a spatial grid.
import { h, clear, status } from '../dom';
import { plotTransform, toScreen, type PlotTransform } from '../data/score';
import { buildGrid, countInBox, forEachInBox, nearestInGrid, type PointGrid } from '../data/pointgrid';
import { levelFor } from '../data/thumbs';
import { withName } from '../data/names';
import type { DatasetIndex } from '../data/types';
import type { Ctx, ViewModule } from '../context';
import { Latest } from '../context';
import { classColor } from './palette';
import { MapGL, type Quad } from './mapgl';
import { thumbImg } from './thumb';
import { keepInView, panBy, viewPlacing, WHOLE_MAP, zoomAbout, zoomedTransform, type MapView2D } from './mapmath';

/** Canvas inset in CSS px; the e2e test uses the same value to click points. */
export const PLOT_PAD = 16;

/** Thumbnails are drawn when at most this many points are in view and a quad is ≥ THUMB_MIN_PX. */
export const MAX_THUMBS = 1500;
export const THUMB_MIN_PX = 16;
/** Sheets drawn from at once (textures: 512² px each for small cells, 1536² for large). */
export const MAX_SHEETS = 48;
const MAX_LARGE_SHEETS = 8;
/** Up to this many points in view, zoomed in, each image is fetched alone (large cells, ≈ 2–5 KB each). */
const SINGLE_MAX = 300;
/** Shift+arrow pans by this share of the canvas's shorter side. */
const PAN_STEP = 1 / 8;
/** The keyboard's selected point is kept at least this far (CSS px) inside the canvas edges. */
function keepMargin(w: number, h: number): number {
  return Math.max(24, 0.1 * Math.min(w, h));
}

interface Drawn {
  xy: Float32Array;
  idx: DatasetIndex;
  /** Colour index of every point (−1: no value in the chosen field, drawn grey) and what it is. */
  col: Int32Array;
  colourKey: string;
  q: number | null;
  hits: number[];
  grid: PointGrid;
  dataset: string;
}

/** Thumbnail quad edge in CSS px at plot scale S (grows with zoom, capped). */
export function quadPx(scale: number): number {
  return Math.min(128, scale * 0.02);
}

const rgbCache = new Map<number, [number, number, number]>();
/** Points with no value in the colouring field. */
const NO_VALUE_COLOUR = '#c8c8c8';
function pointColor(label: number): string {
  return label < 0 ? NO_VALUE_COLOUR : classColor(label);
}

/** Colour index per point: the dataset's groups (folders), or a field's value − 1 (−1: none). */
function colourIndex(labels: ArrayLike<number>, field: boolean): Int32Array {
  const out = new Int32Array(labels.length);
  for (let i = 0; i < labels.length; i++) out[i] = field ? (labels[i] ?? 0) - 1 : (labels[i] ?? 0);
  return out;
}

function classRgb(label: number): [number, number, number] {
  let c = rgbCache.get(label);
  if (!c) {
    const g = document.createElement('canvas').getContext('2d')!;
    g.fillStyle = pointColor(label);
    const s = g.fillStyle;  // normalised: "#rrggbb" or "rgb(r, g, b)"
    const m = s.startsWith('#') ? [1, 3, 5].map((i) => parseInt(s.slice(i, i + 2), 16)) : (s.match(/\d+/g) ?? ['0', '0', '0']).slice(0, 3).map(Number);
    c = [m[0]! / 255, m[1]! / 255, m[2]! / 255];
    rgbCache.set(label, c);
  }
  return c;
}

/** Arrow keys as screen directions. */
const ARROWS: Record<string, [number, number]> = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

export class MapView implements ViewModule {
  readonly root: HTMLElement;
  private readonly canvas = h('canvas', { class: 'umap-canvas', attrs: { tabindex: 0, role: 'img' } });
  private readonly overlay = h('canvas', { class: 'umap-overlay', attrs: { 'aria-hidden': 'true' } });
  private gl: MapGL | null = null;
  private view: MapView2D = WHOLE_MAP;
  private frame = 0;
  private drag: { x: number; y: number; cx: number; cy: number; moved: boolean } | null = null;
  /** Fingers on the map (Pointer Events of type touch), by pointerId: CSS px in the canvas. */
  private readonly touches = new Map<number, [number, number]>();
  /** The touch gesture since the last finger change: the view then, the fingers' midpoint and spread. */
  private gesture: { view: MapView2D; t: PlotTransform; mid: [number, number]; spread: number } | null = null;
  /** A touch gesture moved the view: the click a lifted finger may still cause is not a tap. */
  private touchMoved = false;
  private readonly loading = new Set<string>();
  /** Object URL of each image fetched alone for deep zoom ('' while it loads). */
  private singles = new Map<number, string>();
  /** Edge of the thumbnail quads of the last draw, CSS px. */
  private quadSize = 0;
  private readonly tip = h('div', { class: 'umap-tip', attrs: { hidden: true, 'aria-hidden': 'true' } });
  private readonly legend = h('ul', { class: 'legend', attrs: { 'aria-label': 'Colours' } });
  private readonly colourSel = h('select', { attrs: { id: 'sel-colour', 'aria-label': 'Colour points by' } }) as HTMLSelectElement;
  private readonly info = h('div', { class: 'map-info' });
  /** Screen-reader echo of the keyboard cursor. */
  private readonly announce = h('p', { class: 'sr-only', attrs: { 'aria-live': 'polite' } });
  private cursor = -1;
  private readonly latest = new Latest();
  private drawn: Drawn | null = null;
  private ctx: Ctx | null = null;
  private t: PlotTransform = plotTransform(1, 1, PLOT_PAD);

  constructor() {
    const btn = (text: string, label: string, fn: () => void) => h('button', { class: 'map-zoom-btn', text, attrs: { type: 'button', 'aria-label': label, title: label }, on: { click: fn } });
    const zoomBar = h('div', { class: 'map-zoom', attrs: { role: 'group', 'aria-label': 'Map zoom' } }, [
      btn('+', 'Zoom in', () => this.zoomKey(2)), btn('−', 'Zoom out', () => this.zoomKey(0.5)), btn('⟲', 'Show the whole map', () => this.setView(WHOLE_MAP)),
    ]);
    const wrap = h('div', { class: 'umap-wrap' }, [this.canvas, this.overlay, this.tip, zoomBar]);
    this.root = h('section', { class: 'view view-map', attrs: { 'aria-label': 'UMAP map' } }, [
      h('div', { class: 'map-side' }, [h('h2', { text: 'UMAP map' }), this.info,
        h('label', { class: 'map-colour' }, ['Colour by ', this.colourSel]), this.legend, this.announce,
        h('p', { class: 'hint', text: 'Drag to pan, wheel or +/− to zoom (touch: one finger pans, two pinch): zoomed in, the images appear. Keyboard: focus the map, ←/→ step through the images (the map follows), Enter makes one the query, +/− zoom about the selected image (else the query), Shift+arrows pan, 0 shows the whole map.' })]),
      wrap,
    ]);
    this.canvas.addEventListener('mousemove', (e) => this.drag ? undefined : this.hover(e));
    this.canvas.addEventListener('mouseleave', () => (this.tip.hidden = true));
    this.canvas.addEventListener('click', (e) => this.click(e));
    this.canvas.addEventListener('wheel', (e) => this.wheel(e), { passive: false });
    this.canvas.addEventListener('mousedown', (e) => this.startDrag(e));
    window.addEventListener('mousemove', (e) => this.moveDrag(e));
    window.addEventListener('mouseup', () => setTimeout(() => (this.drag = null), 0));
    // Touch: one finger pans, two pinch-zoom (the canvas has touch-action: none, so the page does
    // not scroll or zoom instead); a tap stays a click (the browser's compatibility click), which
    // picks the point. Mouse pointers keep the mouse handlers above.
    this.canvas.addEventListener('pointerdown', (e) => this.touchDown(e));
    this.canvas.addEventListener('pointermove', (e) => this.touchMove(e));
    for (const end of ['pointerup', 'pointercancel'] as const) this.canvas.addEventListener(end, (e) => this.touchUp(e));
    this.colourSel.addEventListener('change', () => this.ctx?.navigate({ colour: this.colourSel.value }));
    this.canvas.addEventListener('keydown', (e) => this.key(e));
    this.canvas.addEventListener('blur', () => (this.tip.hidden = true));
    new ResizeObserver(() => this.draw()).observe(wrap);
  }

  update(ctx: Ctx): void {
    this.ctx = ctx;
    const fresh = this.latest.next();
    const { data, state } = ctx;
    const ds = data.dataset(state.dataset);
    clear(this.info);
    this.info.append(status('Loading map…'));
    const rowP = state.q === null ? Promise.resolve(null) : data.neighborRow(state.dataset, state.model, state.layer, state.pooling, state.metric, state.q);
    const fld = ds.fields.find((f) => f.id === state.colour);
    const colourKey = `${state.dataset}/${fld ? fld.id : 'folder'}`;
    const colP = fld ? data.fieldLabels(state.dataset, fld.id) : Promise.resolve(null);
    Promise.all([data.umap(state.dataset, state.model, state.layer, state.pooling), data.index(state.dataset), rowP, colP]).then(
      ([xy, idx, row, values]) => {
        if (!fresh()) return;
        const hits = row ? row.map((n) => n.id) : [];
        const same = this.drawn?.xy === xy;
        const recolour = this.drawn?.colourKey !== colourKey;
        const col = !recolour && this.drawn ? this.drawn.col : colourIndex(values ?? idx.labels, values !== null);
        const grid = same ? this.drawn!.grid : buildGrid(xy);
        this.drawn = { xy, idx, col, colourKey, q: state.q, hits, grid, dataset: state.dataset };
        if (!same || recolour) this.upload(xy, col, !same);
        this.renderInfo(ctx, idx);
        this.draw();
      },
      (e: unknown) => {
        if (!fresh()) return;
        clear(this.info);
        this.info.append(status(`Could not load the map: ${e instanceof Error ? e.message : String(e)}`, 'error'));
      },
    );
    const by = fld ? `the label field ${fld.name}` : ds.groups === 'class folders' ? 'class' : 'top folder';
    this.canvas.setAttribute('aria-label', `UMAP map of ${ds.size} images of ${ds.name}, ${state.model} layer ${state.layer}, coloured by ${by}. The query and its nearest neighbours are ringed.`);
    this.renderColourSelect(ctx);
    this.renderLegend(fld ? fld.values : ds.classes, fld && fld.labelled < ds.size ? `no ${fld.name} (${ds.size - fld.labelled} images)` : null);
  }

  /** The colouring choices: every label field, and the folders (class folders or top folders). */
  private renderColourSelect(ctx: Ctx): void {
    const ds = ctx.data.dataset(ctx.state.dataset);
    clear(this.colourSel);
    const folder = ds.groups === 'class folders' ? 'Class folder' : 'Top folder';
    const opts: [string, string][] = [...(ds.labels === 'folders' ? [] : ds.fields).map((f) => [f.id, `Field: ${f.name}`] as [string, string]), ['folder', folder]];
    for (const [v, t] of opts) this.colourSel.append(h('option', { text: t, attrs: { value: v } }));
    this.colourSel.value = ds.labels === 'folders' ? 'folder' : ctx.state.colour;
  }

  private renderInfo(ctx: Ctx, idx: DatasetIndex): void {
    const { state, data } = ctx;
    clear(this.info);
    const q = state.q;
    this.info.append(
      h('p', { class: 'hint', text: `${idx.size} images, ${state.model} · ${state.layer}. Similar images land close together. Hover a dot to see it, click to make it the query.` }),
    );
    if (q !== null) {
      const group = data.dataset(state.dataset).classes[idx.labels[q] ?? -1] ?? '?';
      const cls = group.startsWith('(') ? group.slice(1, -1) : group;  // "(top level)": no double brackets
      const img = thumbImg(data, state.dataset, q, '', 'map-query-img');
      const text = h('span');
      const hits = this.drawn?.hits.length ?? 0;
      withName(idx.names, q, (file) => {
        img.alt = `Query ${file} (${cls})`;
        text.textContent = `Query: ${file} (${cls}), marked by the large target ring; its top ${hits} results are ringed.`;
      });
      this.info.append(h('p', { class: 'map-query' }, [img, text]));
    }
  }

  private renderLegend(classes: readonly string[], noValue: string | null): void {
    clear(this.legend);
    const item = (name: string, colour: string) => {
      const sw = h('span', { class: 'swatch', attrs: { 'aria-hidden': 'true' } });
      sw.style.backgroundColor = colour;
      this.legend.append(h('li', {}, [sw, h('span', { text: name })]));
    };
    classes.forEach((name, i) => item(name, classColor(i)));
    if (noValue) item(noValue, NO_VALUE_COLOUR);
  }

  /** A new layout or colouring: points and colours go to the GPU once; a new layout shows the whole map again. */
  private upload(xy: Float32Array, col: Int32Array, newLayout: boolean): void {
    if (!this.gl) {
      try {
        this.gl = new MapGL(this.canvas);
      } catch (e) {
        clear(this.info);
        this.info.append(status(`Could not draw the map: ${e instanceof Error ? e.message : String(e)}`, 'error'));
        return;
      }
    }
    const n = xy.length / 2;
    const rgb = new Float32Array(n * 3);
    for (let i = 0; i < n; i++) rgb.set(classRgb(col[i] ?? 0), 3 * i);
    this.gl.setPoints(xy, rgb);
    if (!newLayout) return;
    this.gl.dropTextures(new Set());
    this.singles = new Map();
    this.view = WHOLE_MAP;
  }

  private schedule(): void {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  }

  /** Redraws everything: points on the GPU (two uniforms change on pan/zoom), rings on the overlay. */
  draw(): void {
    const d = this.drawn;
    const rect = this.canvas.getBoundingClientRect();
    if (!d || rect.width === 0 || !this.gl) return;
    const t0 = performance.now();
    const dpr = window.devicePixelRatio || 1;
    const W = Math.round(rect.width * dpr), H = Math.round(rect.height * dpr);
    for (const c of [this.canvas, this.overlay]) {
      if (c.width !== W) c.width = W;
      if (c.height !== H) c.height = H;
    }
    this.t = zoomedTransform(plotTransform(rect.width, rect.height, PLOT_PAD), this.view);
    const n = d.xy.length / 2;
    const r = (n > 3000 ? 1.6 : n > 500 ? 2.5 : 3.5) * Math.min(3, Math.sqrt(this.view.zoom));
    const sheets = this.thumbQuads(d, rect.width, rect.height, dpr);
    const q = this.quadSize;
    this.gl.draw(this.t, rect.width, rect.height, dpr, 2 * r, d.q === null ? 0.85 : 0.55, sheets, q, this.canvas.dataset.sync === '1');
    const g = this.overlay.getContext('2d');
    if (g) {
      g.setTransform(dpr, 0, 0, dpr, 0, 0);
      g.clearRect(0, 0, rect.width, rect.height);
      for (const id of d.hits) this.ring(g, d.xy, id, r + 3, '#ffffff', '#000000', d.col[id]);
      if (d.q !== null) {
        // The query: its dot enlarged plus a wide outer target ring, distinct from the neighbours' rings.
        this.ring(g, d.xy, d.q, r + 3, '#000000', '#ffffff', d.col[d.q]);
        const [x, y] = toScreen(this.t, d.xy[2 * d.q] ?? 0, d.xy[2 * d.q + 1] ?? 0);
        g.beginPath();
        g.arc(x, y, r + 10 + (sheets.size ? q / 2 : 0), 0, Math.PI * 2);
        g.lineWidth = 4;
        g.strokeStyle = '#ffffff';
        g.stroke();
        g.lineWidth = 2.2;
        g.strokeStyle = '#000000';
        g.stroke();
      }
    }
    this.canvas.dataset.points = String(n);
    this.canvas.dataset.zoom = this.view.zoom.toFixed(3);
    this.canvas.dataset.transform = `${this.t.scale},${this.t.ox},${this.t.oy}`;  // CSS px, for the e2e tests
    this.canvas.dataset.thumbs = String([...sheets.values()].reduce((s, qs) => s + qs.length, 0));
    // Exposed for the e2e and bench redraw measurements.
    this.canvas.dataset.drawMs = (performance.now() - t0).toFixed(1);
  }

  /** Quads per loaded sheet for the points in view, once zoomed in enough; starts loading missing sheets. */
  private thumbQuads(d: Drawn, w: number, h: number, dpr: number): Map<string, Quad[]> {
    const out = new Map<string, Quad[]>();
    const ctx = this.ctx;
    const q = quadPx(this.t.scale);
    this.quadSize = q;
    if (!ctx || !this.gl || q < THUMB_MIN_PX) return out;
    const m = q / this.t.scale;  // half a quad or more around the edges, in data units
    const x0 = -this.t.ox / this.t.scale - m, x1 = (w - this.t.ox) / this.t.scale + m;
    const y0 = 1 - (h - this.t.oy) / this.t.scale - m, y1 = 1 - -this.t.oy / this.t.scale + m;
    if (countInBox(d.grid, x0, y0, x1, y1) > MAX_THUMBS * 2) return out;
    const ids: number[] = [];
    forEachInBox(d.grid, x0, y0, x1, y1, (i) => {
      const x = d.xy[2 * i]!, y = d.xy[2 * i + 1]!;
      if (x >= x0 && x <= x1 && y >= y0 && y <= y1) ids.push(i);
    });
    if (ids.length > MAX_THUMBS) return out;
    // Sized to the points' spacing in view (PixPlot-like): dense areas get smaller images, so they overlap less.
    this.quadSize = Math.min(q, Math.max(2 * THUMB_MIN_PX, 0.8 * Math.sqrt((w * h) / Math.max(1, ids.length))));
    const small = Math.min(...ctx.manifest.thumbnails.levels.map((l) => l.cell));
    if (ids.length <= SINGLE_MAX && this.quadSize * dpr > small) return this.singleQuads(d, ids);
    // Points in view come from many sheets (a map neighbourhood is not an id range): GPU memory
    // is bounded by drawing from at most MAX_SHEETS sheets, those holding the most points in view,
    // with the large cells only when few sheets are needed; the other points stay dots.
    const per = ctx.manifest.thumbnails.grid ** 2;
    const bySheet = new Map<number, number[]>();
    for (const i of ids) {
      const s = Math.floor(i / per);
      (bySheet.get(s) ?? bySheet.set(s, []).get(s)!).push(i);
    }
    const sheets = [...bySheet.entries()].sort((a, b) => b[1].length - a[1].length).slice(0, MAX_SHEETS);
    const level = bySheet.size <= MAX_LARGE_SHEETS ? levelFor(ctx.manifest.thumbnails, q * dpr) : levelFor(ctx.manifest.thumbnails, 0);
    const cell = ctx.manifest.thumbnails.levels.find((l) => l.id === level)!.cell;
    this.quadSize = Math.min(this.quadSize, (1.5 * cell) / dpr);  // at most 1.5× enlarged: blur is worse than a smaller image
    const wanted = new Set<string>();
    for (const [, members] of sheets) {
      const url = ctx.data.thumbnail(d.dataset, members[0]!, level).url;
      wanted.add(url);
      if (!this.gl.hasTexture(url)) {
        this.loadSheet(url);
        continue;
      }
      const list: Quad[] = [];
      for (const i of members) {
        const ref = ctx.data.thumbnail(d.dataset, i, level);
        list.push({ x: d.xy[2 * i]!, y: d.xy[2 * i + 1]!, u0: ref.x / ref.sheetW, v0: ref.y / ref.sheetH, u1: (ref.x + ref.w) / ref.sheetW, v1: (ref.y + ref.h) / ref.sheetH });
      }
      out.set(url, list);
    }
    if (this.gl.textureCount > MAX_SHEETS) this.gl.dropTextures(wanted);
    return out;
  }

  /** Deep zoom, few points in view: each image alone (a few KB from its pack) as its own texture. */
  private singleQuads(d: Drawn, ids: number[]): Map<string, Quad[]> {
    const out = new Map<string, Quad[]>();
    const gl = this.gl!;
    const wanted = new Set<string>();
    for (const i of ids) {
      const url = this.singles.get(i);
      if (url === undefined) {
        this.singles.set(i, '');
        this.ctx!.data.thumbnailImage(d.dataset, i).then(
          (u) => { if (this.drawn?.xy === d.xy) { this.singles.set(i, u); this.schedule(); } },
          () => undefined,  // stays a dot
        );
        continue;
      }
      if (!url) continue;
      wanted.add(url);
      if (!gl.hasTexture(url)) this.loadSheet(url);
      else out.set(url, [{ x: d.xy[2 * i]!, y: d.xy[2 * i + 1]!, u0: 0, v0: 0, u1: 1, v1: 1 }]);
    }
    if (gl.textureCount > MAX_SHEETS) gl.dropTextures(wanted);
    return out;
  }

  private loadSheet(url: string): void {
    if (this.loading.has(url) || this.loading.size >= 6) return;  // a few at a time; the next redraw asks again
    this.loading.add(url);
    const img = new Image();
    img.decoding = 'async';
    img.onload = () => {
      this.loading.delete(url);
      this.gl?.addTexture(url, img);
      this.schedule();
    };
    img.onerror = () => this.loading.delete(url);  // retried on a later redraw
    img.src = url;
  }

  /** A new view: the transform follows at once (a tooltip placed next is placed right), the drawing on the next frame. */
  private setView(v: MapView2D): void {
    this.view = v;
    this.t = zoomedTransform(this.baseTransform(), v);
    this.schedule();
  }

  /** Zooms by `factor` keeping the data point under (sx, sy) CSS px in place (the wheel). */
  private zoomAt(factor: number, at: [number, number]): void {
    this.setView(viewPlacing(this.baseTransform(), this.t, at, at, this.view.zoom * factor));
  }

  /** The keys' (and buttons') zoom: about the selected point (else the query) kept in view, else the centre. */
  private zoomKey(factor: number): void {
    const rect = this.canvas.getBoundingClientRect();
    this.setView(zoomAbout(this.baseTransform(), this.view, factor, this.selected(), rect.width, rect.height, keepMargin(rect.width, rect.height)));
    this.followTip();
  }

  /** The keyboard's point (else the query) in data coordinates, or null. */
  private selected(): [number, number] | null {
    const d = this.drawn;
    const i = this.cursor >= 0 ? this.cursor : d?.q ?? -1;
    if (!d || i < 0 || 2 * i + 1 >= d.xy.length) return null;
    return [d.xy[2 * i]!, d.xy[2 * i + 1]!];
  }

  /** The keyboard's tooltip moves with the map. */
  private followTip(): void {
    if (this.cursor >= 0 && !this.tip.hidden && this.canvas.matches(':focus')) this.showTip(this.cursor);
  }

  private touchDown(e: PointerEvent): void {
    if (e.pointerType !== 'touch') return;
    if (this.touches.size === 0) this.touchMoved = false;
    this.canvas.setPointerCapture?.(e.pointerId);
    this.touches.set(e.pointerId, this.canvasPoint(e));
    this.startGesture();
  }

  private touchMove(e: PointerEvent): void {
    if (e.pointerType !== 'touch' || !this.touches.has(e.pointerId)) return;
    this.touches.set(e.pointerId, this.canvasPoint(e));
    const g = this.gesture;
    if (!g || !this.drawn) return;
    const { mid, spread } = this.fingers();
    const factor = g.spread > 0 && spread > 0 ? spread / g.spread : 1;
    if (!this.touchMoved && Math.hypot(mid[0] - g.mid[0], mid[1] - g.mid[1]) < 4 && Math.abs(spread - g.spread) < 4) return;
    this.touchMoved = true;
    this.tip.hidden = true;
    this.setView(viewPlacing(this.baseTransform(), g.t, g.mid, mid, g.view.zoom * factor));
  }

  private touchUp(e: PointerEvent): void {
    if (e.pointerType !== 'touch' || !this.touches.delete(e.pointerId)) return;
    this.startGesture();  // the remaining finger (if any) goes on panning from here
  }

  /** Anchors the gesture at the fingers now on the map (none: it ends). */
  private startGesture(): void {
    if (this.touches.size === 0) {
      this.gesture = null;
      return;
    }
    this.gesture = { view: this.view, t: zoomedTransform(this.baseTransform(), this.view), ...this.fingers() };
  }

  /** Midpoint and spread (distance between the first two) of the fingers on the map. */
  private fingers(): { mid: [number, number]; spread: number } {
    const pts = [...this.touches.values()];
    const mid: [number, number] = [pts.reduce((s, p) => s + p[0], 0) / pts.length, pts.reduce((s, p) => s + p[1], 0) / pts.length];
    const spread = pts.length >= 2 ? Math.hypot(pts[0]![0] - pts[1]![0], pts[0]![1] - pts[1]![1]) : 0;
    return { mid, spread };
  }

  private baseTransform(): PlotTransform {
    const rect = this.canvas.getBoundingClientRect();
    return plotTransform(rect.width, rect.height, PLOT_PAD);
  }

  private canvasPoint(e: PointerEvent): [number, number] {
    const rect = this.canvas.getBoundingClientRect();
    return [e.clientX - rect.left, e.clientY - rect.top];
  }

  private wheel(e: WheelEvent): void {
    if (!this.drawn) return;
    e.preventDefault();
    const rect = this.canvas.getBoundingClientRect();
    this.tip.hidden = true;
    this.zoomAt(Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015)), [e.clientX - rect.left, e.clientY - rect.top]);
  }

  private startDrag(e: MouseEvent): void {
    if (e.button !== 0) return;
    this.touchMoved = false;  // a mouse press (or a tap's compatibility press) after a touch pan
    this.drag = { x: e.clientX, y: e.clientY, cx: this.view.cx, cy: this.view.cy, moved: false };
  }

  private moveDrag(e: MouseEvent): void {
    const g = this.drag;
    if (!g || (e.buttons & 1) === 0) return;
    const dx = e.clientX - g.x, dy = e.clientY - g.y;
    if (!g.moved && Math.hypot(dx, dy) < 4) return;
    g.moved = true;
    this.tip.hidden = true;
    if (this.view.zoom === 1) return;  // the whole map is in view: nothing to pan to
    this.setView(panBy(this.baseTransform(), { ...this.view, cx: g.cx, cy: g.cy }, dx, dy));
  }

  private ring(g: CanvasRenderingContext2D, xy: Float32Array, id: number, r: number, stroke: string, halo: string, label: number | undefined): void {
    const [x, y] = toScreen(this.t, xy[2 * id] ?? 0, xy[2 * id + 1] ?? 0);
    g.beginPath();
    g.arc(x, y, r, 0, Math.PI * 2);
    g.fillStyle = pointColor(label ?? 0);
    g.fill();
    g.lineWidth = 3.5;
    g.strokeStyle = halo;
    g.stroke();
    g.lineWidth = 1.8;
    g.strokeStyle = stroke;
    g.stroke();
  }

  private pointAt(e: MouseEvent): number {
    if (!this.drawn) return -1;
    const rect = this.canvas.getBoundingClientRect();
    return nearestInGrid(this.drawn.grid, this.t, e.clientX - rect.left, e.clientY - rect.top, 10);
  }

  private key(e: KeyboardEvent): void {
    const n = this.drawn ? this.drawn.xy.length / 2 : 0;
    if (!n || !this.ctx) return;
    const rect = this.canvas.getBoundingClientRect();
    const arrow = ARROWS[e.key];
    if (arrow && e.shiftKey) {
      // Shift+arrow pans: the map moves the other way, showing more of the side the arrow points to.
      const step = PAN_STEP * Math.min(rect.width, rect.height);
      this.setView(panBy(this.baseTransform(), this.view, -arrow[0] * step, -arrow[1] * step));
      this.followTip();
    } else if (e.key === 'ArrowRight' || e.key === 'ArrowDown') this.cursor = (this.cursor + 1) % n;
    else if (e.key === 'ArrowLeft' || e.key === 'ArrowUp') this.cursor = (this.cursor - 1 + n) % n;
    else if ((e.key === 'Enter' || e.key === ' ') && this.cursor >= 0) this.ctx.navigate({ q: this.cursor });
    else if (e.key === 'Escape') this.tip.hidden = true;
    else if (e.key === '+' || e.key === '=') this.zoomKey(2);
    else if (e.key === '-') this.zoomKey(0.5);
    else if (e.key === '0') this.setView(WHOLE_MAP);
    else return;
    e.preventDefault();
    if (arrow && !e.shiftKey) {
      // The selected point stays in view: the map pans as little as needed to show it.
      this.setView(keepInView(this.baseTransform(), this.view, this.selected()!, rect.width, rect.height, keepMargin(rect.width, rect.height)));
      this.showTip(this.cursor);
      const at = this.cursor, cls = this.tip.querySelector('.tip-class')?.textContent ?? '';
      withName(this.drawn!.idx.names, at, (file) => {
        if (this.cursor === at) this.announce.textContent = `${at + 1} of ${n}: ${cls}, ${file}`;
      });
    }
  }

  private hover(e: MouseEvent): void {
    const i = this.pointAt(e);
    if (i < 0 || !this.ctx || !this.drawn) {
      this.tip.hidden = true;
      this.canvas.classList.remove('pointing');
      return;
    }
    this.canvas.classList.add('pointing');
    this.showTip(i);
  }

  private showTip(i: number): void {
    const ctx = this.ctx;
    if (!ctx || !this.drawn) return;
    const { idx } = this.drawn;
    const cls = ctx.data.dataset(ctx.state.dataset).classes[idx.labels[i] ?? -1] ?? '?';
    clear(this.tip);
    const file = h('span', { class: 'tip-file' });
    withName(idx.names, i, (name) => { file.textContent = name; });
    this.tip.append(
      thumbImg(ctx.data, ctx.state.dataset, i, '', 'tip-img'),
      h('span', { class: 'tip-class', text: cls }),
      file,
    );
    const rect = this.canvas.getBoundingClientRect();
    const [x, y] = toScreen(this.t, this.drawn.xy[2 * i] ?? 0, this.drawn.xy[2 * i + 1] ?? 0);
    // Keep the tooltip inside the canvas: flip to the left/top near the right/bottom edges.
    this.tip.style.left = `${x + (x > rect.width - 140 ? -130 : 12)}px`;
    this.tip.style.top = `${y + (y > rect.height - 150 ? -140 : 12)}px`;
    this.tip.hidden = false;
  }

  private click(e: MouseEvent): void {
    if (this.drag?.moved || this.touchMoved) return;  // the end of a pan or pinch, not a pick
    const i = this.pointAt(e);
    if (i >= 0 && this.ctx) this.ctx.navigate({ q: i });
  }
}
