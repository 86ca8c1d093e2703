import { describe, expect, it, vi } from 'vitest';
import { BundleError, DataProvider, fillTemplate, knnFromBuffer, scoresFromBuffer, umapFromBuffer, validateManifest } from './provider';
import type { Manifest } from './types';

function manifest(): Manifest {
  return {
    bundle_version: 3, generator: 't', weights: 'random', weights_detail: '', k: 2, poolings: [{ id: 'avg', label: 'Average', description: '' }, { id: 'gem', label: 'GeM', description: '' }], score: { top: 15, scale: 120 },
    metrics: [{ id: 'cosine', label: 'Cosine', p: null, description: '' }],
    datasets: [{ id: 'd', name: 'D', description: '', source: '', classes: ['a', 'b'], size: 3, id_dtype: 'uint16', k: 2, score: { top: 2, scale: 3 }, scores_block: 2, skipped: [] }],
    models: [
      { id: 'm1', name: 'M1', params: 1, layer_count: 3, input_size: [8, 8], weights: 'random', layers: [
        { name: 'l1', index: 1, type: 'Conv2D', output_shape: [4, 4, 2], dims: { avg: 2, gem: 2 }, params_cumulative: 1, depth: 0.5 },
        { name: 'l2', index: 2, type: 'ReLU', output_shape: [4, 4, 2], dims: { avg: 2, gem: 2 }, params_cumulative: 1, depth: 1 },
      ] },
      { id: 'm2', name: 'M2', params: 1, layer_count: 2, input_size: [8, 8], weights: 'random', layers: [
        { name: 'x', index: 1, type: 'Conv2D', output_shape: [4, 4, 2], dims: { avg: 2, gem: 2 }, params_cumulative: 1, depth: 1 },
      ] },
    ],
    files: {
      index: 'datasets/{dataset}/index.json', thumbnail: 'datasets/{dataset}/thumbs/{id}.jpg', summary: 'datasets/{dataset}/summary/{metric}.json',
      scores: 'datasets/{dataset}/scores/{metric}/{block}.u8', neighbors: 'datasets/{dataset}/{model}/{layer}/{pooling}/{metric}.knn',
      umap: 'datasets/{dataset}/{model}/{layer}/{pooling}/umap.f32', browser_features: 'datasets/{dataset}/browser/{layer}/{pooling}.f32',
    },
    browser_search: null,
  };
}

/** An in-memory bundle served by a fake fetch that counts requests. */
function fakeBundle(files: Record<string, unknown>) {
  const calls: string[] = [];
  const fetcher = vi.fn(async (url: string) => {
    calls.push(url);
    const key = new URL(url).pathname.replace(/^\/b\//, '');
    const body = files[key];
    if (body === undefined) return new Response('nope', { status: 404 });
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
    const b32 = new ArrayBuffer(2 * 1 * 8);
    new Uint32Array(b32, 8, 2).set([70000, 1]);
    expect(Array.from(knnFromBuffer(b32, 2, 1, 'uint32').ids)).toEqual([70000, 1]);
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
    expect(validateManifest(manifest(), 'm.json').k).toBe(2);
    expect(() => validateManifest({ ...manifest(), bundle_version: 1 }, 'm.json')).toThrow(/m\.json: unsupported bundle_version 1/);
    expect(() => validateManifest({ ...manifest(), models: [] }, 'm.json')).toThrow(/"models" must be a non-empty list/);
    expect(() => validateManifest(null, 'm.json')).toThrow(BundleError);
  });
});

describe('DataProvider', () => {
  const files = () => ({
    'manifest.json': manifest(),
    'datasets/d/index.json': { dataset: 'd', size: 3, files: ['a/1.png', 'a/2.png', 'b/<img>.png'], labels: [0, 0, 1] },
    'datasets/d/m1/l2/avg/cosine.knn': knnBuffer(3, 2),
    'datasets/d/m1/l2/gem/umap.f32': new Float32Array([0, 0, 0.5, 0.5, 1, 1]).buffer,
    // 3 queries in blocks of 2: block 1 holds only query 2; each row is 2 poolings x 3 configurations
    'datasets/d/scores/cosine/0.u8': new Uint8Array(12).buffer,
    'datasets/d/scores/cosine/1.u8': Uint8Array.from([1, 2, 3, 4, 5, 6]).buffer,
  });

  it('resolves templates relative to the manifest', async () => {
    const { fetcher } = fakeBundle(files());
    const p = await DataProvider.open('http://h/b/manifest.json', fetcher);
    expect(p.thumbnailUrl('d', 2)).toBe('http://h/b/datasets/d/thumbs/2.jpg');
    expect(p.resolve('tfjs/m/model.json')).toBe('http://h/b/tfjs/m/model.json');
    expect(p.configCount()).toBe(3);
  });

  it('fetches lazily and each file only once (in-memory cache)', async () => {
    const { fetcher, calls } = fakeBundle(files());
    const p = await DataProvider.open('http://h/b/manifest.json', fetcher);
    expect(calls).toHaveLength(1);
    const [a, b] = await Promise.all([p.neighbors('d', 'm1', 'l2', 'avg', 'cosine'), p.neighbors('d', 'm1', 'l2', 'avg', 'cosine')]);
    expect(a).toBe(b);
    await p.umap('d', 'm1', 'l2', 'gem');
    await p.umap('d', 'm1', 'l2', 'gem');
    expect(Array.from(await p.queryScores('d', 'cosine', 2))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(await p.queryScores('d', 'cosine', 1))).toHaveLength(6);
    expect(Array.from(await p.queryScores('d', 'cosine', 0))).toHaveLength(6);
    expect(calls.map((u) => u.replace('http://h/b/', ''))).toEqual([
      'manifest.json', 'datasets/d/m1/l2/avg/cosine.knn', 'datasets/d/m1/l2/gem/umap.f32', 'datasets/d/scores/cosine/1.u8',
      'datasets/d/scores/cosine/0.u8',
    ]);
  });

  it('reports a missing file with its URL and does not cache the failure', async () => {
    const f = files();
    const { fetcher, calls } = fakeBundle(f);
    const p = await DataProvider.open('http://h/b/manifest.json', fetcher);
    await expect(p.umap('d', 'm2', 'x', 'avg')).rejects.toThrow(/datasets\/d\/m2\/x\/avg\/umap\.f32: HTTP 404/);
    (f as Record<string, unknown>)['datasets/d/m2/x/avg/umap.f32'] = new Float32Array(6).buffer;
    await expect(p.umap('d', 'm2', 'x', 'avg')).resolves.toHaveLength(6);
    expect(calls.filter((u) => u.endsWith('m2/x/avg/umap.f32'))).toHaveLength(2);
  });

  it('checks the index against the manifest size', async () => {
    const f = files();
    (f as Record<string, unknown>)['datasets/d/index.json'] = { dataset: 'd', size: 2, files: ['a', 'b'], labels: [0, 1] };
    const { fetcher } = fakeBundle(f);
    const p = await DataProvider.open('http://h/b/manifest.json', fetcher);
    await expect(p.index('d')).rejects.toThrow(/index lists 2 files and 2 labels; manifest says size 3/);
  });

  it('explains a missing manifest', async () => {
    const { fetcher } = fakeBundle({});
    await expect(DataProvider.open('http://h/b/manifest.json', fetcher)).rejects.toThrow(/manifest.json: HTTP 404 while loading the manifest/);
  });
});
