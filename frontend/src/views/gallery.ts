// Virtualized gallery: a scroll box whose height is that of every row, with only the rows in view
// (plus a margin) in the DOM, so 100,000 images cost a few hundred elements. Rows are tiles of
// consecutive ids ("All") or, "By category", a heading row then that class's tile rows.
import { h } from '../dom';

export interface GalleryInput {
  size: number;
  labels: ArrayLike<number>;
  classes: readonly string[];
  byClass: boolean;
  /** The element for image id (a button); called only for rows scrolled into view. */
  tile(id: number): HTMLElement;
  /** Told the first and last image ids of the rows in view after each scroll (a position label). */
  onView?: (first: number, last: number) => void;
}

/** One row: a class heading (head ≥ 0) or tiles ids[from … to). */
export interface GalleryRow {
  top: number;
  height: number;
  head: number;
  ids: ArrayLike<number> | null;
  from: number;
  to: number;
}

export const TILE_MIN = 72;
export const GAP = 4;
export const HEAD_H = 34;
/** Rows rendered above and below the visible ones (smooth scrolling without blank flashes). */
const OVERSCAN_PX = 400;

/** Columns and tile height for a box of `width` px (tiles ≥ TILE_MIN px, GAP between). */
export function galleryColumns(width: number): { cols: number; rowH: number } {
  const cols = Math.max(1, Math.floor((width + GAP) / (TILE_MIN + GAP)));
  const tile = (width - (cols - 1) * GAP) / cols;
  return { cols, rowH: Math.round(tile) + GAP };
}

/** The row model: pure, so it is tested without a DOM. */
export function galleryRows(inp: Pick<GalleryInput, 'size' | 'labels' | 'classes' | 'byClass'>, cols: number, rowH: number): GalleryRow[] {
  const rows: GalleryRow[] = [];
  let top = 0;
  const tiles = (ids: ArrayLike<number> | null, n: number) => {
    for (let from = 0; from < n; from += cols) {
      rows.push({ top, height: rowH, head: -1, ids, from, to: Math.min(n, from + cols) });
      top += rowH;
    }
  };
  if (!inp.byClass) {
    tiles(null, inp.size);
    return rows;
  }
  const members: number[][] = inp.classes.map(() => []);
  for (let i = 0; i < inp.size; i++) members[inp.labels[i] ?? 0]?.push(i);
  members.forEach((ids, c) => {
    rows.push({ top, height: HEAD_H, head: c, ids: null, from: 0, to: 0 });
    top += HEAD_H;
    tiles(ids, ids.length);
  });
  return rows;
}

/** Index of the last row starting at or before y (binary search over the row tops). */
export function rowAt(rows: readonly GalleryRow[], y: number): number {
  let lo = 0;
  let hi = rows.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (rows[mid]!.top <= y) lo = mid;
    else hi = mid - 1;
  }
  return Math.max(0, lo);
}

/** The row showing class c first: its heading (by class) or the row of its first image. */
export function classRow(rows: readonly GalleryRow[], labels: ArrayLike<number>, c: number): number {
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r]!;
    if (row.head === c) return r;
    if (row.head < 0 && row.ids === null) {
      for (let j = row.from; j < row.to; j++) if (labels[j] === c) return r;
    }
  }
  return -1;
}

export class VirtualGallery {
  readonly root = h('div', { class: 'gallery-body gal-scroll', attrs: { tabindex: -1 } });
  private readonly space = h('div', { class: 'gal-space' });
  private inp: GalleryInput | null = null;
  private rows: GalleryRow[] = [];
  private width = -1;
  private readonly shown = new Map<number, HTMLElement>();
  private selected: number | null = null;
  private frame = 0;

  constructor() {
    this.root.append(this.space);
    this.root.addEventListener('scroll', () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.layout()).observe(this.root);
  }

  show(inp: GalleryInput): void {
    this.inp = inp;
    this.width = -1;
    this.root.scrollTop = 0;
    this.layout();
  }

  select(id: number | null): void {
    this.selected = id;
    for (const b of this.root.querySelectorAll<HTMLElement>('.gal-item')) this.mark(b);
  }

  /** Scrolls so that class c's first image (or heading) is the top row, and focuses that image. */
  jumpToClass(c: number): void {
    if (!this.inp) return;
    const r = classRow(this.rows, this.inp.labels, c);
    if (r < 0) return;
    this.root.scrollTop = this.rows[r]!.top;
    this.render();
    const id = Array.prototype.indexOf.call(this.inp.labels, c);  // members are listed in id order in both layouts
    this.root.querySelector<HTMLElement>(`.gal-item[data-id="${id}"]`)?.focus({ preventScroll: true });
  }

  private mark(b: HTMLElement): void {
    const on = this.selected !== null && Number(b.dataset.id) === this.selected;
    b.classList.toggle('selected', on);
    b.setAttribute('aria-pressed', String(on));
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  private layout(): void {
    const inp = this.inp;
    const width = this.space.clientWidth;
    if (!inp || width === 0 || width === this.width) return;
    const anchor = this.rows.length ? this.firstIdInView() : 0;
    this.width = width;
    const { cols, rowH } = galleryColumns(width);
    this.rows = galleryRows(inp, cols, rowH);
    const last = this.rows[this.rows.length - 1];
    this.space.style.height = `${last ? last.top + last.height : 0}px`;
    this.space.style.setProperty('--cols', String(cols));
    for (const el of this.shown.values()) el.remove();
    this.shown.clear();
    if (anchor > 0) this.root.scrollTop = this.rows[this.rowOfId(anchor)]?.top ?? 0;  // keep the place on resize
    this.render();
  }

  private firstIdInView(): number {
    const row = this.rows[rowAt(this.rows, this.root.scrollTop)];
    if (!row || row.head >= 0) return 0;
    return row.ids ? (row.ids[row.from] ?? 0) : row.from;
  }

  private rowOfId(id: number): number {
    return this.rows.findIndex((r) => r.head < 0 && (r.ids ? Array.prototype.slice.call(r.ids, r.from, r.to).includes(id) : id >= r.from && id < r.to));
  }

  private render(): void {
    const inp = this.inp;
    if (!inp || !this.rows.length) {
      for (const el of this.shown.values()) el.remove();
      this.shown.clear();
      return;
    }
    const top = this.root.scrollTop - OVERSCAN_PX;
    const bottom = this.root.scrollTop + this.root.clientHeight + OVERSCAN_PX;
    const first = rowAt(this.rows, Math.max(0, top));
    let last = first;
    while (last + 1 < this.rows.length && this.rows[last + 1]!.top < bottom) last++;
    for (const [r, el] of this.shown) {
      if (r < first || r > last) {
        el.remove();
        this.shown.delete(r);
      }
    }
    for (let r = first; r <= last; r++) {
      if (this.shown.has(r)) continue;
      const el = this.rowEl(inp, this.rows[r]!);
      this.shown.set(r, el);
      this.space.append(el);
    }
    this.root.dataset.rows = String(this.shown.size);
    if (inp.onView) {
      const ids: number[] = [];
      const y0 = this.root.scrollTop, y1 = y0 + this.root.clientHeight;
      for (let r = rowAt(this.rows, y0); r < this.rows.length && this.rows[r]!.top < y1; r++) {
        const row = this.rows[r]!;
        if (row.head >= 0 || row.to === row.from) continue;
        ids.push(row.ids ? row.ids[row.from]! : row.from, row.ids ? row.ids[row.to - 1]! : row.to - 1);
      }
      if (ids.length) inp.onView(Math.min(...ids), Math.max(...ids));
    }
  }

  private rowEl(inp: GalleryInput, row: GalleryRow): HTMLElement {
    let el: HTMLElement;
    if (row.head >= 0) {
      el = h('h3', { class: 'gal-class', text: `${inp.classes[row.head] ?? '?'} (${countOf(inp.labels, row.head)})` });
    } else {
      el = h('div', { class: 'gal-row', attrs: { role: 'presentation' } });
      for (let j = row.from; j < row.to; j++) {
        const b = inp.tile(row.ids ? row.ids[j]! : j);
        this.mark(b);
        el.append(b);
      }
    }
    el.style.top = `${row.top}px`;
    el.style.height = `${row.height - (row.head >= 0 ? 0 : GAP)}px`;
    return el;
  }
}

const counts = new WeakMap<ArrayLike<number>, number[]>();
function countOf(labels: ArrayLike<number>, c: number): number {
  let per = counts.get(labels);
  if (!per) {
    per = [];
    for (let i = 0; i < labels.length; i++) per[labels[i]!] = (per[labels[i]!] ?? 0) + 1;
    counts.set(labels, per);
  }
  return per[c] ?? 0;
}
