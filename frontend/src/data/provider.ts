// The one place that fetches bundle files. Everything is lazy (fetched when a view asks) and cached
// in memory by URL, so switching back to a configuration costs no request.
import type { DatasetIndex, KnnTable, Manifest, Summary } from './types';
export const BUNDLE_VERSION = 3;

export type Fetcher = (url: string) => Promise<Response>;

export class BundleError extends Error {
  constructor(
    readonly url: string,
    message: string,
  ) {
    super(`${url}: ${message}`);
    this.name = 'BundleError';
  }
}

/** Fill a manifest path template ("datasets/{dataset}/…") with values. */
export function fillTemplate(template: string, values: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (_whole, key: string) => {
    const v = values[key];
    if (v === undefined) throw new Error(`path template ${template} needs a value for {${key}}`);
    return encodeURIComponent(String(v));
  });
}

/** Checks that a parsed manifest is a format-1 bundle with the fields the explorer uses. */
export function validateManifest(raw: unknown, url: string): Manifest {
  const m = raw as Partial<Manifest> | null;
  if (m === null || typeof m !== 'object') throw new BundleError(url, 'manifest is not a JSON object');
  if (m.bundle_version !== BUNDLE_VERSION) throw new BundleError(url, `unsupported bundle_version ${String(m.bundle_version)} (this explorer reads ${BUNDLE_VERSION})`);
  for (const key of ['metrics', 'datasets', 'models'] as const) {
    if (!Array.isArray(m[key]) || m[key].length === 0) throw new BundleError(url, `"${key}" must be a non-empty list`);
  }
  if (!m.files || typeof m.files !== 'object') throw new BundleError(url, '"files" templates are missing');
  if (typeof m.k !== 'number' || m.k < 1) throw new BundleError(url, '"k" must be a positive number');
  return m as Manifest;
}

export function knnFromBuffer(buf: ArrayBuffer, n: number, k: number, idDtype: string, url = 'neighbours'): KnnTable {
  const idBytes = idDtype === 'uint32' ? 4 : idDtype === 'uint16' ? 2 : 0;
  if (idBytes === 0) throw new BundleError(url, `unknown id_dtype ${idDtype}`);
  const expected = n * k * (4 + idBytes);
  if (buf.byteLength !== expected) {
    throw new BundleError(url, `expected ${expected} bytes for N=${n}, k=${k}, ${idDtype} ids; got ${buf.byteLength}`);
  }
  const distances = new Float32Array(buf, 0, n * k);
  const ids = idBytes === 4 ? new Uint32Array(buf, n * k * 4, n * k) : new Uint16Array(buf, n * k * 4, n * k);
  return { n, k, distances, ids };
}

export function umapFromBuffer(buf: ArrayBuffer, n: number, url = 'umap'): Float32Array {
  if (buf.byteLength !== n * 2 * 4) throw new BundleError(url, `expected ${n * 8} bytes (N=${n} × 2 float32); got ${buf.byteLength}`);
  return new Float32Array(buf);
}

/** One block of per-query scores: `rows` queries × poolings × configurations, uint8. */
export function scoresFromBuffer(buf: ArrayBuffer, rows: number, perQuery: number, url = 'scores'): Uint8Array {
  if (buf.byteLength !== rows * perQuery) throw new BundleError(url, `expected ${rows * perQuery} bytes (${rows} queries × ${perQuery} pooling·configuration scores); got ${buf.byteLength}`);
  return new Uint8Array(buf);
}

export class DataProvider {
  private readonly cache = new Map<string, Promise<unknown>>();

  private constructor(
    readonly manifest: Manifest,
    readonly baseUrl: string,
    private readonly fetcher: Fetcher,
  ) {}

  /** Loads and checks `manifest.json` at manifestUrl (absolute, or relative to the page). */
  static async open(manifestUrl: string, fetcher: Fetcher = (u) => fetch(u)): Promise<DataProvider> {
    const abs = new URL(manifestUrl, globalThis.location?.href ?? 'http://localhost/').href;
    const res = await fetcher(abs).catch((e: unknown) => {
      throw new BundleError(abs, `could not fetch the manifest (${String(e)})`);
    });
    if (!res.ok) throw new BundleError(abs, `HTTP ${res.status} while loading the manifest`);
    const raw: unknown = await res.json().catch(() => {
      throw new BundleError(abs, 'manifest is not valid JSON');
    });
    return new DataProvider(validateManifest(raw, abs), new URL('.', abs).href, fetcher);
  }

  /** Bundle-relative path → absolute URL. */
  resolve(path: string): string {
    return new URL(path, this.baseUrl).href;
  }

  path(kind: keyof Manifest['files'], values: Record<string, string | number>): string {
    return this.resolve(fillTemplate(this.manifest.files[kind], values));
  }

  thumbnailUrl(dataset: string, id: number): string {
    return this.path('thumbnail', { dataset, id });
  }

  dataset(id: string) {
    const d = this.manifest.datasets.find((x) => x.id === id);
    if (!d) throw new Error(`dataset "${id}" is not in the manifest`);
    return d;
  }

  configCount(): number {
    return this.manifest.models.reduce((s, m) => s + m.layers.length, 0);
  }

  private cached<T>(url: string, load: () => Promise<T>): Promise<T> {
    let p = this.cache.get(url) as Promise<T> | undefined;
    if (!p) {
      p = load();
      this.cache.set(url, p);
      // A failed load is not cached, so a retry can succeed.
      p.catch(() => this.cache.delete(url));
    }
    return p;
  }

  private async get(url: string): Promise<Response> {
    let res: Response;
    try {
      res = await this.fetcher(url);
    } catch (e) {
      throw new BundleError(url, `network error (${String(e)})`);
    }
    if (!res.ok) throw new BundleError(url, `HTTP ${res.status}`);
    return res;
  }

  private json<T>(url: string): Promise<T> {
    return this.cached(url, async () => (await this.get(url)).json() as Promise<T>);
  }

  private binary<T>(url: string, view: (buf: ArrayBuffer) => T): Promise<T> {
    return this.cached(url, async () => view(await (await this.get(url)).arrayBuffer()));
  }

  index(dataset: string): Promise<DatasetIndex> {
    const url = this.path('index', { dataset });
    return this.cached(url, async () => {
      const idx = (await (await this.get(url)).json()) as DatasetIndex;
      const n = this.dataset(dataset).size;
      if (idx.files.length !== n || idx.labels.length !== n) {
        throw new BundleError(url, `index lists ${idx.files.length} files and ${idx.labels.length} labels; manifest says size ${n}`);
      }
      return idx;
    });
  }

  summary(dataset: string, metric: string): Promise<Summary> {
    return this.json<Summary>(this.path('summary', { dataset, metric }));
  }

  neighbors(dataset: string, model: string, layer: string, pooling: string, metric: string): Promise<KnnTable> {
    const d = this.dataset(dataset);
    const url = this.path('neighbors', { dataset, model, layer, pooling, metric });
    return this.binary(url, (buf) => knnFromBuffer(buf, d.size, d.k, d.id_dtype, url));
  }

  umap(dataset: string, model: string, layer: string, pooling: string): Promise<Float32Array> {
    const n = this.dataset(dataset).size;
    const url = this.path('umap', { dataset, model, layer, pooling });
    return this.binary(url, (buf) => umapFromBuffer(buf, n, url));
  }

  /** Query q's stored score numerators, [pooling][configuration] (manifest orders), from its block. */
  queryScores(dataset: string, metric: string, q: number): Promise<Uint8Array> {
    const d = this.dataset(dataset);
    const block = Math.floor(q / d.scores_block);
    const rows = Math.min(d.scores_block, d.size - block * d.scores_block);
    const perQuery = this.manifest.poolings.length * this.configCount();
    const url = this.path('scores', { dataset, metric, block });
    return this.binary(url, (buf) => scoresFromBuffer(buf, rows, perQuery, url))
      .then((all) => all.subarray((q - block * d.scores_block) * perQuery, (q - block * d.scores_block + 1) * perQuery));
  }
}
