import { describe, expect, it, vi } from 'vitest';
import { BundleChangedError, BundleError } from './errors';
import { DataProvider, checkNamesPage, checkSummary, labelsFromBuffer, fillTemplate, knnFromBuffer, scoresFromBuffer, umapFromBuffer, validateManifest } from './provider';
import { K, N, validManifest } from './manifest.fixture';
import { PagedNames, loadedOnly, withName } from './names';
import type { Manifest } from './types';

/** The shared valid fixture (N=16, k=15), without browser search. */
function manifest(): Manifest {
  return { ...validManifest(), browser_search: null };
}

/** An in-memory bundle served by a fake fetch that counts requests. */
function fakeBundle(files: Record<string, unknown>) {
  const calls: string[] = [];
  const fetcher = vi.fn(async (url: string) => {
    calls.push(url);
    const key = new URL(url).pathname.replace(/^\/b\//, '');
    const body = files[key];
    if (body === undefined) return new Response('nope', { status: 404 });
    if (body instanceof Response) return body;
    return new Response(body instanceof ArrayBuffer ? body : JSON.stringify(body));
  });
  return { calls, fetcher };
}

function knnBuffer(n: number, k: number): ArrayBuffer {
  const buf = new ArrayBuffer(n * k * 6);
  new Float32Array(buf, 0, n * k).set(Array.from({ length: n * k }, (_, i) => i / 10));
  new Uint16Array(buf, n * k * 4, n * k).set(Array.from({ length: n * k }, (_, i) => (i + 1) % n));
  return buf;
}

describe('fillTemplate', () => {
  it('fills placeholders and URL-encodes values', () => {
    expect(fillTemplate('datasets/{dataset}/thumbs/{id}.jpg', { dataset: 'a b', id: 7 })).toBe('datasets/a%20b/thumbs/7.jpg');
    expect(() => fillTemplate('{model}/x', {})).toThrow(/needs a value for \{model\}/);
  });
});

describe('binary views', () => {
  it('reads a .knn file as distances then ids (uint16 and uint32)', () => {
    const t = knnFromBuffer(knnBuffer(3, 2), 3, 2, 'uint16');
    expect(Array.from(t.distances)).toEqual([0, 0.1, 0.2, 0.3, 0.4, 0.5].map(Math.fround));
    expect(Array.from(t.ids)).toEqual([1, 2, 0, 1, 2, 0]);
    const n32 = 70001; // ids past 65535 need uint32
    const b32 = new ArrayBuffer(n32 * 1 * 8);
    new Uint32Array(b32, n32 * 4, 2).set([70000, 1]);
    expect(Array.from(knnFromBuffer(b32, n32, 1, 'uint32').ids.subarray(0, 2))).toEqual([70000, 1]);
  });
  it('names the file and sizes when a buffer has the wrong length', () => {
    expect(() => knnFromBuffer(new ArrayBuffer(10), 3, 2, 'uint16', 'x.knn')).toThrow(/x\.knn: expected 36 bytes/);
    expect(() => knnFromBuffer(new ArrayBuffer(36), 3, 2, 'int8', 'x.knn')).toThrow(/unknown id_dtype/);
    expect(() => umapFromBuffer(new ArrayBuffer(8), 3, 'u.f32')).toThrow(/u\.f32: expected 24 bytes/);
    expect(() => scoresFromBuffer(new ArrayBuffer(5), 3, 2, 's.u8')).toThrow(/expected 6 bytes/);
  });
});

describe('validateManifest', () => {
  it('accepts a format-2 manifest and rejects others with the reason', () => {
    const u = 'http://h/m.json';
    expect(validateManifest(manifest(), u).k).toBe(15);
    expect(() => validateManifest({ ...manifest(), bundle_version: 1 }, u)).toThrow(/m\.json: unsupported bundle_version 1/);
    expect(() => validateManifest({ ...manifest(), models: [] }, u)).toThrow(/m\.json: invalid manifest: models: must have at least 1 item\(s\), has 0/);
    expect(() => validateManifest(null, u)).toThrow(BundleError);
    expect(() => validateManifest([], u)).toThrow(/not a JSON object/);
  });
});

describe('DataProvider', () => {
  const files = () => ({
    'manifest.json': manifest(),
    'datasets/d/labels.bin': Uint8Array.from({ length: N }, (_, i) => i % 2).buffer,
    'datasets/d/names/0.json': names(0, N),
    'datasets/d/m1/l2/avg/cosine.knn': knnBuffer(N, K),
    'datasets/d/m1/l2/gem/umap.f32': new Float32Array(N * 2).fill(0.5).buffer,
    // 16 queries in blocks of 10: block 1 holds queries 10..15; each row is 2 poolings x 3 configurations
    'datasets/d/scores/class/cosine/0.u8': new Uint8Array(10 * 6).buffer,
    'datasets/d/scores/class/cosine/1.u8': Uint8Array.from({ length: 6 * 6 }, (_, i) => i).buffer,
    'datasets/d/summary/class/cosine.json': { dataset: 'd', metric: 'cosine', poolings: ['avg', 'gem'], search_score: [[[1, 2], [3]], [[1, 2], [3]]], precision_at_k: [[[1, 2], [3]], [[1, 2], [3]]], map_at_k: [[[1, 2], [3]], [[1, 2], [3]]] },
  });
  const names = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `c/${from + i}.png`);

  it('resolves templates relative to the manifest', async () => {
    const { fetcher } = fakeBundle(files());
    const p = await DataProvider.open('http://h/b/manifest.json', fetcher);
    expect(p.thumbnailUrl('d', 2)).toBe('http://h/b/datasets/d/thumbs/2.jpg');
    expect(p.resolve('tfjs/m/model.json')).toBe('http://h/b/tfjs/m/model.json');
    expect(p.configCount()).toBe(3);
  });

  it('reads the channel atlas in rank order: index, one rows file per page, maps blocks; format 1 (atlas_top) counts as no atlas', async () => {
    const atlasFiles = { atlas_index: 'datasets/{dataset}/{model}/{layer}/atlas/index.json', atlas_rows: 'datasets/{dataset}/{model}/{layer}/atlas/rows/{page}.bin', atlas_maps: 'datasets/{dataset}/{model}/{layer}/atlas/maps/{block}.bin' };
    const m = manifest();
    m.files = { ...m.files, ...atlasFiles };
    m.datasets[0]!.atlas = ['m1'];
    // C = 3 channels, T = 2, pages of 2 ranks: rows/0.bin holds ranks 0-1, rows/1.bin rank 2.
    const rows = (sel: number[], ch: number[], ids: number[]) => {
      const buf = new ArrayBuffer(sel.length * 8 + ids.length * 2);
      new Float32Array(buf, 0, sel.length).set(sel);
      new Uint32Array(buf, sel.length * 4, ch.length).set(ch);
      new Uint16Array(buf, sel.length * 8, ids.length).set(ids);
      return buf;
    };
    const { fetcher, calls } = fakeBundle({
      ...files(), 'manifest.json': m,
      'datasets/d/m1/l2/atlas/index.json': { channels: 3, top: 2, map_size: [1, 1], block: 16, page: 2 },
      'datasets/d/m1/l2/atlas/rows/0.bin': rows([9, 4], [2, 0], [5, 6, 7, 8]),
      'datasets/d/m1/l2/atlas/rows/1.bin': rows([1], [1], [N - 1, 0]),
    });
    const p = await DataProvider.open('http://h/b/manifest.json', fetcher);
    expect([p.hasAtlas('d', 'm1'), p.hasAtlas('d', 'm2')]).toEqual([true, false]);
    const idx = await p.atlasIndex('d', 'm1', 'l2');
    const r0 = await p.atlasRows('d', 'm1', 'l2', idx, 0);
    expect([Array.from(r0.channel), Array.from(r0.selectivity), Array.from(r0.ids)]).toEqual([[2, 0], [9, 4], [5, 6, 7, 8]]);
    const r1 = await p.atlasRows('d', 'm1', 'l2', idx, 1);
    expect([r1.first, Array.from(r1.channel), Array.from(r1.ids)]).toEqual([2, [1], [N - 1, 0]]);
    expect(calls.map((u) => u.replace('http://h/b/datasets/d/m1/l2/', ''))).toEqual(['http://h/b/manifest.json', 'atlas/index.json', 'atlas/rows/0.bin', 'atlas/rows/1.bin']);
    const older = manifest();
    older.files = { ...older.files, atlas_index: atlasFiles.atlas_index, atlas_top: 'datasets/{dataset}/{model}/{layer}/atlas/top.bin', atlas_maps: atlasFiles.atlas_maps };
    older.datasets[0]!.atlas = ['m1'];
    const q = await DataProvider.open('http://h/b/manifest.json', fakeBundle({ 'manifest.json': older }).fetcher);
    expect(q.hasAtlas('d', 'm1')).toBe(false);
  });

  it('fetches lazily and each file only once (in-memory cache)', async () => {
    const { fetcher, calls } = fakeBundle(files());
    const p = await DataProvider.open('http://h/b/manifest.json', fetcher);
    expect(calls).toHaveLength(1);
    const [a, b] = await Promise.all([p.neighbors('d', 'm1', 'l2', 'avg', 'cosine'), p.neighbors('d', 'm1', 'l2', 'avg', 'cosine')]);
    expect(a).toBe(b);
    await p.umap('d', 'm1', 'l2', 'gem');
    await p.umap('d', 'm1', 'l2', 'gem');
    expect(Array.from(await p.queryScores('d', 'cosine', 15, 'class'))).toEqual([30, 31, 32, 33, 34, 35]);
    expect(Array.from(await p.queryScores('d', 'cosine', 11, 'class'))).toEqual([6, 7, 8, 9, 10, 11]);
    expect(Array.from(await p.queryScores('d', 'cosine', 0, 'class'))).toHaveLength(6);
    expect(calls.map((u) => u.replace('http://h/b/', ''))).toEqual([
      'manifest.json', 'datasets/d/m1/l2/avg/cosine.knn', 'datasets/d/m1/l2/gem/umap.f32', 'datasets/d/scores/class/cosine/1.u8',
      'datasets/d/scores/class/cosine/0.u8',
    ]);
  });

  it('reports a missing file with its URL and does not cache the failure', async () => {
    const f = files();
    const { fetcher, calls } = fakeBundle(f);
    const p = await DataProvider.open('http://h/b/manifest.json', fetcher);
    await expect(p.umap('d', 'm2', 'x', 'avg')).rejects.toThrow(/datasets\/d\/m2\/x\/avg\/umap\.f32: HTTP 404/);
    (f as Record<string, unknown>)['datasets/d/m2/x/avg/umap.f32'] = new Float32Array(2 * N).buffer;
    await expect(p.umap('d', 'm2', 'x', 'avg')).resolves.toHaveLength(2 * N);
    expect(calls.filter((u) => u.endsWith('m2/x/avg/umap.f32'))).toHaveLength(2);
  });

  it('reads labels whole and names a page at a time, each page once, placeholders never "undefined"', async () => {
    const m = manifest();
    m.datasets[0]!.names_page = 5; // N = 16: pages 0-2 of 5 names, page 3 of 1
    const f: Record<string, unknown> = { ...files(), 'manifest.json': m };
    delete f['datasets/d/names/0.json'];
    for (let p = 0; p < 4; p++) f[`datasets/d/names/${p}.json`] = names(5 * p, Math.min(N, 5 * p + 5));
    const { fetcher, calls } = fakeBundle(f);
    const p = await DataProvider.open('http://h/b/manifest.json', fetcher);
    const idx = await p.index('d');
    expect(idx.labels).toBeInstanceOf(Uint8Array);
    expect(Array.from(idx.labels)).toEqual(Array.from({ length: N }, (_, i) => i % 2));
    expect(idx.names.get(7)).toBeUndefined();
    const shown: string[] = [];
    withName(idx.names, 7, (s) => shown.push(s));
    expect(shown).toEqual(['image #7']);
    expect(await Promise.all([idx.names.name(7), idx.names.name(9), idx.names.name(5), idx.names.name(15)])).toEqual(['c/7.png', 'c/9.png', 'c/5.png', 'c/15.png']);
    expect(shown).toEqual(['image #7', 'c/7.png']);
    expect(idx.names.get(6)).toBe('c/6.png'); // page 1 is kept: no fetch
    expect(await (await p.index('d')).names.name(8)).toBe('c/8.png');
    await expect(idx.names.name(N)).rejects.toThrow(RangeError);
    expect(calls.map((u) => u.replace('http://h/b/datasets/d/', ''))).toEqual(['http://h/b/manifest.json', 'labels.bin', 'names/1.json', 'names/3.json']);
  });

  it('checks labels and names pages against the manifest before use', async () => {
    const two = new Uint16Array([0, 1, 2]).buffer;
    expect(Array.from(labelsFromBuffer(two, 3, 3, 'uint16'))).toEqual([0, 1, 2]);
    expect(() => labelsFromBuffer(two, 3, 2, 'uint16', 'l.bin')).toThrow(/l\.bin: label 2 of image 2 is not a class number 0…1/);
    expect(() => labelsFromBuffer(two, 3, 3, 'uint8', 'l.bin')).toThrow(/l\.bin: expected 3 bytes \(N=3 uint8 labels\); got 6/);
    expect(labelsFromBuffer(new Uint32Array([70_000]).buffer, 1, 70_001, 'uint32')).toBeInstanceOf(Uint32Array);
    expect(checkNamesPage(['a', 'b'], 7, 5, 1)).toEqual(['a', 'b']);
    expect(() => checkNamesPage(['a'], 7, 5, 1, 'n.json')).toThrow(/n\.json: names page 1 lists 1 names; N=7 and 5 a page imply 2/);
    expect(() => checkNamesPage({ files: [] }, 7, 5, 0, 'n.json')).toThrow(/a names page must be a JSON list/);
    expect(() => checkNamesPage(['a', 3], 7, 5, 1, 'n.json')).toThrow(/every file name must be a string/);
    const f = files();
    (f as Record<string, unknown>)['datasets/d/labels.bin'] = new Uint8Array(2).buffer;
    const p = await DataProvider.open('http://h/b/manifest.json', fakeBundle(f).fetcher);
    await expect(p.index('d')).rejects.toThrow(/labels\.bin: expected 16 bytes \(N=16 uint8 labels\); got 2/);
  });

  it('label fields: the class field of class folders comes from labels.bin (no fetch); a labels-file field is fetched and checked', async () => {
    const { fetcher, calls } = fakeBundle(files());
    const p = await DataProvider.open('http://h/b/manifest.json', fetcher);
    expect(Array.from(await p.fieldLabels('d', 'class')).slice(0, 4)).toEqual([1, 2, 1, 2]);
    expect(calls.map((u) => u.replace('http://h/b/', ''))).toEqual(['manifest.json', 'datasets/d/labels.bin']);
    const m = manifest();
    m.datasets[0] = { ...m.datasets[0]!, labels: 'file', groups: 'top folders', fields: [{ id: 'tone', name: 'tone', values: ['dark', 'light'], dtype: 'uint8', labelled: 15, queries: 15, skipped: 1 }] };
    const f = { ...files(), 'manifest.json': m, 'datasets/d/fields/tone.bin': Uint8Array.from({ length: N }, (_, i) => (i === 0 ? 0 : 1 + (i % 2))).buffer };
    const q = await DataProvider.open('http://h/b/manifest.json', fakeBundle(f).fetcher);
    expect(Array.from(await q.fieldLabels('d', 'tone')).slice(0, 3)).toEqual([0, 2, 1]);
    (f as Record<string, unknown>)['datasets/d/fields/tone.bin'] = new Uint8Array(N).fill(3).buffer;
    const r = await DataProvider.open('http://h/b/manifest.json', fakeBundle(f).fetcher);
    await expect(r.fieldLabels('d', 'tone')).rejects.toThrow(/fields\/tone\.bin: label 3 of image 0 is not a class number 0…2/);
  });

  it('checks the shape of guidance files: [pooling][model][layer] numbers or null', async () => {
    const good = { dataset: 'd', metric: 'cosine', k: 15, hubness: [[[1, null], [3]], [[1, 2], [3]]], agreement: [[[0.1, 0.2], [0.3]], [[0.1, 0.2], [0.3]]] };
    const f = { ...files(), 'datasets/d/guidance/cosine.json': good };
    const p = await DataProvider.open('http://h/b/manifest.json', fakeBundle(f).fetcher);
    expect((await p.guidance('d', 'cosine')).hubness[0]![0]).toEqual([1, null]);
    (f as Record<string, unknown>)['datasets/d/guidance/cosine.json'] = { ...good, agreement: [[[0.1], [0.3]], [[0.1, 0.2], [0.3]]] };
    const q = await DataProvider.open('http://h/b/manifest.json', fakeBundle(f).fetcher);
    await expect(q.guidance('d', 'cosine')).rejects.toThrow(/guidance\/cosine\.json: agreement must hold \[pooling\]\[model\]\[layer\] numbers/);
  });

  it('checks the shape of summary files before use', async () => {
    const f = files();
    (f as Record<string, unknown>)['datasets/d/summary/class/cosine.json'] = { dataset: 'd', metric: 'cosine', poolings: ['avg', 'gem'], search_score: [[[1, 2]], [[1, 2], [3]]], precision_at_k: [], map_at_k: [] };
    const p = await DataProvider.open('http://h/b/manifest.json', fakeBundle(f).fetcher);
    await expect(p.summary('d', 'cosine', 'class')).rejects.toThrow(/summary\/class\/cosine\.json: "search_score" must hold, for each of the 2 poolings, one number per layer for each of the 2 models \(2, 1 layers\)/);
    expect(checkSummary(files()['datasets/d/summary/class/cosine.json'], ['avg', 'gem'], [2, 1]).search_score[1]).toEqual([[1, 2], [3]]);
    expect(() => checkSummary(files()['datasets/d/summary/class/cosine.json'], ['avg'], [2, 1], 's.json')).toThrow(/s\.json: "poolings" must be the manifest's \[avg\]/);
  });

  it('refuses a binary file whose announced size disagrees with the manifest, without reading it', async () => {
    const f = files();
    let pulled = 0;
    const body = new ReadableStream({ pull(c) { pulled++; c.enqueue(new Uint8Array(1 << 16)); } });
    (f as Record<string, unknown>)['datasets/d/m1/l2/gem/umap.f32'] = new Response(body, { headers: { 'content-length': String(1e10) } });
    const p = await DataProvider.open('http://h/b/manifest.json', fakeBundle(f).fetcher);
    await expect(p.umap('d', 'm1', 'l2', 'gem')).rejects.toThrow(/umap\.f32: the server announces 10000000000 bytes; the manifest implies 128/);
    expect(pulled).toBeLessThanOrEqual(1);
  });

  it('refuses neighbour ids past the end of the dataset', () => {
    const buf = knnBuffer(N, K);
    new Uint16Array(buf, N * K * 4, N * K)[7] = N;
    expect(() => knnFromBuffer(buf, N, K, 'uint16', 'x.knn')).toThrow(/x\.knn: neighbour id 16 is out of range for N=16/);
  });

  it('explains a missing manifest', async () => {
    const { fetcher } = fakeBundle({});
    await expect(DataProvider.open('http://h/b/manifest.json', fetcher)).rejects.toThrow(/manifest.json: HTTP 404 while loading the manifest/);
  });
});

describe('DataProvider: a bundle rebuilt under the page', () => {
  /**
   * A server whose files can be replaced while the provider is open (like `make precompute`
   * rewriting the data folder), with single-range answers as static hosts send them.
   */
  function server(files: Record<string, ArrayBuffer | string>) {
    const calls: { url: string; init?: RequestInit }[] = [];
    const fetcher = vi.fn(async (url: string, init?: RequestInit) => {
      calls.push({ url, init });
      const body = files[new URL(url).pathname.replace(/^\/b\//, '')];
      if (body === undefined) return new Response('nope', { status: 404 });
      const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : new Uint8Array(body);
      const m = /^bytes=(\d+)-(\d+)$/.exec(new Headers(init?.headers).get('range') ?? '');
      if (!m) return new Response(bytes, { headers: { 'content-length': String(bytes.length) } });
      const [a, z] = [Number(m[1]), Math.min(bytes.length - 1, Number(m[2]))];
      return new Response(bytes.slice(a, z + 1), { status: 206, headers: { 'content-range': `bytes ${a}-${z}/${bytes.length}` } });
    });
    return { files, calls, fetcher };
  }
  const knn = 'datasets/d/m1/l2/avg/cosine.knn';
  const oldBundle = () => ({ 'manifest.json': JSON.stringify(manifest()), [knn]: knnBuffer(N, K), 'datasets/d/labels.bin': new Uint8Array(N).buffer });
  /** The same bundle rebuilt with 4 more images: every file at its old path, with other sizes. */
  function rebuild(files: Record<string, ArrayBuffer | string>) {
    const m = manifest();
    m.datasets[0]!.size = N + 4;
    Object.assign(files, { 'manifest.json': JSON.stringify(m), [knn]: knnBuffer(N + 4, K), 'datasets/d/labels.bin': new Uint8Array(N + 4).buffer });
  }

  it('a ranged fetch that no longer fits the manifest: the manifest is re-read past the cache, and the error says the data changed', async () => {
    const s = server(oldBundle());
    const p = await DataProvider.open('http://h/b/manifest.json', s.fetcher);
    const heard: BundleChangedError[] = [];
    p.onBundleChanged((e) => heard.push(e));
    expect(await p.neighborRow('d', 'm1', 'l2', 'avg', 'cosine', 3)).toHaveLength(K);
    rebuild(s.files);
    const err = await p.neighborRow('d', 'm1', 'l2', 'avg', 'cosine', 4).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BundleChangedError);
    expect(String(err)).toMatch(/data on the server changed since this page was loaded.*reload/);
    expect(String(err)).not.toMatch(/bytes|asked for/);
    const rechecks = s.calls.filter((c) => c.url.endsWith('manifest.json')).slice(1);
    expect(rechecks).toHaveLength(1);
    expect(rechecks[0]!.init?.cache).toBe('no-store');
    expect(heard).toEqual([err]);
    // From now on every load fails at once, without a request, and listeners are not called again.
    const before = s.calls.length;
    await expect(p.index('d')).rejects.toBe(err);
    await expect(p.neighborRow('d', 'm1', 'l2', 'avg', 'cosine', 3)).rejects.toBe(err);
    expect(s.calls.length).toBe(before);
    const late: BundleChangedError[] = [];
    p.onBundleChanged((e) => late.push(e));
    expect([heard.length, late]).toEqual([1, [err]]);
  });

  it('a whole file of the wrong size, or one that is gone, after a rebuild: the same message', async () => {
    const gone = (f: Record<string, unknown>) => {
      delete f[knn];
      f['manifest.json'] = JSON.stringify({ ...manifest(), models: manifest().models.slice(1) });
    };
    for (const change of [rebuild, gone]) {
      const s = server(oldBundle());
      const p = await DataProvider.open('http://h/b/manifest.json', s.fetcher);
      change(s.files);
      await expect(p.neighbors('d', 'm1', 'l2', 'avg', 'cosine')).rejects.toBeInstanceOf(BundleChangedError);
    }
  });

  it('a broken file of an unchanged bundle, or a failed re-check, keeps its own error; concurrent failures re-read the manifest once', async () => {
    const s = server(oldBundle());
    const p = await DataProvider.open('http://h/b/manifest.json', s.fetcher);
    const heard: unknown[] = [];
    p.onBundleChanged((e) => heard.push(e));
    s.files[knn] = new ArrayBuffer(10);
    s.files['datasets/d/labels.bin'] = new ArrayBuffer(3);
    const [row, idx] = await Promise.all([p.neighborRow('d', 'm1', 'l2', 'avg', 'cosine', 0).catch((e: unknown) => e), p.index('d').catch((e: unknown) => e)]);
    expect(String(row)).toMatch(/cosine\.knn: the server sent bytes 0-9\/10; asked for bytes 0-59 of 1440/);
    expect(String(idx)).toMatch(/labels\.bin: the server announces 3 bytes; the manifest implies 16/);
    expect(s.calls.filter((c) => c.url.endsWith('manifest.json'))).toHaveLength(2);  // open + one re-check
    expect(heard).toEqual([]);
    // The server cannot be reached for the re-check: the file's own error, not a guess.
    s.fetcher.mockImplementation(async () => { throw new TypeError('Failed to fetch'); });
    await expect(p.umap('d', 'm1', 'l2', 'avg')).rejects.toThrow(/umap\.f32: network error/);
    expect(heard).toEqual([]);
  });
});

describe('loadedOnly', () => {
  it('never fetches: a loaded name, else a rejection (the placeholder stays)', async () => {
    let fetched = 0;
    const names = new PagedNames(40, 32, async (p) => { fetched++; return Array.from({ length: p ? 8 : 32 }, (_, i) => `n${32 * p + i}`); });
    await names.name(3);
    const quiet = loadedOnly(names);
    expect(await quiet.name(31)).toBe('n31');
    await expect(quiet.name(33)).rejects.toThrow(/not loaded/);
    const shown: string[] = [];
    withName(quiet, 33, (s) => shown.push(s));
    await new Promise((r) => setTimeout(r, 0));
    expect([shown, fetched]).toEqual([['image #33'], 1]);
  });
});
