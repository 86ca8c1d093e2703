// "Search with your own image": pick, drop or paste an image; it is decoded, embedded and searched
// in a Web Worker (worker.ts) with the bundle's MobileNet TF.js model; nothing leaves the page.
// State is mirrored on the root element's data-* attributes (state, backend, model source,
// tensor counts, latency) so the end-to-end tests and the benchmark can read it.
import './live.css';
import type { Manifest } from '../data/types';
import { fillTemplate } from '../data/provider';
import { isLiveMetric, type Hit } from './metrics';
import { modelCacheKey, type InitReply, type Reply, type Request, type SearchReply, type WhyReply, type WhyRequest } from './protocol';
import { THUMB_BYTES_ESTIMATE, ThumbStore, thumbPolicy } from './thumbs';

export interface LiveSearchHost {
  manifest: Manifest;
  resolve(path: string): string; // bundle-relative path -> URL
  getDataset(): string;
  getMetric(): string;
  getPooling(): string;
  /** thumb(id): the in-memory thumbnail of a result (see thumbs.ts), never a server URL when private. */
  showUploadResults(r: { imageUrl: string; results: { id: number; distance: number }[]; info: string; thumb?: (id: number) => string }): void;
  /** Receives the "why similar?" runner (views/why.ts): the same worker and model as the search. */
  provideWhy?(run: (req: Omit<WhyRequest, 'type' | 'id'>) => Promise<WhyReply>): void;
}

type DistReq = Request extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/** Promise-per-request wrapper around the worker. */
class WorkerClient {
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

  request<T extends Reply['type']>(msg: DistReq & { type: T }): Promise<Extract<Reply, { type: T }>> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, {
        resolve: (r) => {
          if (r.type === 'error') reject(Object.assign(new Error(r.message), { user: r.user }));
          else resolve(r as Extract<Reply, { type: T }>);
        },
        reject,
      });
      this.worker.postMessage({ ...msg, id } as Request);
    });
  }
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

const ms = (x: number) => `${x < 10 ? x.toFixed(1) : Math.round(x)} ms`;
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const nextFrame = () => new Promise<void>((r) => requestAnimationFrame(() => r()));

export function mountLiveSearch(root: HTMLElement, host: LiveSearchHost): void {
  const m = host.manifest;
  const bs = m.browser_search;
  root.classList.add('live');
  if (!bs) {
    root.append(el('p', 'hint', 'This bundle has no in-browser search model.'));
    return;
  }
  const modelInfo = m.models.find((x) => x.id === bs.model);

  // --- DOM ---------------------------------------------------------------------------------
  const input = el('input', 'live-input');
  input.type = 'file';
  input.accept = 'image/*';
  input.id = 'live-file';
  const pick = el('button', 'live-pick', 'Choose an image…');
  pick.type = 'button';
  // The drop zone is a plain region (a button inside a role=button would nest interactive
  // controls); keyboard users have the "Choose an image…" button and paste.
  const zone = el('div', 'live-drop');
  zone.append(el('span', 'live-drop-text', 'Drop an image here, or paste one (Ctrl+V / ⌘V)'), el('span', 'live-or', ' or '), pick, input);

  const layerSel = el('select', 'live-layer');
  layerSel.id = 'live-layer';
  // One entry per layer (the model has an output per layer and pooling; the explorer's pooling picks one).
  for (const o of bs.outputs.filter((x, i, all) => all.findIndex((y) => y.layer === x.layer) === i)) {
    const opt = el('option', undefined, o.layer);
    opt.value = o.layer;
    opt.selected = o.layer === bs.default_layer;
    layerSel.append(opt);
  }
  const layerLabel = el('label', 'live-layer-label', `${modelInfo?.name ?? bs.model} layer `);
  layerLabel.htmlFor = 'live-layer';
  const controls = el('div', 'live-controls');
  controls.append(layerLabel, layerSel);

  const statusLine = el('p', 'live-status');
  statusLine.setAttribute('role', 'status');
  const errorBox = el('p', 'live-error');
  errorBox.setAttribute('role', 'alert');
  errorBox.hidden = true;
  const preview = el('img', 'live-preview');
  preview.alt = 'Your image, as it was searched';
  preview.hidden = true;
  const timing = el('p', 'live-timing');
  // What the host can learn from a search: shown before the first upload, per dataset.
  const privacyText = el('span', 'live-privacy-text');
  const loadThumbs = el('button', 'live-load-thumbs');
  loadThumbs.type = 'button';
  loadThumbs.hidden = true;
  const privacy = el('p', 'live-privacy');
  privacy.append(privacyText, ' ', loadThumbs);
  root.append(zone, controls, statusLine, privacy, errorBox, preview, timing);

  const setState = (s: string) => (root.dataset.state = s);
  const showError = (msg: string) => {
    errorBox.textContent = msg;
    errorBox.hidden = false;
  };
  const clearError = () => {
    errorBox.hidden = true;
    errorBox.textContent = '';
  };
  setState('idle');
  statusLine.textContent = `The model (${mb(bs.model_bytes)}, ${bs.quantization}) loads when you first use this panel; it then stays in this browser.`;

  // --- result thumbnails (privacy) -------------------------------------------------------------
  const thumbs = new ThumbStore((dataset, id) => new URL(host.resolve(fillTemplate(m.files.thumbnail, { dataset, id })), location.href).href);
  const sizeOf = (dataset: string) => m.datasets.find((d) => d.id === dataset)?.size ?? 0;
  const nameOf = (dataset: string) => m.datasets.find((d) => d.id === dataset)?.name ?? dataset;
  const progress = new Map<string, string>();

  const showPrivacy = () => {
    const dataset = host.getDataset();
    const n = sizeOf(dataset);
    const set = thumbs.get(dataset);
    const name = nameOf(dataset);
    loadThumbs.hidden = true;
    if (set) {
      root.dataset.thumbs = 'ready';
      root.dataset.thumbBytes = String(set.bytes);
      const missing = set.failed ? ` (${set.failed} could not be loaded and show empty)` : '';
      privacyText.textContent =
        `Private: all ${n.toLocaleString('en')} thumbnails of “${name}” (${mb(set.bytes)}) are loaded${missing}, so showing results ` +
        'fetches nothing: the host cannot tell which images match yours. (Clicking a result runs an ordinary dataset query.)';
    } else if (thumbs.isLoading(dataset)) {
      root.dataset.thumbs = 'loading';
      privacyText.textContent = `Loading all ${n.toLocaleString('en')} thumbnails of “${name}” before the first search, so that showing results fetches nothing${progress.get(dataset) ?? ''}…`;
    } else if (thumbPolicy(n) === 'preload') {
      root.dataset.thumbs = 'pending';
      privacyText.textContent = `All ${n.toLocaleString('en')} thumbnails of “${name}” load with the model, before the first search, so the host cannot tell which images match yours.`;
    } else {
      root.dataset.thumbs = 'ask';
      const est = mb(n * THUMB_BYTES_ESTIMATE);
      privacyText.textContent =
        `Your image never leaves this page, but “${name}” has ${n.toLocaleString('en')} images (≈ ${est} of thumbnails), too many to load unasked: ` +
        'the thumbnails of your results are fetched from the host when shown, so the host can see which dataset images are the nearest neighbours of your image.';
      loadThumbs.textContent = `Load all ${n.toLocaleString('en')} thumbnails first (≈ ${est})`;
      loadThumbs.hidden = false;
    }
  };

  /** Starts (or joins) loading every thumbnail of the dataset; resolves when they are in memory. */
  const fetchThumbs = (dataset: string) => {
    const p = thumbs.load(dataset, sizeOf(dataset), (done, total) => {
      progress.set(dataset, ` (${done.toLocaleString('en')} of ${total.toLocaleString('en')})`);
      if (host.getDataset() === dataset && done % 25 === 0) showPrivacy();
    });
    showPrivacy();
    p.then(showPrivacy, (e: unknown) => {
      root.dataset.thumbs = 'failed';
      privacyText.textContent = `Could not load the thumbnails of “${nameOf(dataset)}” (${e instanceof Error ? e.message : String(e)}); results will show no thumbnails. Try again later.`;
    });
    return p;
  };

  /** The thumbnails a search of this dataset may show: in memory when private, else null. */
  const thumbsForSearch = async (dataset: string): Promise<((id: number) => string) | undefined> => {
    if (thumbPolicy(sizeOf(dataset)) === 'preload' || thumbs.isLoading(dataset) || thumbs.get(dataset)) {
      try {
        const set = await fetchThumbs(dataset);
        return (id) => set.urls[id] ?? '';
      } catch {
        return () => ''; // never fall back to server URLs: that would reveal the results
      }
    }
    return undefined; // large set, not loaded: the panel says the host sees the results
  };

  loadThumbs.addEventListener('click', () => {
    void fetchThumbs(host.getDataset()).catch(() => undefined);
  });
  showPrivacy();

  // --- worker and model ----------------------------------------------------------------------
  let client: WorkerClient | null = null;
  let ready: Promise<InitReply> | null = null;
  let info: InitReply | null = null;
  let previewUrl: string | null = null;
  let searches = 0;
  let lastName = '';

  const featuresFor = (dataset: string, layer: string, pooling = host.getPooling()) => {
    const ds = m.datasets.find((d) => d.id === dataset);
    const out = bs.outputs.find((o) => o.layer === layer && o.pooling === pooling);
    if (!ds || !bs.datasets.includes(dataset)) throw Object.assign(new Error(`Private search has no features for the dataset “${dataset}” in this bundle.`), { user: true });
    if (!out) throw new Error(`unknown layer ${layer} with ${pooling} pooling`);
    const rel = fillTemplate(m.files.browser_features, { dataset, layer, pooling });
    return { url: new URL(host.resolve(rel), location.href).href, n: ds.size, dim: out.dim };
  };

  const ensureModel = (): Promise<InitReply> => {
    if (ready) return ready;
    setState('loading');
    const tIntent = performance.now();
    statusLine.textContent = `Loading the model (${mb(bs.model_bytes)})…`;
    client = new WorkerClient((msg) => {
      setState('failed');
      showError(`In-browser search is unavailable: ${msg}`);
    });
    const c = client;
    // Thumbnails load alongside the model; the panel is ready when both are (small sets).
    const thumbsReady = thumbPolicy(sizeOf(host.getDataset())) === 'preload' ? fetchThumbs(host.getDataset()).catch(() => undefined) : Promise.resolve();
    ready = c
      .request({
        type: 'init',
        modelUrl: new URL(host.resolve(bs.model_url), location.href).href,
        cacheKey: modelCacheKey(m),
        outputs: bs.outputs,
        inputSize: bs.input_size,
      })
      .then(async (r) => {
        info = r;
        root.dataset.backend = r.backend;
        root.dataset.modelSource = r.source;
        root.dataset.loadMs = r.loadMs.toFixed(1);
        root.dataset.warmupMs = r.warmupMs.toFixed(1);
        root.dataset.baselineTensors = String(r.numTensors);
        root.dataset.numTensors = String(r.numTensors);
        // Fetch the current dataset's features now, so a search itself needs no network at all.
        try {
          const f = featuresFor(host.getDataset(), layerSel.value);
          await c.request({ type: 'features', ...f });
        } catch {
          // reported at search time, with the dataset's name
        }
        await thumbsReady;
        const from = r.source === 'indexeddb' ? 'from this browser’s cache' : `downloaded, ${r.cacheNote}`;
        statusLine.textContent = `Ready: ${modelInfo?.name ?? bs.model} on the ${r.backend} backend (model ${from}; loaded in ${ms(r.loadMs)}, warm-up ${ms(r.warmupMs)}).`;
        root.dataset.readyMs = (performance.now() - tIntent).toFixed(1); // first intent → ready
        setState('ready');
        return r;
      });
    ready.catch((e: unknown) => {
      setState('failed');
      statusLine.textContent = 'In-browser search is unavailable.';
      showError(`Could not load the model: ${e instanceof Error ? e.message : String(e)}`);
      ready = null; // a later attempt may succeed (e.g. the network came back)
    });
    return ready;
  };

  // --- searching -----------------------------------------------------------------------------
  let running: Promise<void> = Promise.resolve();

  const runSearch = (file: File | null, t0: number) => {
    running = running.then(() => doSearch(file, t0)).catch(() => undefined);
  };

  const doSearch = async (file: File | null, t0: number): Promise<void> => {
    clearError();
    try {
      await ensureModel();
      const c = client!;
      const metric = host.getMetric();
      if (!isLiveMetric(metric)) throw Object.assign(new Error(`The metric “${metric}” is not supported by the in-browser search.`), { user: true });
      const p = m.metrics.find((x) => x.id === metric)?.p ?? 3;
      const layer = layerSel.value;
      const dataset = host.getDataset();
      const pooling = host.getPooling();
      const features = featuresFor(dataset, layer, pooling);
      setState('searching');
      // Before the search: its results must be shown from memory, not fetched (see thumbs.ts).
      const thumb = await thumbsForSearch(dataset);
      if (file) lastName = file.name || 'pasted image';
      const tStart = performance.now();
      const r: SearchReply = await c.request({
        type: 'search',
        ...(file ? { file, name: lastName } : {}),
        features,
        layer,
        pooling,
        metric,
        p,
        k: m.datasets.find((d) => d.id === host.getDataset())?.k ?? m.k,
      });
      if (r.preview) {
        previewUrl = r.preview;
        preview.src = previewUrl;
        preview.hidden = false;
        root.dataset.size = `${r.width}x${r.height}`;
      }
      const scaled = r.originalWidth > r.width ? ` (scaled down from ${r.originalWidth}×${r.originalHeight})` : '';
      const what = r.preview ? `${lastName} · ${r.width}×${r.height}${scaled}` : lastName;
      host.showUploadResults({
        imageUrl: previewUrl ?? '',
        results: r.hits.map((h: Hit) => ({ id: h.id, distance: h.distance })),
        info: `${what} · ${modelInfo?.name ?? bs.model} ${layer} (${pooling} pooling) · searched in your browser`,
        ...(thumb ? { thumb } : {}),
      });
      await nextFrame();
      const total = performance.now() - (file ? t0 : tStart);
      searches++;
      root.dataset.numTensors = String(r.numTensors);
      root.dataset.baselineTensors = String(r.baselineTensors);
      root.dataset.latencyMs = total.toFixed(1);
      root.dataset.embedMs = r.timings.embedMs.toFixed(1);
      root.dataset.searchMs = r.timings.searchMs.toFixed(1);
      root.dataset.searches = String(searches);
      root.dataset.top = r.hits.map((h) => `${h.id}:${h.distance}`).join(',');
      timing.textContent =
        `${info?.backend ?? '?'} backend · ` +
        (file ? `decode ${ms(r.timings.decodeMs)} · embed ${ms(r.timings.embedMs)} · ` : 're-used embedding · ') +
        `search ${features.n.toLocaleString('en')} images ${ms(r.timings.searchMs)} · ${file ? 'upload → results' : 'total'} ${ms(total)}`;
      setState('ready');
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      const user = (e as { user?: boolean }).user === true;
      showError(user ? msg : `Search failed: ${msg}`);
      root.dataset.errors = String(Number(root.dataset.errors ?? 0) + 1);
      if (ready) setState('ready');
    }
  };

  const takeFiles = (files: FileList | File[] | null | undefined, t0: number) => {
    const list = Array.from(files ?? []);
    if (!list.length) {
      showError('That was not a file: drop or paste an image file.');
      return;
    }
    runSearch(list[0]!, t0);
  };

  // --- input methods -------------------------------------------------------------------------
  input.addEventListener('change', () => {
    const t0 = performance.now();
    takeFiles(input.files, t0);
    input.value = ''; // choosing the same file again still fires "change"
  });
  pick.addEventListener('click', (e) => {
    e.stopPropagation();
    input.click();
  });
  zone.addEventListener('click', (e) => {
    if (e.target === zone) input.click();
  });
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
    zone.classList.add('live-drop-over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('live-drop-over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('live-drop-over');
    takeFiles(e.dataTransfer?.files, performance.now());
  });
  document.addEventListener('paste', (e) => {
    if (!root.isConnected || root.offsetParent === null) return; // panel not on screen
    const files = Array.from(e.clipboardData?.files ?? []).filter((f) => f.type.startsWith('image/'));
    if (!files.length) return; // plain text paste: not ours
    e.preventDefault();
    takeFiles(files, performance.now());
  });
  layerSel.addEventListener('change', () => {
    if (lastName && info) runSearch(null, performance.now());
    else if (info) {
      try {
        void client?.request({ type: 'features', ...featuresFor(host.getDataset(), layerSel.value) }).catch(() => undefined);
      } catch {
        // reported at search time
      }
    }
  });
  // Load the model on the first sign of interest, not on page load: most visits never use it.
  // Every later sign of interest prefetches the features of the dataset shown now (the explorer
  // may have switched datasets), so that the search itself stays free of network requests.
  const intent = () => {
    const wasReady = info !== null;
    showPrivacy(); // the explorer may have switched datasets
    if (wasReady && thumbPolicy(sizeOf(host.getDataset())) === 'preload') void fetchThumbs(host.getDataset()).catch(() => undefined);
    void ensureModel().then(() => {
      if (!wasReady) return; // ensureModel prefetches on first load
      try {
        void client?.request({ type: 'features', ...featuresFor(host.getDataset(), layerSel.value) }).catch(() => undefined);
      } catch {
        // no features for this dataset: reported at search time
      }
    }, () => undefined);
  };
  for (const ev of ['pointerenter', 'focusin', 'dragenter'] as const) root.addEventListener(ev, intent);
  host.provideWhy?.((req) => ensureModel().then(() => client!.request({ type: 'why', ...req })));
}
