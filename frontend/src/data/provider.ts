// The one place that fetches bundle files. Everything is lazy (fetched when a view asks) and cached
// in memory by URL, so switching back to a configuration costs no request.
import { checkCurateConfig, checkCurateLabels, type CurateConfig, type CurateLabels } from './curate';
import { manifestBoundsProblem, manifestOriginProblem, manifestSchemaProblem } from './manifest';
import { sameOriginUrl } from './origin';
import { thumbRef, type ThumbRef } from './thumbs';
import { PagedNames } from './names';
import type { DatasetIndex, Guidance, KnnTable, LabelDtype, Labels, Manifest, Neighbor, OfflineJudgements, StatName, Summary } from './types';
import { BundleChangedError, BundleError } from './errors';
import { atlasBlockBytes, atlasBlockFromBuffer, atlasRowsBytes, atlasRowsFromBuffer, checkAtlasIndex, idBytes, type AtlasBlock, type AtlasIndex, type AtlasRows } from './atlas';
export const BUNDLE_VERSION = 6;

export type Fetcher = (url: string, init?: RequestInit) => Promise<Response>;

/** Fill a manifest path template ("datasets/{dataset}/…") with values. */
export function fillTemplate(template: string, values: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (_whole, key: string) => {
    const v = values[key];
    if (v === undefined) throw new Error(`path template ${template} needs a value for {${key}}`);
    return encodeURIComponent(String(v));
  });
}

/**
 * Checks a parsed manifest before anything is drawn from it: bundle version, the JSON Schema
 * (docs/manifest.schema.json), bounds and references (./manifest.ts), and that every file
 * template stays on `origin` (the page's). Throws a BundleError naming the manifest URL.
 */
export function validateManifest(raw: unknown, url: string, origin: string = new URL(url).origin): Manifest {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new BundleError(url, 'manifest is not a JSON object');
  const version = (raw as { bundle_version?: unknown }).bundle_version;
  if (version !== BUNDLE_VERSION) throw new BundleError(url, `unsupported bundle_version ${JSON.stringify(version) ?? 'undefined'} (this explorer reads ${BUNDLE_VERSION})`);
  const problem = manifestSchemaProblem(raw) ?? manifestBoundsProblem(raw as Manifest) ?? manifestOriginProblem(raw as Manifest, url, origin);
  if (problem) throw new BundleError(url, `invalid manifest: ${problem}`);
  return raw as Manifest;
}

export function knnBytes(n: number, k: number, idDtype: string, url = 'neighbours'): number {
  return n * k * (4 + idBytes(idDtype, url));
}

export function knnFromBuffer(buf: ArrayBuffer, n: number, k: number, idDtype: string, url = 'neighbours'): KnnTable {
  const expected = knnBytes(n, k, idDtype, url);
  const idSize = expected / (n * k) - 4;
  if (buf.byteLength !== expected) {
    throw new BundleError(url, `expected ${expected} bytes for N=${n}, k=${k}, ${idDtype} ids; got ${buf.byteLength}`);
  }
  const distances = new Float32Array(buf, 0, n * k);
  const ids = idSize === 4 ? new Uint32Array(buf, n * k * 4, n * k) : new Uint16Array(buf, n * k * 4, n * k);
  // An id past the end would be drawn as a thumbnail that does not exist: refuse the file instead.
  let maxId = 0;
  for (let i = 0; i < ids.length; i++) if (ids[i]! > maxId) maxId = ids[i]!;
  if (ids.length && maxId >= n) throw new BundleError(url, `neighbour id ${maxId} is out of range for N=${n}`);
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

const LABEL_BYTES: Record<LabelDtype, number> = { uint8: 1, uint16: 2, uint32: 4 };

export function labelsBytes(n: number, dtype: LabelDtype, url = 'labels'): number {
  const b = LABEL_BYTES[dtype];
  if (b === undefined) throw new BundleError(url, `unknown label_dtype ${String(dtype)}`);
  return n * b;
}

/** files.labels: N class indices as label_dtype (little endian), each < the number of classes. */
export function labelsFromBuffer(buf: ArrayBuffer, n: number, classes: number, dtype: LabelDtype, url = 'labels'): Labels {
  const expected = labelsBytes(n, dtype, url);
  if (buf.byteLength !== expected) throw new BundleError(url, `expected ${expected} bytes (N=${n} ${dtype} labels); got ${buf.byteLength}`);
  // Typed arrays read the platform's byte order; every browser engine is little endian (as the .knn reader assumes).
  const labels = dtype === 'uint8' ? new Uint8Array(buf) : dtype === 'uint16' ? new Uint16Array(buf) : new Uint32Array(buf);
  for (let i = 0; i < labels.length; i++) {
    if (labels[i]! >= classes) throw new BundleError(url, `label ${labels[i]} of image ${i} is not a class number 0…${classes - 1}`);
  }
  return labels;
}

/** Checks a parsed names page p: exactly the page's names (min(page, N − p·page)), all strings. */
export function checkNamesPage(raw: unknown, n: number, page: number, p: number, url = 'names'): string[] {
  const expected = Math.min(page, n - p * page);
  if (!Array.isArray(raw)) throw new BundleError(url, 'a names page must be a JSON list of file names');
  if (raw.length !== expected) throw new BundleError(url, `names page ${p} lists ${raw.length} names; N=${n} and ${page} a page imply ${expected}`);
  if (raw.some((f) => typeof f !== 'string')) throw new BundleError(url, 'every file name must be a string');
  return raw as string[];
}

const STATS: StatName[] = ['search_score', 'precision_at_k', 'map_at_k'];

/** Checks a parsed guidance file: per statistic, [pooling][model][layer] numbers or null. */
export function checkGuidance(raw: unknown, poolings: number, layersPerModel: number[], url = 'guidance'): Guidance {
  const g = raw as Guidance;
  if (g === null || typeof g !== 'object') throw new BundleError(url, 'guidance is not a JSON object');
  for (const stat of ['hubness', 'agreement'] as const) {
    const t = g[stat];
    const ok = Array.isArray(t) && t.length === poolings && t.every((p) => Array.isArray(p) && p.length === layersPerModel.length
      && p.every((m, mi) => Array.isArray(m) && m.length === layersPerModel[mi] && m.every((v) => v === null || typeof v === 'number')));
    if (!ok) throw new BundleError(url, `${stat} must hold [pooling][model][layer] numbers in manifest order`);
  }
  return g;
}

/** Checks a parsed summary file: the manifest's poolings, and per statistic one number per
 * [pooling][model][layer], in manifest order. */
export function checkSummary(raw: unknown, poolings: string[], layersPerModel: number[], url = 'summary'): Summary {
  const s = raw as (Partial<Record<StatName, unknown>> & { poolings?: unknown }) | null;
  if (s === null || typeof s !== 'object') throw new BundleError(url, 'summary is not a JSON object');
  if (!Array.isArray(s.poolings) || s.poolings.join('|') !== poolings.join('|')) {
    throw new BundleError(url, `"poolings" must be the manifest's [${poolings.join(', ')}]`);
  }
  const table = (rows: unknown) => Array.isArray(rows) && rows.length === layersPerModel.length
    && rows.every((r, i) => Array.isArray(r) && r.length === layersPerModel[i] && r.every((x) => typeof x === 'number'));
  for (const stat of STATS) {
    const perPooling = s[stat];
    if (!Array.isArray(perPooling) || perPooling.length !== poolings.length || !perPooling.every(table)) {
      throw new BundleError(url, `"${stat}" must hold, for each of the ${poolings.length} poolings, one number per layer for each of the ${layersPerModel.length} models (${layersPerModel.join(', ')} layers)`);
    }
  }
  return s as Summary;
}

function rowOf(t: KnnTable, q: number): Neighbor[] {
  const out: Neighbor[] = [];
  for (let i = 0; i < t.k; i++) out.push({ id: t.ids[q * t.k + i]!, distance: t.distances[q * t.k + i]! });
  return out;
}

export class DataProvider {
  private readonly cache = new Map<string, Promise<unknown>>();
  /** The manifest check in flight after a failed load (one for any number of failures at once). */
  private recheck: Promise<boolean> | null = null;
  /** Set once the server's manifest.json differs from the one loaded: every later load fails fast. */
  private changed: BundleChangedError | null = null;
  /** Failures already checked against the manifest (a load inside a load fails through both). */
  private readonly explained = new WeakSet<object>();
  private readonly changeListeners: ((e: BundleChangedError) => void)[] = [];

  private constructor(
    readonly manifest: Manifest,
    readonly baseUrl: string,
    private readonly fetcher: Fetcher,
    /** The page's origin: the only one the explorer loads from. */
    readonly origin: string,
    /** manifest.json as loaded, byte for byte: the bundle's identity while the page is open. */
    private readonly manifestText: string,
    private readonly manifestUrl: string,
  ) {}

  /**
   * Loads and checks `manifest.json` at manifestUrl (absolute, or relative to pageUrl). Nothing
   * is fetched from another origin than pageUrl's (default: the page; in tests the manifest's).
   */
  static async open(manifestUrl: string, fetcher: Fetcher = (u, init) => fetch(u, init), pageUrl: string | undefined = globalThis.location?.href): Promise<DataProvider> {
    const abs = new URL(manifestUrl, pageUrl ?? 'http://localhost/').href;
    const origin = pageUrl ? new URL(pageUrl).origin : new URL(abs).origin;
    const where = sameOriginUrl(abs, abs, origin);
    if ('problem' in where) throw new BundleError(abs, `refusing to load the manifest: ${where.problem}`);
    const res = await fetcher(abs).catch((e: unknown) => {
      throw new BundleError(abs, `could not fetch the manifest (${String(e)})`);
    });
    if (!res.ok) throw new BundleError(abs, `HTTP ${res.status} while loading the manifest`);
    const text = await res.text().catch((e: unknown) => {
      throw new BundleError(abs, `could not read the manifest (${String(e)})`);
    });
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new BundleError(abs, 'manifest is not valid JSON');
    }
    return new DataProvider(validateManifest(raw, abs, origin), new URL('.', abs).href, fetcher, origin, text, abs);
  }

  /**
   * Calls `listener` once if the bundle on the server turns out to have changed under the page
   * (see BundleChangedError): the app shows one "reload" message instead of each view's error.
   */
  onBundleChanged(listener: (e: BundleChangedError) => void): void {
    if (this.changed) listener(this.changed);
    else this.changeListeners.push(listener);
  }

  /**
   * A load failed: a file that no longer matches the manifest (a size, a byte range, a missing
   * file) is what a bundle rebuilt under the page looks like. manifest.json is fetched again,
   * past the HTTP cache; if the server now answers anything but the text this page loaded, the
   * failure is a BundleChangedError (and listeners hear of it once); otherwise the original
   * error stands (a broken bundle, or a network failure, is reported as it is).
   */
  private async explain(error: unknown): Promise<never> {
    if (error instanceof BundleChangedError || (error instanceof Object && this.explained.has(error))) throw error;
    this.recheck ??= this.fetcher(this.manifestUrl, { cache: 'no-store' })
      .then(async (res) => !res.ok || (await res.text()) !== this.manifestText)
      .catch(() => false)
      .finally(() => { this.recheck = null; });
    if (await this.recheck) throw this.markChanged();
    if (error instanceof Object) this.explained.add(error);
    throw error;
  }

  private markChanged(): BundleChangedError {
    if (!this.changed) {
      this.changed = new BundleChangedError(this.manifestUrl);
      this.cache.clear();
      for (const f of this.changeListeners.splice(0)) f(this.changed);
    }
    return this.changed;
  }

  /** Bundle-relative path → absolute URL; a path that leaves the page's origin is refused. */
  resolve(path: string): string {
    const r = sameOriginUrl(path, this.baseUrl, this.origin);
    if ('problem' in r) throw new BundleError(new URL('manifest.json', this.baseUrl).href, r.problem);
    return r.href;
  }

  path(kind: keyof Manifest['files'], values: Record<string, string | number>): string {
    const t = this.manifest.files[kind];
    if (t === undefined) throw new Error(`the manifest has no files.${kind}`);
    return this.resolve(fillTemplate(t, values));
  }

  /** A template the manifest may lack (atlas, featviz, curation lists): null when absent. */
  optionalPath(kind: 'atlas_index' | 'atlas_rows' | 'atlas_maps' | 'featviz' | 'curate' | 'curate_labels', values: Record<string, string | number>): string | null {
    const t = this.manifest.files[kind];
    return t ? this.resolve(fillTemplate(t, values)) : null;
  }

  /** An atlas in today's layout (files.atlas_rows; a bundle with only files.atlas_top has the older one). */
  hasAtlas(dataset: string, model: string): boolean {
    const f = this.manifest.files;
    return !!f.atlas_index && !!f.atlas_rows && !!f.atlas_maps && (this.dataset(dataset).atlas ?? []).includes(model);
  }

  atlasIndex(dataset: string, model: string, layer: string): Promise<AtlasIndex> {
    const url = this.optionalPath('atlas_index', { dataset, model, layer });
    if (!url) return Promise.reject(new Error('this bundle has no channel atlas'));
    const n = this.dataset(dataset).size;
    return this.cached(url, async () => checkAtlasIndex(await this.parse(url), n, url));
  }

  /** Rows file `page` of a layer's atlas: ranks [page·idx.page, …), their channel, selectivity and top images. */
  atlasRows(dataset: string, model: string, layer: string, idx: AtlasIndex, page: number): Promise<AtlasRows> {
    const d = this.dataset(dataset);
    const url = this.optionalPath('atlas_rows', { dataset, model, layer, page });
    if (!url) return Promise.reject(new Error('this bundle has no channel atlas'));
    return this.binary(url, atlasRowsBytes(idx, page, d.id_dtype), (buf) => atlasRowsFromBuffer(buf, idx, page, d.size, d.id_dtype, url));
  }

  atlasMaps(dataset: string, model: string, layer: string, idx: AtlasIndex, block: number): Promise<AtlasBlock> {
    const url = this.optionalPath('atlas_maps', { dataset, model, layer, block });
    if (!url) return Promise.reject(new Error('this bundle has no channel atlas'));
    return this.binary(url, atlasBlockBytes(idx, block), (buf) => atlasBlockFromBuffer(buf, idx, block, url));
  }

  /**
   * Where thumbnail `id` is drawn from: its sprite sheet's URL and the cell's pixel box in it
   * (level: a manifest thumbnails level id; default the largest cells). Synchronous, fetches
   * nothing: an element (views/thumb.ts) or a canvas/WebGL texture loads the sheet when drawn.
   */
  thumbnail(dataset: string, id: number, level?: string): ThumbRef {
    const ref = thumbRef(this.manifest.thumbnails, this.dataset(dataset).size, id, level);
    return { ...ref, url: this.path('thumb_sheet', { dataset, level: ref.level, sheet: ref.sheet }) };
  }

  /**
   * Image `id` alone, for views that show a few scattered images (a query and its results, a
   * tooltip): an object URL of its JPEG from the pack_level's pack, fetched by two HTTP Range
   * requests (the pack's offsets table, ≤ 1 KB and kept per pack; then ≈ 2–5 KB of JPEG) instead of
   * a whole sheet. A host without Range support sends the whole pack once; it is kept and sliced.
   */
  thumbnailImage(dataset: string, id: number): Promise<string> {
    const info = this.manifest.thumbnails;
    const ref = thumbRef(info, this.dataset(dataset).size, id, info.pack_level);
    const url = this.path('thumb_pack', { dataset, level: ref.level, sheet: ref.sheet });
    const pos = ref.row * ref.cols + ref.col;
    const count = Math.min(info.grid * info.grid, this.dataset(dataset).size - ref.sheet * info.grid * info.grid);
    return this.cached(`${url}#${pos}`, async () => {
      const pack = await this.packHead(url, count);
      const start = pack.offsets[pos]!, end = pack.offsets[pos + 1]!;
      if (!(start <= end && end <= pack.total)) throw new BundleError(url, `image ${pos}: bad offsets ${start}…${end}`);
      const bytes = pack.whole ? pack.whole.slice(start, end) : (await this.range(url, start, end - start, pack.total)).buf;
      return URL.createObjectURL(new Blob([bytes], { type: 'image/jpeg' }));
    });
  }

  /** A pack's offsets table (count + 1 uint32), or the whole pack if the host ignores Range. */
  private packHead(url: string, count: number): Promise<{ offsets: Uint32Array; total: number; whole: ArrayBuffer | null }> {
    return this.cached(`${url}#head`, async () => {
      const head = 4 * (count + 1);
      // total is unknown until the table is read: ask for the head, accept any Content-Range total.
      const r = await this.range(url, 0, head, -1);
      const offsets = new Uint32Array(r.whole ? r.buf.slice(0, head) : r.buf);
      if (r.buf.byteLength < head || offsets[0] !== head) throw new BundleError(url, `not a thumbnail pack of ${count} images`);
      const total = offsets[count]!;
      if (r.whole && r.buf.byteLength !== total) throw new BundleError(url, `pack is ${r.buf.byteLength} bytes; its table says ${total}`);
      return { offsets, total, whole: r.whole ? r.buf : null };
    });
  }

  /**
   * Deprecated (bundle format ≤ 3 API): one JPEG per image. Bundles of format 4 have such files
   * only while every dataset has ≤ 5,000 images (manifest files.thumbnail); otherwise this is ''
   * (an <img> without a source). Migrate to thumbnail() / views/thumb.ts thumbEl().
   */
  thumbnailUrl(dataset: string, id: number): string {
    return (this.manifest.files.thumbnail as string | undefined) === undefined ? '' : this.path('thumbnail', { dataset, id });
  }

  dataset(id: string) {
    const d = this.manifest.datasets.find((x) => x.id === id);
    if (!d) throw new Error(`dataset "${id}" is not in the manifest`);
    return d;
  }

  configCount(): number {
    return this.manifest.models.reduce((s, m) => s + m.layers.length, 0);
  }

  /** Every load of a bundle file goes through here: cached by key, failures explained (explain). */
  private cached<T>(url: string, load: () => Promise<T>): Promise<T> {
    if (this.changed) return Promise.reject(this.changed);
    let p = this.cache.get(url) as Promise<T> | undefined;
    if (!p) {
      p = load().catch((e: unknown) => this.explain(e));
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

  private async parse(url: string): Promise<unknown> {
    const res = await this.get(url);
    return res.json().catch(() => {
      throw new BundleError(url, 'not valid JSON');
    });
  }

  /**
   * A binary file of exactly `bytes` bytes: a declared Content-Length that disagrees is refused
   * before the body is read (a wrong or hostile file is never downloaded whole), then the body.
   */
  private binary<T>(url: string, bytes: number, view: (buf: ArrayBuffer) => T): Promise<T> {
    return this.cached(url, async () => {
      const res = await this.get(url);
      const declared = res.headers.get('content-length');
      const encoded = (res.headers.get('content-encoding') ?? 'identity') !== 'identity';
      if (declared !== null && !encoded && Number(declared) !== bytes) {
        void res.body?.cancel().catch(() => undefined);
        throw new BundleError(url, `the server announces ${declared} bytes; the manifest implies ${bytes}`);
      }
      return view(await res.arrayBuffer());
    });
  }

  /** One configuration's duplicate groups and outliers (files.curate), checked (data/curate.ts). */
  curate(dataset: string, model: string, layer: string, pooling: string, metric: string): Promise<CurateConfig> {
    const url = this.optionalPath('curate', { dataset, model, layer, pooling, metric });
    if (!url) return Promise.reject(new Error('this bundle has no curation lists'));
    const n = this.dataset(dataset).size;
    return this.cached(url, async () => checkCurateConfig(await this.parse(url), n, url));
  }

  /** A dataset's likely label mistakes per field (files.curate_labels), checked (data/curate.ts). */
  curateLabels(dataset: string): Promise<CurateLabels> {
    const url = this.optionalPath('curate_labels', { dataset });
    if (!url) return Promise.reject(new Error('this bundle has no curation lists'));
    const d = this.dataset(dataset);
    return this.cached(url, async () => checkCurateLabels(await this.parse(url), d.size, d.classes.length, url));
  }

  /** A dataset's labels (files.labels, N·1–4 bytes) and its names, whose pages come on demand. */
  index(dataset: string): Promise<DatasetIndex> {
    const d = this.dataset(dataset);
    const url = this.path('labels', { dataset });
    return this.cached(`${url}#index`, async () => ({
      dataset, size: d.size,
      labels: await this.binary(url, labelsBytes(d.size, d.label_dtype, url), (buf) => labelsFromBuffer(buf, d.size, d.classes.length, d.label_dtype, url)),
      names: new PagedNames(d.size, d.names_page, (p) => this.namesPage(dataset, p)),
    }));
  }

  /** Names page p of a dataset (files.names), fetched once and checked against the manifest. */
  namesPage(dataset: string, p: number): Promise<string[]> {
    const d = this.dataset(dataset);
    if (!Number.isInteger(p) || p < 0 || p * d.names_page >= d.size) return Promise.reject(new RangeError(`names page ${p} out of range`));
    const url = this.path('names', { dataset, page: p });
    return this.cached(url, async () => checkNamesPage(await this.parse(url), d.size, d.names_page, p, url));
  }

  /** One label field's value per image: value index + 1, 0 = no value (files.field_labels). */
  fieldLabels(dataset: string, field: string): Promise<Labels> {
    const d = this.dataset(dataset);
    const f = d.fields.find((x) => x.id === field);
    if (!f) return Promise.reject(new RangeError(`dataset ${dataset} has no label field ${field}`));
    if (d.labels === 'folders' && d.groups === 'class folders') {
      // The class field is labels.bin + 1 (docs/bundle.md): reuse the index, fetch nothing more.
      return this.cached(`${this.path('field_labels', { dataset, field })}#from-index`, async () => {
        const { labels } = await this.index(dataset);
        const out = f.dtype === 'uint8' ? new Uint8Array(d.size) : f.dtype === 'uint16' ? new Uint16Array(d.size) : new Uint32Array(d.size);
        for (let i = 0; i < d.size; i++) out[i] = (labels[i] ?? 0) + 1;
        return out;
      });
    }
    const url = this.path('field_labels', { dataset, field });
    return this.binary(url, labelsBytes(d.size, f.dtype, url), (buf) => labelsFromBuffer(buf, d.size, f.values.length + 1, f.dtype, url));
  }

  /** Label-free guidance of every configuration under one metric (files.guidance). */
  guidance(dataset: string, metric: string): Promise<Guidance> {
    const url = this.path('guidance', { dataset, metric });
    const layers = this.manifest.models.map((m) => m.layers.length);
    const poolings = this.manifest.poolings.length;
    return this.cached(url, async () => checkGuidance(await this.parse(url), poolings, layers, url));
  }

  /** The offline judgements ranking of a dataset (files.judgements), or null when it has none. */
  offlineJudgements(dataset: string): Promise<OfflineJudgements | null> {
    const t = this.manifest.files.judgements;
    const d = this.dataset(dataset);
    if (!t || !d.judgements) return Promise.resolve(null);
    const url = this.resolve(fillTemplate(t, { dataset }));
    return this.cached(url, async () => {
      const j = (await this.parse(url)) as OfflineJudgements;
      if (j?.format !== 1 || !Array.isArray(j.top) || !Array.isArray(j.order) || j.order.length !== j.configurations) {
        throw new BundleError(url, 'not an offline judgements ranking of format 1 with one entry per configuration');
      }
      return j;
    });
  }

  summary(dataset: string, metric: string, field: string): Promise<Summary> {
    const url = this.path('summary', { dataset, metric, field });
    const layers = this.manifest.models.map((m) => m.layers.length);
    const poolings = this.manifest.poolings.map((p) => p.id);
    return this.cached(url, async () => checkSummary(await this.parse(url), poolings, layers, url));
  }

  neighbors(dataset: string, model: string, layer: string, pooling: string, metric: string): Promise<KnnTable> {
    const d = this.dataset(dataset);
    const url = this.path('neighbors', { dataset, model, layer, pooling, metric });
    return this.binary(url, knnBytes(d.size, d.k, d.id_dtype, url), (buf) => knnFromBuffer(buf, d.size, d.k, d.id_dtype, url));
  }

  umap(dataset: string, model: string, layer: string, pooling: string): Promise<Float32Array> {
    const n = this.dataset(dataset).size;
    const url = this.path('umap', { dataset, model, layer, pooling });
    return this.binary(url, n * 2 * 4, (buf) => umapFromBuffer(buf, n, url));
  }

  /**
   * Query q's k neighbours without downloading the whole .knn file: two HTTP Range requests (its
   * row of distances, its row of ids: k·(4 + id bytes) bytes, 90 at k=15 with uint16 ids). A
   * server that ignores Range answers 200 with the whole file: it is checked, kept as the table
   * (later queries of this configuration cost nothing) and used.
   */
  neighborRow(dataset: string, model: string, layer: string, pooling: string, metric: string, q: number): Promise<Neighbor[]> {
    const d = this.dataset(dataset);
    const url = this.path('neighbors', { dataset, model, layer, pooling, metric });
    if (!Number.isInteger(q) || q < 0 || q >= d.size) return Promise.reject(new RangeError(`query ${q} out of range 0…${d.size - 1}`));
    const whole = this.cache.get(url) as Promise<KnnTable> | undefined;
    if (whole) return whole.then((t) => rowOf(t, q));
    const idSize = idBytes(d.id_dtype, url);
    const total = knnBytes(d.size, d.k, d.id_dtype, url);
    return this.cached(`${url}#row=${q}`, async () => {
      const parts = await Promise.all([
        this.range(url, q * d.k * 4, d.k * 4, total),
        this.range(url, d.size * d.k * 4 + q * d.k * idSize, d.k * idSize, total),
      ]);
      const full = parts.find((p) => p.whole);
      if (full) {
        const table = knnFromBuffer(full.buf, d.size, d.k, d.id_dtype, url);
        this.cache.set(url, Promise.resolve(table));
        return rowOf(table, q);
      }
      const dist = new Float32Array(parts[0]!.buf);
      const ids = idSize === 4 ? new Uint32Array(parts[1]!.buf) : new Uint16Array(parts[1]!.buf);
      const row: Neighbor[] = [];
      for (let i = 0; i < d.k; i++) {
        const id = ids[i]!;
        if (id >= d.size) throw new BundleError(url, `neighbour id ${id} is out of range for N=${d.size}`);
        row.push({ id, distance: dist[i]! });
      }
      return row;
    });
  }

  /**
   * Only the ids of query q's row (one Range request of k·id bytes: 30 at k=15 with uint16 ids),
   * for the "Your judgements" ranking, which needs no distances. Shares neighborRow's cache: a row
   * or table already here costs nothing; a host without Range support sends the table once.
   */
  neighborIds(dataset: string, model: string, layer: string, pooling: string, metric: string, q: number): Promise<ArrayLike<number>> {
    const d = this.dataset(dataset);
    const url = this.path('neighbors', { dataset, model, layer, pooling, metric });
    if (!Number.isInteger(q) || q < 0 || q >= d.size) return Promise.reject(new RangeError(`query ${q} out of range 0…${d.size - 1}`));
    const known = (this.cache.get(url) ?? this.cache.get(`${url}#row=${q}`)) as Promise<KnnTable | Neighbor[]> | undefined;
    if (known) return known.then((t) => (Array.isArray(t) ? t.map((n) => n.id) : rowOf(t, q).map((n) => n.id)));
    const idSize = idBytes(d.id_dtype, url);
    const total = knnBytes(d.size, d.k, d.id_dtype, url);
    return this.cached(`${url}#ids=${q}`, async () => {
      const part = await this.range(url, d.size * d.k * 4 + q * d.k * idSize, d.k * idSize, total);
      if (part.whole) {
        const table = knnFromBuffer(part.buf, d.size, d.k, d.id_dtype, url);
        this.cache.set(url, Promise.resolve(table));
        return rowOf(table, q).map((n) => n.id);
      }
      const ids = idSize === 4 ? new Uint32Array(part.buf) : new Uint16Array(part.buf);
      for (const id of ids) if (id >= d.size) throw new BundleError(url, `neighbour id ${id} is out of range for N=${d.size}`);
      return ids;
    });
  }

  /** `length` bytes at `start` of a file of `total` bytes (−1: not known yet): 206 with exactly them, or 200 with the whole file. */
  private async range(url: string, start: number, length: number, total: number): Promise<{ buf: ArrayBuffer; whole: boolean }> {
    let res: Response;
    try {
      res = await this.fetcher(url, { headers: { Range: `bytes=${start}-${start + length - 1}` } });
    } catch (e) {
      throw new BundleError(url, `network error (${String(e)})`);
    }
    if (res.status === 206) {
      const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
      if (cr && (Number(cr[1]) !== start || (cr[3] !== '*' && total >= 0 && Number(cr[3]) !== total))) {
        throw new BundleError(url, `the server sent ${res.headers.get('content-range')}; asked for bytes ${start}-${start + length - 1} of ${total}`);
      }
      const buf = await res.arrayBuffer();
      if (buf.byteLength !== length) throw new BundleError(url, `asked for ${length} bytes, got ${buf.byteLength}`);
      return { buf, whole: false };
    }
    if (!res.ok) throw new BundleError(url, `HTTP ${res.status}`);
    const declared = res.headers.get('content-length');
    const encoded = (res.headers.get('content-encoding') ?? 'identity') !== 'identity';
    if (declared !== null && !encoded && total >= 0 && Number(declared) !== total) {
      void res.body?.cancel().catch(() => undefined);
      throw new BundleError(url, `the server announces ${declared} bytes; the manifest implies ${total}`);
    }
    return { buf: await res.arrayBuffer(), whole: true };
  }

  /** Query q's stored score numerators, [pooling][configuration] (manifest orders), from its block. */
  queryScores(dataset: string, metric: string, q: number, field: string): Promise<Uint8Array> {
    const d = this.dataset(dataset);
    const block = Math.floor(q / d.scores_block);
    const rows = Math.min(d.scores_block, d.size - block * d.scores_block);
    const perQuery = this.manifest.poolings.length * this.configCount();
    const url = this.path('scores', { dataset, metric, block, field });
    return this.binary(url, rows * perQuery, (buf) => scoresFromBuffer(buf, rows, perQuery, url))
      .then((all) => all.subarray((q - block * d.scores_block) * perQuery, (q - block * d.scores_block + 1) * perQuery));
  }
}
