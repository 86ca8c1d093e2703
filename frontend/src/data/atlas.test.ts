import { describe, expect, it } from 'vitest';
import { atlasBlockFromBuffer, atlasTopFromBuffer, blockChannels, channelMap, checkAtlasIndex, type AtlasIndex } from './atlas';

// A fixture written byte by byte from the contract (docs/bundle.md), independently of the reader:
// C = 20 channels (blocks of 16 and 4), T = 3 images, 2×2 maps, uint16 ids, N = 50.
const C = 20;
const T = 3;
const H = 2;
const W = 2;
const N = 50;
const idx: AtlasIndex = { channels: C, top: T, map_size: [H, W], block: 16, order: Array.from({ length: C }, (_, i) => C - 1 - i), selectivity: Array.from({ length: C }, (_, i) => C - i) };

const id = (c: number, r: number) => (c * 7 + r * 3) % N;
const value = (c: number, r: number) => c + r / 10;
const scale = (c: number, r: number) => (c === 5 ? 0 : 1 + c + r);
const byte = (c: number, r: number, y: number, x: number) => (c === 5 ? 0 : (c * 31 + r * 17 + y * 5 + x * 3) % 256);

function topBytes(): ArrayBuffer {
  const dv = new DataView(new ArrayBuffer(C * T * 2));
  for (let c = 0; c < C; c++) for (let r = 0; r < T; r++) dv.setUint16((c * T + r) * 2, id(c, r), true);
  return dv.buffer;
}

function blockBytes(b: number): ArrayBuffer {
  const first = b * 16;
  const count = Math.min(16, C - first);
  const bt = count * T;
  const dv = new DataView(new ArrayBuffer(bt * 8 + bt * H * W));
  for (let i = 0; i < count; i++) for (let r = 0; r < T; r++) {
    const c = first + i;
    dv.setFloat32((i * T + r) * 4, value(c, r), true);
    dv.setFloat32(bt * 4 + (i * T + r) * 4, scale(c, r), true);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) dv.setUint8(bt * 8 + ((i * T + r) * H + y) * W + x, byte(c, r, y, x));
  }
  return dv.buffer;
}

describe('atlas readers', () => {
  it('read top.bin rows by channel index', () => {
    const ids = atlasTopFromBuffer(topBytes(), idx, N, 'uint16');
    for (let c = 0; c < C; c++) for (let r = 0; r < T; r++) expect(ids[c * T + r]).toBe(id(c, r));
  });

  it('read every map of both blocks (a full and a partial one), activations = byte/255·scale', () => {
    expect([blockChannels(idx, 0), blockChannels(idx, 1), blockChannels(idx, 2)]).toEqual([16, 4, 0]);
    for (const b of [0, 1]) {
      const blk = atlasBlockFromBuffer(blockBytes(b), idx, b);
      for (let c = blk.first; c < blk.first + blk.count; c++) for (let r = 0; r < T; r++) {
        const i = (c - blk.first) * T + r;
        expect(blk.values[i]).toBeCloseTo(value(c, r), 5);
        expect(blk.scales[i]).toBe(scale(c, r));
        const m = channelMap(blk, c, r);
        for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) expect(m[y * W + x]).toBeCloseTo((byte(c, r, y, x) / 255) * scale(c, r), 5);
      }
    }
    expect(() => channelMap(atlasBlockFromBuffer(blockBytes(1), idx, 1), 3, 0)).toThrow(/not in this block/);
  });

  it('refuse wrong sizes, out-of-range ids and a bad order', () => {
    expect(() => atlasTopFromBuffer(topBytes().slice(2), idx, N, 'uint16')).toThrow(/expected 120 bytes/);
    expect(() => atlasTopFromBuffer(topBytes(), idx, 10, 'uint16')).toThrow(/out of range for N=10/);
    expect(() => atlasBlockFromBuffer(blockBytes(1), idx, 0)).toThrow(/expected/);
    expect(() => atlasBlockFromBuffer(blockBytes(1), idx, 2)).toThrow(/past the last channel/);
    expect(checkAtlasIndex(JSON.parse(JSON.stringify(idx)), N)).toEqual(idx);
    expect(() => checkAtlasIndex({ ...idx, order: [...idx.order.slice(1), idx.order[1]] }, N)).toThrow(/permutation/);
    expect(() => checkAtlasIndex({ ...idx, top: 9 }, 5)).toThrow(/"top" is 9/);
    expect(() => checkAtlasIndex({ ...idx, map_size: [2] }, N)).toThrow(/map_size/);
  });
});
