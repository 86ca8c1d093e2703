// Bundle format 4 at scale: one query's neighbours by Range (and the whole-file fallback),
// uint32 ids past 65,535 without building 65k images, sprite-sheet thumbnail geometry.
import { describe, expect, it } from 'vitest';
import { DataProvider, knnFromBuffer } from './provider';
import { thumbCss, thumbRef, levelFor } from './thumbs';
import { validManifest } from './manifest.fixture';
import type { Manifest } from './types';

function bigManifest(n: number, k: number): Manifest {
  const m = { ...validManifest(), browser_search: null };
  m.datasets = [{ ...m.datasets[0]!, size: n, k, id_dtype: n > 65535 ? 'uint32' : 'uint16', score: { top: Math.min(15, k), scale: (Math.min(15, k) * (Math.min(15, k) + 1)) / 2 } }];
  return m;
}

/** A .knn file: row q has distances q + i/10, first id q + 1, then ids (q·7919 + i·104729) mod n. */
function knnFile(n: number, k: number, idBytes: 2 | 4): ArrayBuffer {
  const buf = new ArrayBuffer(n * k * (4 + idBytes));
  const d = new Float32Array(buf, 0, n * k);
  const ids = idBytes === 4 ? new Uint32Array(buf, n * k * 4, n * k) : new Uint16Array(buf, n * k * 4, n * k);
  for (let q = 0; q < n; q++) for (let i = 0; i < k; i++) {
    d[q * k + i] = q + i / 10;
    ids[q * k + i] = i === 0 ? (q + 1) % n : (q * 7919 + i * 104729) % n;
  }
  return buf;
}

/** A static host: single Range requests answered 206 (or ignored: 200 with the whole file). */
function host(manifest: Manifest, files: Record<string, ArrayBuffer>, ranges: boolean) {
  const log: { path: string; status: number; bytes: number }[] = [];
  const fetcher = async (url: string, init?: RequestInit) => {
    const path = new URL(url).pathname.slice(3);
    if (path === 'manifest.json') return new Response(JSON.stringify(manifest));
    const body = files[path];
    if (!body) return new Response('no', { status: 404 });
    const range = new Headers(init?.headers).get('range');
    const m = ranges ? /^bytes=(\d+)-(\d+)$/.exec(range ?? '') : null;
    if (m) {
      const part = body.slice(Number(m[1]), Number(m[2]) + 1);
      log.push({ path, status: 206, bytes: part.byteLength });
      return new Response(part, { status: 206, headers: { 'content-range': `bytes ${m[1]}-${m[2]}/${body.byteLength}`, 'content-length': String(part.byteLength) } });
    }
    log.push({ path, status: 200, bytes: body.byteLength });
    return new Response(body, { headers: { 'content-length': String(body.byteLength) } });
  };
  return { log, fetcher };
}

const KNN = 'datasets/d/m1/l1/avg/cosine.knn';

describe('neighborRow', () => {
  for (const n of [100, 70_000]) {
    it(`fetches only query q's row by Range (N=${n}, ${n > 65535 ? 'uint32' : 'uint16'} ids)`, async () => {
      const k = 15, idBytes = n > 65535 ? 4 : 2;
      const file = knnFile(n, k, idBytes);
      const { log, fetcher } = host(bigManifest(n, k), { [KNN]: file }, true);
      const p = await DataProvider.open('http://h/b/manifest.json', fetcher, 'http://h/');
      for (const q of [0, n - 1, 12345 % n]) {
        const row = await p.neighborRow('d', 'm1', 'l1', 'avg', 'cosine', q);
        const whole = knnFromBuffer(file, n, k, idBytes === 4 ? 'uint32' : 'uint16');
        expect(row.map((r) => r.id)).toEqual(Array.from(whole.ids.subarray(q * k, q * k + k)));
        expect(row.map((r) => r.distance)).toEqual(Array.from(whole.distances.subarray(q * k, q * k + k)));
      }
      expect(log.every((e) => e.status === 206)).toBe(true);
      expect(log.reduce((s, e) => s + e.bytes, 0)).toBe(3 * k * (4 + idBytes));  // ≤ 120 bytes per query
      if (n > 65535) expect((await p.neighborRow('d', 'm1', 'l1', 'avg', 'cosine', n - 2))[0]!.id).toBe(n - 1);  // > 65,535: uint32
    });
  }

  it('falls back to the whole file when the host ignores Range, and then fetches nothing more', async () => {
    const n = 50, k = 15;
    const { log, fetcher } = host(bigManifest(n, k), { [KNN]: knnFile(n, k, 2) }, false);
    const p = await DataProvider.open('http://h/b/manifest.json', fetcher, 'http://h/');
    const a = await p.neighborRow('d', 'm1', 'l1', 'avg', 'cosine', 3);
    const before = log.length;
    const b = await p.neighborRow('d', 'm1', 'l1', 'avg', 'cosine', 4);
    expect(a).toHaveLength(k);
    expect(b[0]!.distance).toBeCloseTo(4);
    expect(log.length).toBe(before);
    expect(log.every((e) => e.status === 200 && e.bytes === n * k * 6)).toBe(true);
  });

  it('refuses an out-of-range id in a row and a wrong Content-Range', async () => {
    const n = 20, k = 15;
    const bad = knnFile(n, k, 2);
    new Uint16Array(bad, n * k * 4, n * k)[2 * k] = n;  // query 2's first id
    const { fetcher } = host(bigManifest(n, k), { [KNN]: bad }, true);
    const p = await DataProvider.open('http://h/b/manifest.json', fetcher, 'http://h/');
    await expect(p.neighborRow('d', 'm1', 'l1', 'avg', 'cosine', 2)).rejects.toThrow(/out of range/);
    const liar = async (url: string) => url.endsWith('manifest.json') ? new Response(JSON.stringify(bigManifest(n, k))) : new Response(new ArrayBuffer(60), { status: 206, headers: { 'content-range': 'bytes 0-59/99' } });
    const p2 = await DataProvider.open('http://h/b/manifest.json', liar, 'http://h/');
    await expect(p2.neighborRow('d', 'm1', 'l1', 'avg', 'cosine', 1)).rejects.toThrow(/the server sent bytes 0-59\/99/);
  });
});

describe('sprite-sheet thumbnails', () => {
  const info = validManifest().thumbnails;

  it('places id in its sheet, row and column; the last sheet is only as tall as needed', () => {
    const r = thumbRef(info, 300, 257, 'large');
    expect([r.sheet, r.col, r.row, r.x, r.y, r.w, r.sheetW, r.sheetH]).toEqual([1, 1, 0, 96, 0, 96, 1536, 3 * 96]);
    expect(thumbRef(info, 300, 255).sheetH).toBe(16 * 96);  // default: the largest cells
    expect(() => thumbRef(info, 300, 300)).toThrow(RangeError);
    expect(() => thumbRef(info, 300, 1, 'huge')).toThrow(/no thumbnail level/);
  });

  it('picks the smallest level that is sharp enough', () => {
    expect(levelFor(info, 20)).toBe('small');
    expect(levelFor(info, 33)).toBe('large');
    expect(levelFor(info, 500)).toBe('large');
  });

  it('CSS shows exactly the cell at any box size (percent size and position)', () => {
    const r = { ...thumbRef(info, 300, 16 * 5 + 15), url: 'http://h/s.jpg' };
    const css = thumbCss(r);
    expect(css.backgroundSize).toBe('1600% 1600%');
    // Box of B px: sheet drawn at 16B × 16B; position p% puts the image's p% point at the box's p%:
    // offset = p/100·(B − 16B) = −15B·p/100 must equal −col·B.
    const [px, py] = css.backgroundPosition.split(' ').map((v) => parseFloat(v));
    expect((15 * px!) / 100).toBeCloseTo(r.col);
    expect((15 * py!) / 100).toBeCloseTo(r.row);
    expect(css.backgroundImage).toBe('url("http://h/s.jpg")');
  });

  it('provider.thumbnail fills the sheet URL; thumbnailUrl is the transitional per-image file or empty', async () => {
    const m = bigManifest(300, 15);
    const p = await DataProvider.open('http://h/b/manifest.json', async () => new Response(JSON.stringify(m)), 'http://h/');
    expect(p.thumbnail('d', 257, 'small').url).toBe('http://h/b/datasets/d/thumbs/small/1.jpg');
    expect(p.thumbnailUrl('d', 3)).toBe('http://h/b/datasets/d/thumbs/3.jpg');
    const { thumbnail: _drop, ...files } = m.files;
    const p2 = await DataProvider.open('http://h/b/manifest.json', async () => new Response(JSON.stringify({ ...m, files })), 'http://h/');
    expect(p2.thumbnailUrl('d', 3)).toBe('');
  });

  /** A pack of `count` fake "JPEGs": image j is j + 1 bytes of value j. */
  function packFile(count: number): ArrayBuffer {
    const head = 4 * (count + 1);
    const offsets = new Uint32Array(count + 1);
    offsets[0] = head;
    for (let j = 0; j < count; j++) offsets[j + 1] = offsets[j]! + j + 1;
    const buf = new Uint8Array(offsets[count]!);
    buf.set(new Uint8Array(offsets.buffer), 0);
    for (let j = 0; j < count; j++) buf.fill(j, offsets[j]!, offsets[j + 1]!);
    return buf.buffer;
  }

  for (const ranges of [true, false]) {
    it(`thumbnailImage: one image from its sheet's pack ${ranges ? 'by Range (table once per pack)' : '(host without Range: the whole pack once)'}`, async () => {
      const m = bigManifest(300, 15);
      const files = { 'datasets/d/thumbs/large/0.jpgs': packFile(256), 'datasets/d/thumbs/large/1.jpgs': packFile(44) };
      const { log, fetcher } = host(m, files, ranges);
      const blobs: Blob[] = [];
      const create = URL.createObjectURL;
      URL.createObjectURL = (b: Blob) => { blobs.push(b); return `blob:${blobs.length}`; };
      try {
        const p = await DataProvider.open('http://h/b/manifest.json', fetcher, 'http://h/');
        expect(await p.thumbnailImage('d', 256 + 43)).toBe('blob:1');
        expect(await p.thumbnailImage('d', 256 + 5)).toBe('blob:2');
        expect(await p.thumbnailImage('d', 256 + 5)).toBe('blob:2');  // cached
        expect([...new Uint8Array(await blobs[0]!.arrayBuffer())]).toEqual(new Array(44).fill(43));
        expect([...new Uint8Array(await blobs[1]!.arrayBuffer())]).toEqual(new Array(6).fill(5));
        if (ranges) expect(log.map((e) => e.bytes)).toEqual([4 * 45, 44, 6]);
        else expect(log.map((e) => e.status)).toEqual([200]);
      } finally {
        URL.createObjectURL = create;
      }
    });
  }
});

describe('neighborIds (the judgements ranking)', () => {
  for (const n of [200, 70_000]) {
    it(`fetches only the ids of query q's row: one Range request of k·id bytes (N=${n})`, async () => {
      const k = 15, idBytes = n > 65535 ? 4 : 2;
      const file = knnFile(n, k, idBytes);
      const { log, fetcher } = host(bigManifest(n, k), { [KNN]: file }, true);
      const p = await DataProvider.open('http://h/b/manifest.json', fetcher, 'http://h/');
      const whole = knnFromBuffer(file, n, k, idBytes === 4 ? 'uint32' : 'uint16');
      for (const q of [0, n - 1, 77]) expect(Array.from(await p.neighborIds('d', 'm1', 'l1', 'avg', 'cosine', q))).toEqual(Array.from(whole.ids.subarray(q * k, q * k + k)));
      expect(log.map((e) => e.bytes)).toEqual([k * idBytes, k * idBytes, k * idBytes]);
      await p.neighborIds('d', 'm1', 'l1', 'avg', 'cosine', 77);
      await p.neighborRow('d', 'm1', 'l1', 'avg', 'cosine', 5);
      const before = log.length;
      expect(Array.from(await p.neighborIds('d', 'm1', 'l1', 'avg', 'cosine', 5))).toEqual(Array.from(whole.ids.subarray(5 * k, 5 * k + k)));
      expect(log.length).toBe(before);  // a row already shown costs nothing
    });
  }

  it('takes the whole file from a host without Range support, once', async () => {
    const n = 50, k = 15;
    const { log, fetcher } = host(bigManifest(n, k), { [KNN]: knnFile(n, k, 2) }, false);
    const p = await DataProvider.open('http://h/b/manifest.json', fetcher, 'http://h/');
    await p.neighborIds('d', 'm1', 'l1', 'avg', 'cosine', 3);
    const ids = await p.neighborIds('d', 'm1', 'l1', 'avg', 'cosine', 4);
    expect(ids[0]).toBe(5);
    expect(log).toHaveLength(1);
  });
});
