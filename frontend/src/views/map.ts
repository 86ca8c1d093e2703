// UMAP view: one canvas draws every image as a dot (smooth at 10⁴ points), coloured by class.
// Hover shows the thumbnail; click makes that image the query; query and its top-k are ringed.
import { h, clear, status } from '../dom';
import { knnRow, nearestPoint, plotTransform, toScreen, type PlotTransform } from '../data/score';
import type { DatasetIndex } from '../data/types';
import type { Ctx, ViewModule } from '../context';
import { Latest } from '../context';
import { classColor } from './palette';

/** Canvas inset in CSS px; the e2e test uses the same value to click points. */
export const PLOT_PAD = 16;

interface Drawn {
  xy: Float32Array;
  idx: DatasetIndex;
  q: number | null;
  hits: number[];
}

export class MapView implements ViewModule {
  readonly root: HTMLElement;
  private readonly canvas = h('canvas', { class: 'umap-canvas', attrs: { tabindex: 0, role: 'img' } });
  private readonly tip = h('div', { class: 'umap-tip', attrs: { hidden: true, 'aria-hidden': 'true' } });
  private readonly legend = h('ul', { class: 'legend', attrs: { 'aria-label': 'Classes' } });
  private readonly info = h('div', { class: 'map-info' });
  /** Screen-reader echo of the keyboard cursor. */
  private readonly announce = h('p', { class: 'sr-only', attrs: { 'aria-live': 'polite' } });
  private cursor = -1;
  private readonly latest = new Latest();
  private drawn: Drawn | null = null;
  private ctx: Ctx | null = null;
  private t: PlotTransform = plotTransform(1, 1, PLOT_PAD);

  constructor() {
    const wrap = h('div', { class: 'umap-wrap' }, [this.canvas, this.tip]);
    this.root = h('section', { class: 'view view-map', attrs: { 'aria-label': 'UMAP map' } }, [
      h('div', { class: 'map-side' }, [h('h2', { text: 'UMAP map' }), this.info, this.legend, this.announce,
        h('p', { class: 'hint', text: 'Keyboard: focus the map, ←/→ step through the images, Enter makes one the query.' })]),
      wrap,
    ]);
    this.canvas.addEventListener('mousemove', (e) => this.hover(e));
    this.canvas.addEventListener('mouseleave', () => (this.tip.hidden = true));
    this.canvas.addEventListener('click', (e) => this.click(e));
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
    const knnP = state.q === null ? Promise.resolve(null) : data.neighbors(state.dataset, state.model, state.layer, state.pooling, state.metric);
    Promise.all([data.umap(state.dataset, state.model, state.layer, state.pooling), data.index(state.dataset), knnP]).then(
      ([xy, idx, knn]) => {
        if (!fresh()) return;
        const hits = knn && state.q !== null ? knnRow(knn, state.q).map((n) => n.id) : [];
        this.drawn = { xy, idx, q: state.q, hits };
        this.renderInfo(ctx, idx);
        this.draw();
      },
      (e: unknown) => {
        if (!fresh()) return;
        clear(this.info);
        this.info.append(status(`Could not load the map: ${e instanceof Error ? e.message : String(e)}`, 'error'));
      },
    );
    this.canvas.setAttribute('aria-label', `UMAP map of ${ds.size} images of ${ds.name}, ${state.model} layer ${state.layer}, coloured by class. The query and its nearest neighbours are ringed.`);
    this.renderLegend(ds.classes);
  }

  private renderInfo(ctx: Ctx, idx: DatasetIndex): void {
    const { state, data } = ctx;
    clear(this.info);
    const q = state.q;
    this.info.append(
      h('p', { class: 'hint', text: `${idx.size} images, ${state.model} · ${state.layer}. Similar images land close together. Hover a dot to see it, click to make it the query.` }),
    );
    if (q !== null) {
      const cls = data.dataset(state.dataset).classes[idx.labels[q] ?? -1] ?? '?';
      this.info.append(
        h('p', { class: 'map-query' }, [
          h('img', { attrs: { src: data.thumbnailUrl(state.dataset, q), alt: `Query ${idx.files[q] ?? ''} (${cls})`, width: 48, height: 48 } }),
          h('span', { text: `Query: ${idx.files[q] ?? ''} (${cls}), marked by the large target ring; its top ${this.drawn?.hits.length ?? 0} results are ringed.` }),
        ]),
      );
    }
  }

  private renderLegend(classes: readonly string[]): void {
    clear(this.legend);
    classes.forEach((name, i) => {
      const sw = h('span', { class: 'swatch', attrs: { 'aria-hidden': 'true' } });
      sw.style.backgroundColor = classColor(i);
      this.legend.append(h('li', {}, [sw, h('span', { text: name })]));
    });
  }

  /** Redraws everything; cheap enough (≈ N arcs) to do on every change. */
  draw(): void {
    const d = this.drawn;
    const rect = this.canvas.getBoundingClientRect();
    if (!d || rect.width === 0) return;
    const t0 = performance.now();
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(rect.width * dpr);
    this.canvas.height = Math.round(rect.height * dpr);
    const g = this.canvas.getContext('2d');
    if (!g) return;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, rect.width, rect.height);
    this.t = plotTransform(rect.width, rect.height, PLOT_PAD);
    const n = d.xy.length / 2;
    const r = n > 3000 ? 1.6 : n > 500 ? 2.5 : 3.5;
    g.globalAlpha = d.q === null ? 0.85 : 0.55;
    this.drawPoints(g, d, r);
    g.globalAlpha = 1;
    for (const id of d.hits) this.ring(g, d.xy, id, r + 3, '#ffffff', '#000000', d.idx.labels[id]);
    if (d.q !== null) {
      // The query: its dot enlarged plus a wide outer target ring, distinct from the neighbours' rings.
      this.ring(g, d.xy, d.q, r + 3, '#000000', '#ffffff', d.idx.labels[d.q]);
      const [x, y] = toScreen(this.t, d.xy[2 * d.q] ?? 0, d.xy[2 * d.q + 1] ?? 0);
      g.beginPath();
      g.arc(x, y, r + 10, 0, Math.PI * 2);
      g.lineWidth = 4;
      g.strokeStyle = '#ffffff';
      g.stroke();
      g.lineWidth = 2.2;
      g.strokeStyle = '#000000';
      g.stroke();
    }
    this.canvas.dataset.points = String(n);
    // Exposed for the e2e smoothness check at 10⁴ points.
    this.canvas.dataset.drawMs = (performance.now() - t0).toFixed(1);
  }

  private drawPoints(g: CanvasRenderingContext2D, d: Drawn, r: number): void {
    // One path per class: n arcs but only C fill calls.
    const byClass = new Map<number, number[]>();
    d.idx.labels.forEach((l, i) => (byClass.get(l) ?? byClass.set(l, []).get(l)!).push(i));
    for (const [label, ids] of byClass) {
      g.fillStyle = classColor(label);
      g.beginPath();
      for (const i of ids) {
        const [x, y] = toScreen(this.t, d.xy[2 * i] ?? 0, d.xy[2 * i + 1] ?? 0);
        g.moveTo(x + r, y);
        g.arc(x, y, r, 0, Math.PI * 2);
      }
      g.fill();
    }
  }

  private ring(g: CanvasRenderingContext2D, xy: Float32Array, id: number, r: number, stroke: string, halo: string, label: number | undefined): void {
    const [x, y] = toScreen(this.t, xy[2 * id] ?? 0, xy[2 * id + 1] ?? 0);
    g.beginPath();
    g.arc(x, y, r, 0, Math.PI * 2);
    g.fillStyle = classColor(label ?? 0);
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
    return nearestPoint(this.drawn.xy, this.t, e.clientX - rect.left, e.clientY - rect.top, 10);
  }

  private key(e: KeyboardEvent): void {
    const n = this.drawn ? this.drawn.xy.length / 2 : 0;
    if (!n || !this.ctx) return;
    if (e.key === 'ArrowRight' || e.key === 'ArrowDown') this.cursor = (this.cursor + 1) % n;
    else if (e.key === 'ArrowLeft' || e.key === 'ArrowUp') this.cursor = (this.cursor - 1 + n) % n;
    else if ((e.key === 'Enter' || e.key === ' ') && this.cursor >= 0) this.ctx.navigate({ q: this.cursor });
    else if (e.key === 'Escape') this.tip.hidden = true;
    else return;
    e.preventDefault();
    if (e.key.startsWith('Arrow')) {
      this.showTip(this.cursor);
      this.announce.textContent = `${this.cursor + 1} of ${n}: ${this.tip.querySelector('.tip-class')?.textContent ?? ''}, ${this.tip.querySelector('.tip-file')?.textContent ?? ''}`;
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
    this.tip.append(
      h('img', { attrs: { src: ctx.data.thumbnailUrl(ctx.state.dataset, i), alt: '', width: 96, height: 96 } }),
      h('span', { class: 'tip-class', text: cls }),
      h('span', { class: 'tip-file', text: idx.files[i] ?? '' }),
    );
    const rect = this.canvas.getBoundingClientRect();
    const [x, y] = toScreen(this.t, this.drawn.xy[2 * i] ?? 0, this.drawn.xy[2 * i + 1] ?? 0);
    // Keep the tooltip inside the canvas: flip to the left/top near the right/bottom edges.
    this.tip.style.left = `${x + (x > rect.width - 140 ? -130 : 12)}px`;
    this.tip.style.top = `${y + (y > rect.height - 150 ? -140 : 12)}px`;
    this.tip.hidden = false;
  }

  private click(e: MouseEvent): void {
    const i = this.pointAt(e);
    if (i >= 0 && this.ctx) this.ctx.navigate({ q: i });
  }
}
