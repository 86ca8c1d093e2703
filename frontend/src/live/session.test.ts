// The session controller without a DOM or a worker: a fake WorkerPort records requests and
// answers them; a ThumbStore with a fake fetcher stands in for the network.
import { describe, expect, it } from 'vitest';
import { validManifest, N } from '../data/manifest.fixture';
import type { Manifest } from '../data/types';
import type { InitReply, RequestOf, SearchReply } from './protocol';
import { LiveSession, packThumbStore, type SessionState, type WorkerPort } from './session';
import { makePack } from './packs.fixture';

const INIT: Omit<InitReply, 'id'> = { type: 'init', backend: 'cpu', source: 'network', loadMs: 1, warmupMs: 1, numTensors: 7, cacheNote: 'stored' };
const searchReply = (preview?: string): SearchReply => ({
  type: 'search', id: 0, hits: [{ id: 3, distance: 0 }], timings: { decodeMs: 1, embedMs: 1, searchMs: 1, topkMs: 0, workerMs: 3 },
  numTensors: 7, heldTensors: 0, baselineTensors: 7, width: 8, height: 8, originalWidth: 8, originalHeight: 8, ...(preview ? { preview } : {}),
});

class FakePort implements WorkerPort {
  sent: RequestOf[keyof RequestOf][] = [];
  failInit = false;
  request<T extends keyof RequestOf>(msg: RequestOf[T] & { type: T }) {
    this.sent.push(msg);
    if (msg.type === 'init' && this.failInit) return Promise.reject(new Error('no model'));
    const reply = msg.type === 'init' ? { ...INIT, id: 0 } : msg.type === 'features' ? { type: 'features', id: 0, ms: 1, bytes: 8 } : searchReply('file' in msg && msg.file ? 'data:x' : undefined);
    return Promise.resolve(reply as never);
  }
}

function setup(opts: { metric?: string; dataset?: string; manifest?: Manifest } = {}) {
  const manifest = opts.manifest ?? validManifest();
  const port = new FakePort();
  const states: SessionState[] = [];
  const fetched: string[] = [];
  const host = { manifest, resolve: (p: string) => `http://h/${p}`, getDataset: () => opts.dataset ?? 'd', getMetric: () => opts.metric ?? 'cosine', getPooling: () => 'gem' };
  // The thumbnails as the page gets them: the manifest's packs, each image 1 byte = its id mod 256.
  const per = manifest.thumbnails.grid ** 2;
  const fetcher = async (u: string) => {
    fetched.push(u);
    const sheet = Number(/\/(\d+)\.jpgs$/.exec(u)?.[1] ?? NaN);
    const size = manifest.datasets[0]!.size;
    if (!(sheet * per < size)) return new Response('', { status: 404 });
    return new Response(makePack(Array.from({ length: Math.min(per, size - sheet * per) }, (_, j) => Uint8Array.of((sheet * per + j) & 255))));
  };
  const thumbs = packThumbStore(manifest, host.resolve, fetcher);
  const session = new LiveSession(host, () => port, { state: (s) => states.push(s) }, thumbs);
  return { session, port, states, fetched };
}

describe('LiveSession', () => {
  it('loads the model once, then prefetches the features of the current dataset, layer and pooling', async () => {
    const { session, port, states, fetched } = setup();
    const [a, b] = [session.ensureModel('l2'), session.ensureModel('l2')];
    expect(a).toBe(b);
    await a;
    expect(port.sent.map((r) => r.type)).toEqual(['init', 'features']);
    expect(port.sent[1]).toMatchObject({ url: 'http://h/datasets/d/browser/l2/gem.float32', n: N, dim: 2, encoding: 'float32', dims: 2 });
    expect(states).toEqual(['loading', 'ready']);
    expect(fetched).toEqual(['http://h/datasets/d/thumbs/large/0.jpgs']); // a small dataset's thumbnails load with the model: its one pack
    expect(session.thumbStatus('d')).toMatchObject({ kind: 'ready', failed: 0 });
  });

  it('reads each file’s encoding from browser_search.features', async () => {
    const m = validManifest();
    m.browser_search!.features = [{ dataset: 'd', layer: 'l2', pooling: 'gem', encoding: 'pca_uint8', dims: 1, bytes: 100, recall: { cosine: 0.97 }, recall_k: 15, recall_queries: 16 }];
    const { session } = setup({ manifest: m });
    expect(session.featuresFor('d', 'l2', 'gem')).toEqual({ url: 'http://h/datasets/d/browser/l2/gem.pca_uint8', n: N, dim: 2, encoding: 'pca_uint8', dims: 1 });
    expect(session.featuresFor('d', 'l2', 'avg')).toMatchObject({ encoding: 'float32', dims: 2 }); // no entry: float32
  });

  it('hands the worker the spatial outputs (it finds the layer activations through them), when the bundle has them', async () => {
    const m = validManifest();
    const spatial = [{ layer: 'l2', output: 'Identity_2:0', shape: [2, 2, 2] as [number, number, number] }];
    m.browser_search!.spatial_outputs = spatial;
    const withMaps = setup({ manifest: m });
    await withMaps.session.ensureModel('l2');
    expect(withMaps.port.sent[0]).toMatchObject({ type: 'init', spatialOutputs: spatial });
    const without = setup();
    await without.session.ensureModel('l2');
    expect(without.port.sent[0]).not.toHaveProperty('spatialOutputs');
  });

  it('searches with the host’s metric, pooling and the dataset’s k, and returns in-memory thumbnails', async () => {
    const { session, port } = setup();
    const o = await session.search(new File(['x'], 'cat.png'), 'l2');
    const req = port.sent.find((r) => r.type === 'search');
    expect(req).toMatchObject({ metric: 'cosine', pooling: 'gem', layer: 'l2', k: 15, p: 3, name: 'cat.png' });
    expect(o.name).toBe('cat.png');
    expect(o.preview).toBe('data:x');
    expect(o.thumb?.(3)).toMatch(/^blob:/);
    expect(session.hasImage).toBe(true);
    // A re-search (layer change) sends no file and keeps the name and preview.
    const again = await session.search(null, 'l2');
    expect(port.sent.filter((r) => r.type === 'search').at(-1)).not.toHaveProperty('file');
    expect([again.name, again.preview]).toEqual(['cat.png', 'data:x']);
  });

  it('rejects a metric the browser does not support with a user-facing error, and stays ready', async () => {
    const { session, states } = setup({ metric: 'hamming' });
    await expect(session.search(new File(['x'], 'a.png'), 'l2')).rejects.toMatchObject({ user: true, message: /not supported/ });
    expect(states.at(-1)).toBe('ready');
  });

  it('says a dataset without features is not searchable', async () => {
    const m = validManifest();
    m.browser_search!.datasets = [];
    const { session } = setup({ manifest: m });
    await expect(session.search(new File(['x'], 'a.png'), 'l2')).rejects.toMatchObject({ user: true, message: /no features for the dataset “d”/ });
  });

  it('a failed model load reports "failed" and a later call tries again', async () => {
    const { session, port, states } = setup();
    port.failInit = true;
    await expect(session.ensureModel('l2')).rejects.toThrow('no model');
    expect(states.at(-1)).toBe('failed');
    port.failInit = false;
    await session.ensureModel('l2');
    expect(port.sent.filter((r) => r.type === 'init')).toHaveLength(2);
    expect(states.at(-1)).toBe('ready');
  });

  it('a large dataset asks before loading thumbnails, and its search results are not private', async () => {
    const m = validManifest();
    m.datasets[0]!.size = 5000;
    const { session, fetched } = setup({ manifest: m });
    expect(session.thumbStatus('d')).toEqual({ kind: 'ask' });
    const o = await session.search(new File(['x'], 'a.png'), 'l2');
    expect(o.thumb).toBeUndefined();
    expect(fetched).toHaveLength(0);
  });

  it('above 5,000 images (no files.thumbnail in format 4) "load all" fetches the packs, and results are private', async () => {
    const m = validManifest();
    m.datasets[0]!.size = 6000;
    delete (m.files as Partial<Manifest['files']>).thumbnail;
    const { session, fetched } = setup({ manifest: m });
    expect(session.thumbStatus('d')).toEqual({ kind: 'ask' });
    await session.loadThumbs('d');
    expect(session.thumbStatus('d')).toMatchObject({ kind: 'ready', failed: 0 });
    // ⌈6,000 / 256⌉ = 24 packs of the pack_level, each once, the same whatever is uploaded later
    expect([...fetched].sort()).toEqual(Array.from({ length: 24 }, (_, s) => `http://h/datasets/d/thumbs/large/${s}.jpgs`).sort());
    const o = await session.search(new File(['x'], 'a.png'), 'l2');
    const u = o.thumb?.(5999);
    expect(u).toMatch(/^blob:/);
    expect(new Uint8Array(await (await fetch(u!)).arrayBuffer())).toEqual(Uint8Array.of(5999 & 255));
    expect(fetched).toHaveLength(24); // the search and its thumbnails fetched nothing
  });

  it('runs searches one after another, in call order', async () => {
    const { session } = setup();
    const order: string[] = [];
    await Promise.all([
      session.search(new File(['x'], 'one.png'), 'l2').then((o) => order.push(o.name)),
      session.search(new File(['x'], 'two.png'), 'l2').then((o) => order.push(o.name)),
    ]);
    expect(order).toEqual(['one.png', 'two.png']);
  });
});
