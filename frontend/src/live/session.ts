// The private search's session controller: model loading, the worker, the dataset's features,
// the thumbnails that keep results private, and the search state (last image, queue). No DOM:
// the panel (index.ts) renders what it reports, and session.test.ts drives it with a fake worker.
import type { Manifest } from '../data/types';
import { fillTemplate } from '../data/provider';
import { isLiveMetric } from './metrics';
import { modelCacheKey, type FeaturesSpec, type InitReply, type Reply, type ReplyOf, type Request, type RequestOf, type SearchReply, type WhyReply, type WhyRequest } from './protocol';
import { ThumbStore, thumbPolicy, type Fetcher } from './thumbs';

/** What the session needs from the explorer: the bundle and the current view's choices. */
export interface SessionHost {
  manifest: Manifest;
  resolve(path: string): string; // bundle-relative path -> absolute URL
  getDataset(): string;
  getMetric(): string;
  getPooling(): string;
}

/** The page's side of the worker: one reply per request (worker errors reject). */
export interface WorkerPort {
  request<T extends keyof RequestOf>(msg: RequestOf[T] & { type: T }): Promise<ReplyOf[T]>;
}

export type SessionState = 'idle' | 'loading' | 'ready' | 'searching' | 'failed';

/** Where a dataset's thumbnails stand, as far as the privacy notice is concerned. */
export type ThumbStatus =
  | { kind: 'ready'; bytes: number; failed: number }
  | { kind: 'loading'; progress: string }
  | { kind: 'pending' } // loads with the model (small dataset)
  | { kind: 'ask' } // too many to load unasked
  | { kind: 'failed'; message: string };

/** Everything the panel is told; each callback is optional. */
export interface SessionEvents {
  state?(s: SessionState): void;
  loading?(): void;
  ready?(info: InitReply, readyMs: number): void;
  /** The model (or the worker) failed; `fatal` = the worker itself died. */
  failed?(message: string, fatal: boolean): void;
  /** The thumbnail status of `dataset` changed (progress, done, failed). */
  thumbs?(dataset: string): void;
}

export interface SearchOutcome {
  reply: SearchReply;
  name: string; // the searched image's name (kept for re-searches)
  preview: string | null; // data: URL of the last uploaded image
  dataset: string;
  layer: string;
  pooling: string;
  features: FeaturesSpec;
  /** In-memory thumbnail of a result when the search is private; absent = fetched from the host. */
  thumb?: (id: number) => string;
}

/**
 * The private results' thumbnails: the bundle's packs of its pack_level (the JPEGs the gallery's
 * results show), which exist at any N; per-image files (files.thumbnail) stop above 5,000 images.
 */
export function packThumbStore(m: Manifest, resolve: (path: string) => string, fetcher?: Fetcher): ThumbStore {
  const { grid, pack_level: level } = m.thumbnails;
  return new ThumbStore((dataset, sheet) => resolve(fillTemplate(m.files.thumb_pack, { dataset, level, sheet })), grid * grid, fetcher);
}

export class UserFacingError extends Error {
  readonly user = true;
}

export class LiveSession {
  private port: WorkerPort | null = null;
  private readyP: Promise<InitReply> | null = null;
  private info_: InitReply | null = null;
  private previewUrl: string | null = null;
  private lastName = '';
  private running: Promise<unknown> = Promise.resolve();
  private readonly thumbs: ThumbStore;
  private readonly progress = new Map<string, string>();
  private readonly thumbErrors = new Map<string, string>();
  private state_: SessionState = 'idle';

  constructor(
    private readonly host: SessionHost,
    private readonly makeWorker: (onFatal: (msg: string) => void) => WorkerPort,
    private readonly events: SessionEvents = {},
    thumbs?: ThumbStore,
  ) {
    this.thumbs = thumbs ?? packThumbStore(host.manifest, host.resolve);
  }

  get state(): SessionState {
    return this.state_;
  }
  /** The loaded model's report, null before it loaded. */
  get info(): InitReply | null {
    return this.info_;
  }
  /** Has an image been searched (so a layer change can re-search it)? */
  get hasImage(): boolean {
    return this.lastName !== '';
  }

  private setState(s: SessionState) {
    this.state_ = s;
    this.events.state?.(s);
  }

  private get bs() {
    const bs = this.host.manifest.browser_search;
    if (!bs) throw new Error('the bundle has no browser_search model');
    return bs;
  }

  size(dataset: string): number {
    return this.host.manifest.datasets.find((d) => d.id === dataset)?.size ?? 0;
  }

  /** The features file of (dataset, layer, pooling), with what the worker needs to read it. */
  featuresFor(dataset: string, layer: string, pooling = this.host.getPooling()): FeaturesSpec {
    const m = this.host.manifest;
    const bs = this.bs;
    const ds = m.datasets.find((d) => d.id === dataset);
    const out = bs.outputs.find((o) => o.layer === layer && o.pooling === pooling);
    if (!ds || !bs.datasets.includes(dataset)) throw new UserFacingError(`Private search has no features for the dataset “${dataset}” in this bundle.`);
    if (!out) throw new Error(`unknown layer ${layer} with ${pooling} pooling`);
    // Bundles before encodings were recorded hold float32 files.
    const stored = bs.features?.find((f) => f.dataset === dataset && f.layer === layer && f.pooling === pooling);
    const encoding = stored?.encoding ?? 'float32';
    const rel = fillTemplate(m.files.browser_features, { dataset, layer, pooling, encoding });
    return { url: this.host.resolve(rel), n: ds.size, dim: out.dim, encoding, dims: stored?.dims ?? out.dim };
  }

  // --- thumbnails (privacy) -------------------------------------------------------------------
  thumbStatus(dataset: string): ThumbStatus {
    const set = this.thumbs.get(dataset);
    if (set) return { kind: 'ready', bytes: set.bytes, failed: set.failed };
    if (this.thumbs.isLoading(dataset)) return { kind: 'loading', progress: this.progress.get(dataset) ?? '' };
    const err = this.thumbErrors.get(dataset);
    if (err !== undefined) return { kind: 'failed', message: err };
    return thumbPolicy(this.size(dataset)) === 'preload' ? { kind: 'pending' } : { kind: 'ask' };
  }

  /** Starts (or joins) loading every thumbnail of the dataset; resolves when they are in memory. */
  loadThumbs(dataset: string) {
    this.thumbErrors.delete(dataset);
    const p = this.thumbs.load(dataset, this.size(dataset), (done, total) => {
      this.progress.set(dataset, ` (${done.toLocaleString('en')} of ${total.toLocaleString('en')})`);
      if (done % 25 === 0) this.events.thumbs?.(dataset);
    });
    this.events.thumbs?.(dataset);
    p.then(
      () => this.events.thumbs?.(dataset),
      (e: unknown) => {
        this.thumbErrors.set(dataset, e instanceof Error ? e.message : String(e));
        this.events.thumbs?.(dataset);
      },
    );
    return p;
  }

  /** The thumbnails a search of this dataset may show: in memory when private, else undefined. */
  private async thumbsForSearch(dataset: string): Promise<((id: number) => string) | undefined> {
    if (thumbPolicy(this.size(dataset)) === 'preload' || this.thumbs.isLoading(dataset) || this.thumbs.get(dataset)) {
      try {
        const set = await this.loadThumbs(dataset);
        return (id) => set.url(id);
      } catch {
        return () => ''; // never fall back to server URLs: that would reveal the results
      }
    }
    return undefined; // large set, not loaded: the panel says the host sees the results
  }

  /** "Why similar?" maps for the browser model (views/why.ts): computed in this session's worker. */
  async why(req: Omit<WhyRequest, 'type' | 'id'>): Promise<WhyReply> {
    await this.ensureModel(req.layer);
    return this.port!.request({ type: 'why', ...req });
  }

  // --- model and features -----------------------------------------------------------------------
  /** Loads the model (once; again after a failure) and prefetches the current dataset's features. */
  ensureModel(layer: string): Promise<InitReply> {
    if (this.readyP) return this.readyP;
    const bs = this.bs;
    this.setState('loading');
    this.events.loading?.();
    const tIntent = performance.now();
    const port = this.makeWorker((msg) => {
      this.setState('failed');
      this.events.failed?.(msg, true);
    });
    this.port = port;
    const dataset = this.host.getDataset();
    // Thumbnails load alongside the model; the panel is ready when both are (small sets).
    const thumbsReady = thumbPolicy(this.size(dataset)) === 'preload' ? this.loadThumbs(dataset).catch(() => undefined) : Promise.resolve();
    const ready = port
      .request({ type: 'init', modelUrl: this.host.resolve(bs.model_url), cacheKey: modelCacheKey(this.host.manifest), outputs: bs.outputs, ...(bs.spatial_outputs ? { spatialOutputs: bs.spatial_outputs } : {}), inputSize: bs.input_size })
      .then(async (r) => {
        this.info_ = r;
        // Fetch the current dataset's features now, so a search itself needs no network at all.
        await this.prefetchNow(layer);
        await thumbsReady;
        this.setState('ready');
        this.events.ready?.(r, performance.now() - tIntent);
        return r;
      });
    this.readyP = ready;
    ready.catch((e: unknown) => {
      this.setState('failed');
      this.events.failed?.(e instanceof Error ? e.message : String(e), false);
      this.readyP = null; // a later attempt may succeed (e.g. the network came back)
    });
    return ready;
  }

  private async prefetchNow(layer: string): Promise<void> {
    try {
      await this.port?.request({ type: 'features', ...this.featuresFor(this.host.getDataset(), layer) });
    } catch {
      // no features for this dataset, or the fetch failed: reported at search time, with its name
    }
  }

  /**
   * A sign of interest (hover, focus, drag): loads the model the first time; later, prefetches the
   * features (and small thumbnail sets) of the dataset shown now, since the explorer may have
   * switched datasets, so that the search itself stays free of network requests.
   */
  intent(layer: string): void {
    const wasReady = this.info_ !== null;
    const dataset = this.host.getDataset();
    if (wasReady && thumbPolicy(this.size(dataset)) === 'preload') void this.loadThumbs(dataset).catch(() => undefined);
    void this.ensureModel(layer).then(() => (wasReady ? this.prefetchNow(layer) : undefined), () => undefined);
  }

  /** A layer change with no image searched yet: fetch its features ahead of the search. */
  prefetch(layer: string): void {
    if (this.info_) void this.prefetchNow(layer);
  }

  // --- searching ------------------------------------------------------------------------------
  /**
   * Searches `file` (or, with null, the last image again) in the current dataset, metric and
   * pooling at `layer`. Searches run one after another, in call order.
   */
  search(file: File | null, layer: string, over: { pooling?: string; metric?: string } = {}): Promise<SearchOutcome> {
    const p = this.running.then(() => this.doSearch(file, layer, over));
    this.running = p.catch(() => undefined);
    return p;
  }

  /** `over`: another pooling or metric than the explorer's (a side-by-side column). */
  private async doSearch(file: File | null, layer: string, over: { pooling?: string; metric?: string }): Promise<SearchOutcome> {
    try {
      await this.ensureModel(layer);
      const m = this.host.manifest;
      const metric = over.metric ?? this.host.getMetric();
      if (!isLiveMetric(metric)) throw new UserFacingError(`The metric “${metric}” is not supported by the in-browser search.`);
      const p = m.metrics.find((x) => x.id === metric)?.p ?? 3;
      const dataset = this.host.getDataset();
      const pooling = over.pooling ?? this.host.getPooling();
      const features = this.featuresFor(dataset, layer, pooling);
      this.setState('searching');
      // Before the search: its results must be shown from memory, not fetched (see thumbs.ts).
      const thumb = await this.thumbsForSearch(dataset);
      if (file) this.lastName = file.name || 'pasted image';
      const k = m.datasets.find((d) => d.id === dataset)?.k ?? m.k;
      const reply = await this.port!.request({
        type: 'search',
        ...(file ? { file, name: this.lastName } : {}),
        features,
        layer,
        pooling,
        metric,
        p,
        k,
      });
      if (reply.preview) this.previewUrl = reply.preview;
      this.setState('ready');
      return { reply, name: this.lastName, preview: this.previewUrl, dataset, layer, pooling, features, ...(thumb ? { thumb } : {}) };
    } catch (e) {
      if (this.readyP) this.setState('ready');
      throw e;
    }
  }
}

/** Promise-per-request wrapper around the real worker (worker.ts). */
export class WorkerClient implements WorkerPort {
  private readonly worker: Worker;
  private next = 1;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();

  constructor(onFatal: (msg: string) => void) {
    this.worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'convnet-search-live' });
    this.worker.onmessage = (ev: MessageEvent<Reply>) => {
      const p = this.pending.get(ev.data.id);
      if (!p) return;
      this.pending.delete(ev.data.id);
      p.resolve(ev.data);
    };
    this.worker.onerror = (ev) => {
      ev.preventDefault();
      const msg = `the search worker failed to start: ${ev.message || 'unknown error'}`;
      for (const p of this.pending.values()) p.reject(new Error(msg));
      this.pending.clear();
      onFatal(msg);
    };
  }

  request<T extends keyof RequestOf>(msg: RequestOf[T] & { type: T }): Promise<ReplyOf[T]> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, {
        resolve: (r) => {
          if (r.type === 'error') reject(Object.assign(new Error(r.message), { user: r.user }));
          else resolve(r as ReplyOf[T]);
        },
        reject,
      });
      this.worker.postMessage({ ...msg, id } as unknown as Request);
    });
  }
}
