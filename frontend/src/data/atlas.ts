// Channel atlas files (docs/bundle.md "Channel atlas"): parsing and checking, no fetching (the
// provider fetches). Everything is in selectivity order (rank r = the r-th most selective channel):
// index.json: sizes only; rows/{page}.bin: `page` ranks each, their channel, selectivity and top
// images (the first screen is rows/0.bin alone); maps/{block}.bin: their activation maps, uint8
// with a per-map scale.
import { BundleError } from './errors';
import type { IdDtype } from './types';

export interface AtlasIndex {
  channels: number;
  top: number;
  map_size: [number, number];
  /** Ranks per maps file. */
  block: number;
  /** Ranks per rows file. */
  page: number;
}

/** One rows/{page}.bin: ranks [first, first + count). */
export interface AtlasRows {
  first: number;
  count: number;
  top: number;
  selectivity: Float32Array; // [count] variance of the channel's pooled activation over the dataset
  channel: Uint32Array; // [count] channel index
  ids: Uint16Array | Uint32Array; // [count·T] top images, strongest first
}

/** One maps/{block}.bin: ranks [first, first + count), T images each, h×w maps. */
export interface AtlasBlock {
  first: number;
  count: number;
  top: number;
  h: number;
  w: number;
  values: Float32Array; // [count·T] mean activation
  scales: Float32Array; // [count·T] max of the map before quantization (0: all ≤ 0)
  maps: Uint8Array; // [count·T·h·w]
}

const isInt = (x: unknown, min = 0): x is number => typeof x === 'number' && Number.isInteger(x) && x >= min;

/** Checks a parsed atlas/index.json: positive sizes, T ≤ N. */
export function checkAtlasIndex(raw: unknown, n: number, url = 'atlas index'): AtlasIndex {
  const a = raw as Partial<AtlasIndex> | null;
  if (a === null || typeof a !== 'object') throw new BundleError(url, 'atlas index is not a JSON object');
  if (!isInt(a.channels, 1) || !isInt(a.top, 1) || !isInt(a.block, 1) || !isInt(a.page, 1)) throw new BundleError(url, '"channels", "top", "block" and "page" must be positive integers');
  if (a.top > n) throw new BundleError(url, `"top" is ${a.top} but the dataset has ${n} images`);
  const ms = a.map_size;
  if (!Array.isArray(ms) || ms.length !== 2 || !ms.every((x) => isInt(x, 1))) throw new BundleError(url, '"map_size" must be [h, w] of positive integers');
  return { channels: a.channels, top: a.top, map_size: [ms[0], ms[1]], block: a.block, page: a.page };
}

export function idBytes(idDtype: IdDtype | string, url = 'atlas'): 2 | 4 {
  if (idDtype === 'uint16') return 2;
  if (idDtype === 'uint32') return 4;
  throw new BundleError(url, `unknown id_dtype ${idDtype}`);
}

/** Ranks in rows file p. */
export function pageRanks(idx: AtlasIndex, p: number): number {
  return Math.max(0, Math.min(idx.page, idx.channels - p * idx.page));
}

export function atlasRowsBytes(idx: AtlasIndex, p: number, idDtype: IdDtype | string): number {
  return pageRanks(idx, p) * (8 + idx.top * idBytes(idDtype));
}

/** rows/{p}.bin: float32 selectivity[R], uint32 channel[R], id ids[R·T]; channels < C, ids < n. */
export function atlasRowsFromBuffer(buf: ArrayBuffer, idx: AtlasIndex, p: number, n: number, idDtype: IdDtype | string, url = 'atlas rows'): AtlasRows {
  const count = pageRanks(idx, p);
  if (count === 0) throw new BundleError(url, `rows page ${p} is past the last channel (${idx.channels} channels, ${idx.page} per page)`);
  const size = idBytes(idDtype, url);
  const expected = atlasRowsBytes(idx, p, idDtype);
  if (buf.byteLength !== expected) throw new BundleError(url, `expected ${expected} bytes (${count} channels × (8 + ${idx.top} images × ${size})); got ${buf.byteLength}`);
  const channel = new Uint32Array(buf, count * 4, count);
  for (const c of channel) if (c >= idx.channels) throw new BundleError(url, `channel ${c} is out of range for ${idx.channels} channels`);
  const ids = size === 4 ? new Uint32Array(buf, count * 8, count * idx.top) : new Uint16Array(buf, count * 8, count * idx.top);
  for (let i = 0; i < ids.length; i++) if (ids[i]! >= n) throw new BundleError(url, `image id ${ids[i]} is out of range for N=${n}`);
  return { first: p * idx.page, count, top: idx.top, selectivity: new Float32Array(buf, 0, count), channel, ids };
}

/** Rank r's top images (rows must hold r). */
export function rowIds(rows: AtlasRows, r: number): Uint16Array | Uint32Array {
  if (r < rows.first || r >= rows.first + rows.count) throw new Error(`rank ${r} is not in this rows page`);
  const i = r - rows.first;
  return rows.ids.subarray(i * rows.top, (i + 1) * rows.top);
}

/** Ranks in maps block b. */
export function blockChannels(idx: AtlasIndex, b: number): number {
  return Math.max(0, Math.min(idx.block, idx.channels - b * idx.block));
}

export function atlasBlockBytes(idx: AtlasIndex, b: number): number {
  const [h, w] = idx.map_size;
  const bt = blockChannels(idx, b) * idx.top;
  return bt * 8 + bt * h * w;
}

/** maps/{b}.bin: float32 value[B·T], float32 scale[B·T], uint8 map[B·T·h·w]; no header. */
export function atlasBlockFromBuffer(buf: ArrayBuffer, idx: AtlasIndex, b: number, url = 'atlas maps'): AtlasBlock {
  const count = blockChannels(idx, b);
  if (count === 0) throw new BundleError(url, `maps block ${b} is past the last channel (${idx.channels} channels, ${idx.block} per block)`);
  const [h, w] = idx.map_size;
  const bt = count * idx.top;
  const expected = atlasBlockBytes(idx, b);
  if (buf.byteLength !== expected) throw new BundleError(url, `expected ${expected} bytes (${count} channels × ${idx.top} images × (8 + ${h}·${w})); got ${buf.byteLength}`);
  return {
    first: b * idx.block,
    count,
    top: idx.top,
    h,
    w,
    values: new Float32Array(buf, 0, bt),
    scales: new Float32Array(buf, bt * 4, bt),
    maps: new Uint8Array(buf, bt * 8, bt * h * w),
  };
}

/** The map of selectivity rank `rank`'s i-th top image as activations (uint8 / 255 · scale), h·w row-major. */
export function channelMap(block: AtlasBlock, rank: number, i: number): Float32Array {
  if (rank < block.first || rank >= block.first + block.count || i < 0 || i >= block.top) throw new Error(`rank ${rank} image ${i} is not in this block`);
  const j = (rank - block.first) * block.top + i;
  const hw = block.h * block.w;
  const scale = block.scales[j]!;
  const out = new Float32Array(hw);
  for (let p = 0; p < hw; p++) out[p] = (block.maps[j * hw + p]! / 255) * scale;
  return out;
}
