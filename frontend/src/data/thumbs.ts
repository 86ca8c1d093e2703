// Where a thumbnail lives in the bundle's sprite sheets (docs/bundle.md "Thumbnails"), and the
// CSS that shows one cell of a sheet in a box of any size.
import type { ThumbnailsInfo } from './types';

/** One thumbnail: its sheet and the cell's pixel box in it (x, y, w, h; sheet sheetW × sheetH). */
export interface ThumbRef {
  url: string;
  level: string;
  /** Cell edge in sheet pixels. */
  cell: number;
  sheet: number;
  col: number;
  row: number;
  /** Columns (= grid) and rows of this sheet: the last sheet has only the rows it needs. */
  cols: number;
  rows: number;
  x: number;
  y: number;
  w: number;
  h: number;
  sheetW: number;
  sheetH: number;
}

/** The geometry of thumbnail `id` of a dataset of `size` images (url left empty). */
export function thumbRef(info: ThumbnailsInfo, size: number, id: number, level?: string): ThumbRef {
  if (!Number.isInteger(id) || id < 0 || id >= size) throw new RangeError(`image ${id} out of range 0…${size - 1}`);
  const lv = level === undefined ? info.levels.reduce((a, b) => (b.cell > a.cell ? b : a)) : info.levels.find((l) => l.id === level);
  if (!lv) throw new Error(`no thumbnail level "${level}" (have ${info.levels.map((l) => l.id).join(', ')})`);
  const per = info.grid * info.grid;
  const sheet = Math.floor(id / per);
  const pos = id - sheet * per;
  const row = Math.floor(pos / info.grid);
  const col = pos - row * info.grid;
  const rows = Math.ceil(Math.min(per, size - sheet * per) / info.grid);
  const c = lv.cell;
  return { url: '', level: lv.id, cell: c, sheet, col, row, cols: info.grid, rows, x: col * c, y: row * c, w: c, h: c, sheetW: info.grid * c, sheetH: rows * c };
}

/** The smallest level whose cells are at least `px` device pixels (else the largest). */
export function levelFor(info: ThumbnailsInfo, px: number): string {
  const sorted = [...info.levels].sort((a, b) => a.cell - b.cell);
  return (sorted.find((l) => l.cell >= px) ?? sorted[sorted.length - 1]!).id;
}

/**
 * CSS background properties that show the cell in a box of any size: the sheet scaled so one
 * cell fills the box (percent sizes), positioned by percent (p% aligns p% of image and box).
 */
export function thumbCss(ref: ThumbRef): { backgroundImage: string; backgroundSize: string; backgroundPosition: string } {
  const pos = (i: number, n: number) => (n > 1 ? (i / (n - 1)) * 100 : 0);
  return {
    backgroundImage: `url("${ref.url.replace(/["\\\n]/g, (c) => encodeURIComponent(c))}")`,
    backgroundSize: `${ref.cols * 100}% ${ref.rows * 100}%`,
    backgroundPosition: `${pos(ref.col, ref.cols)}% ${pos(ref.row, ref.rows)}%`,
  };
}
