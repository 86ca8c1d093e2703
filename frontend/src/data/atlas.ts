// Channel atlas files (docs/bundle.md "Channel atlas"): parsing and checking, no fetching (the
// provider fetches). index.json: channel order by selectivity; top.bin: each channel's top images;
// maps/{block}.bin: their activation maps, uint8 with a per-map scale.
import { BundleError } from './provider';
import type { IdDtype } from './types';

export interface AtlasIndex {
  channels: number;
  top: number;
  map_size: [number, number];
  block: number;
  /** All channel indices, most selective first. */
  order: number[];
  /** Variance of each channel's pooled activation, in `order` order. */
  selectivity: number[];
}

/** One maps/{block}.bin: channels [first, first + count), T images each, h×w maps. */
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

/** Checks a parsed atlas/index.json: sizes, and that `order` is a permutation of 0…C−1. */
export function checkAtlasIndex(raw: unknown, n: number, url = 'atlas index'): AtlasIndex {
  const a = raw as Partial<AtlasIndex> | null;
  if (a === null || typeof a !== 'object') throw new BundleError(url, 'atlas index is not a JSON object');
  if (!isInt(a.channels, 1) || !isInt(a.top, 1) || !isInt(a.block, 1)) throw new BundleError(url, '"channels", "top" and "block" must be positive integers');
  if (a.top > n) throw new BundleError(url, `"top" is ${a.top} but the dataset has ${n} images`);
  const ms = a.map_size;
  if (!Array.isArray(ms) || ms.length !== 2 || !ms.every((x) => isInt(x, 1))) throw new BundleError(url, '"map_size" must be [h, w] of positive integers');
  const c = a.channels;
  if (!Array.isArray(a.order) || a.order.length !== c) throw new BundleError(url, `"order" must list all ${c} channels`);
  const seen = new Uint8Array(c);
  for (const x of a.order) {
    if (!isInt(x) || x >= c || seen[x]) throw new BundleError(url, `"order" must be a permutation of 0…${c - 1} (bad entry ${JSON.stringify(x)})`);
    seen[x] = 1;
  }
  if (!Array.isArray(a.selectivity) || a.selectivity.length !== c || !a.selectivity.every((x) => typeof x === 'number')) {
    throw new BundleError(url, `"selectivity" must hold ${c} numbers`);
  }
  return a as AtlasIndex;
}

export function idBytes(idDtype: IdDtype | string, url = 'atlas'): 2 | 4 {
  if (idDtype === 'uint16') return 2;
  if (idDtype === 'uint32') return 4;
  throw new BundleError(url, `unknown id_dtype ${idDtype}`);
}

/** top.bin: ids[C·T], row c = channel c's top T images; every id must be < n. */
export function atlasTopFromBuffer(buf: ArrayBuffer, idx: AtlasIndex, n: number, idDtype: IdDtype | string, url = 'atlas top'): Uint16Array | Uint32Array {
  const size = idBytes(idDtype, url);
  const count = idx.channels * idx.top;
  if (buf.byteLength !== count * size) throw new BundleError(url, `expected ${count * size} bytes (${idx.channels} channels × ${idx.top} images × ${size}); got ${buf.byteLength}`);
  const ids = size === 4 ? new Uint32Array(buf) : new Uint16Array(buf);
  for (let i = 0; i < ids.length; i++) if (ids[i]! >= n) throw new BundleError(url, `image id ${ids[i]} is out of range for N=${n}`);
  return ids;
}

/** Channels in maps block b. */
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
  if (count === 0) throw new BundleError(url, `block ${b} is past the last channel (${idx.channels} channels, ${idx.block} per block)`);
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

/** Channel c's map at rank r as activations (uint8 / 255 · scale), h·w row-major. */
export function channelMap(block: AtlasBlock, c: number, r: number): Float32Array {
  const i = (c - block.first) * block.top + r;
  if (c < block.first || c >= block.first + block.count || r < 0 || r >= block.top) throw new Error(`channel ${c} rank ${r} is not in this block`);
  const hw = block.h * block.w;
  const scale = block.scales[i]!;
  const out = new Float32Array(hw);
  for (let p = 0; p < hw; p++) out[p] = (block.maps[i * hw + p]! / 255) * scale;
  return out;
}
