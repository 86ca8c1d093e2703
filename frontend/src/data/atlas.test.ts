import { describe, expect, it } from 'vitest';
import { atlasBlockFromBuffer, atlasRowsBytes, atlasRowsFromBuffer, blockChannels, channelMap, checkAtlasIndex, pageRanks, rowIds, type AtlasIndex } from './atlas';

// A fixture written byte by byte from the contract (docs/bundle.md), independently of the reader:
// C = 20 channels by selectivity rank (maps blocks of 16 and 4 ranks, rows pages of 8, 8 and 4),
// T = 3 images, 2×2 maps, N = 50; rank r is channel (7r + 3) mod 20 (a permutation).
const C = 20;
const T = 3;
const H = 2;
const W = 2;
const N = 50;
const idx: AtlasIndex = { channels: C, top: T, map_size: [H, W], block: 16, page: 8 };

const channelOf = (r: number) => (7 * r + 3) % C;
const sel = (r: number) => 100 - r * 2.5;
const id = (r: number, i: number) => (r * 7 + i * 3) % N;
const value = (r: number, i: number) => r + i / 10;
const scale = (r: number, i: number) => (r === 5 ? 0 : 1 + r + i);
const byte = (r: number, i: number, y: number, x: number) => (r === 5 ? 0 : (r * 31 + i * 17 + y * 5 + x * 3) % 256);

function rowsBytes(p: number, size: 2 | 4): ArrayBuffer {
  const first = p * idx.page;
  const count = Math.min(idx.page, C - first);
  const dv = new DataView(new ArrayBuffer(count * (8 + T * size)));
  for (let k = 0; k < count; k++) {
    dv.setFloat32(k * 4, sel(first + k), true);
    dv.setUint32(count * 4 + k * 4, channelOf(first + k), true);
    for (let i = 0; i < T; i++) {
      const at = count * 8 + (k * T + i) * size;
      if (size === 2) dv.setUint16(at, id(first + k, i), true);
      else dv.setUint32(at, id(first + k, i), true);
    }
  }
  return dv.buffer;
}

function blockBytes(b: number): ArrayBuffer {
  const first = b * 16;
  const count = Math.min(16, C - first);
  const bt = count * T;
  const dv = new DataView(new ArrayBuffer(bt * 8 + bt * H * W));
  for (let k = 0; k < count; k++) for (let i = 0; i < T; i++) {
    const r = first + k;
    dv.setFloat32((k * T + i) * 4, value(r, i), true);
    dv.setFloat32(bt * 4 + (k * T + i) * 4, scale(r, i), true);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) dv.setUint8(bt * 8 + ((k * T + i) * H + y) * W + x, byte(r, i, y, x));
  }
  return dv.buffer;
}

describe('atlas readers', () => {
  it('read every rows page (full and partial, uint16 and uint32 ids): channel, selectivity and top images by rank', () => {
    expect([pageRanks(idx, 0), pageRanks(idx, 1), pageRanks(idx, 2), pageRanks(idx, 3)]).toEqual([8, 8, 4, 0]);
    for (const [dtype, size] of [['uint16', 2], ['uint32', 4]] as const) {
      for (const p of [0, 1, 2]) {
        expect(atlasRowsBytes(idx, p, dtype)).toBe(pageRanks(idx, p) * (8 + T * size));
        const rows = atlasRowsFromBuffer(rowsBytes(p, size), idx, p, N, dtype);
        expect([rows.first, rows.count]).toEqual([p * 8, pageRanks(idx, p)]);
        for (let r = rows.first; r < rows.first + rows.count; r++) {
          expect(rows.channel[r - rows.first]).toBe(channelOf(r));
          expect(rows.selectivity[r - rows.first]).toBe(sel(r));
          expect([...rowIds(rows, r)]).toEqual(Array.from({ length: T }, (_, i) => id(r, i)));
        }
        expect(() => rowIds(rows, rows.first + rows.count)).toThrow(/not in this rows page/);
      }
    }
  });

  it('read every map of both blocks (a full and a partial one) by rank, activations = byte/255·scale', () => {
    expect([blockChannels(idx, 0), blockChannels(idx, 1), blockChannels(idx, 2)]).toEqual([16, 4, 0]);
    for (const b of [0, 1]) {
      const blk = atlasBlockFromBuffer(blockBytes(b), idx, b);
      for (let r = blk.first; r < blk.first + blk.count; r++) for (let i = 0; i < T; i++) {
        const j = (r - blk.first) * T + i;
        expect(blk.values[j]).toBeCloseTo(value(r, i), 5);
        expect(blk.scales[j]).toBe(scale(r, i));
        const m = channelMap(blk, r, i);
        for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) expect(m[y * W + x]).toBeCloseTo((byte(r, i, y, x) / 255) * scale(r, i), 5);
      }
    }
    expect(() => channelMap(atlasBlockFromBuffer(blockBytes(1), idx, 1), 3, 0)).toThrow(/not in this block/);
  });

  it('refuse wrong sizes, out-of-range ids and channels, and a bad index', () => {
    expect(() => atlasRowsFromBuffer(rowsBytes(0, 2).slice(2), idx, 0, N, 'uint16')).toThrow(/expected 112 bytes/);
    expect(() => atlasRowsFromBuffer(rowsBytes(0, 2), idx, 0, 10, 'uint16')).toThrow(/out of range for N=10/);
    expect(() => atlasRowsFromBuffer(rowsBytes(0, 2), { ...idx, channels: 8 }, 0, N, 'uint16')).toThrow(/channel \d+ is out of range for 8 channels/);
    expect(() => atlasRowsFromBuffer(rowsBytes(2, 2), idx, 3, N, 'uint16')).toThrow(/past the last channel/);
    expect(() => atlasBlockFromBuffer(blockBytes(1), idx, 0)).toThrow(/expected/);
    expect(() => atlasBlockFromBuffer(blockBytes(1), idx, 2)).toThrow(/past the last channel/);
    expect(checkAtlasIndex(JSON.parse(JSON.stringify(idx)), N)).toEqual(idx);
    expect(() => checkAtlasIndex({ ...idx, page: 0 }, N)).toThrow(/"page"/);
    expect(() => checkAtlasIndex({ ...idx, top: 9 }, 5)).toThrow(/"top" is 9/);
    expect(() => checkAtlasIndex({ ...idx, map_size: [2] }, N)).toThrow(/map_size/);
  });
});
