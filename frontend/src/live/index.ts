// "Search with your own image": pick, drop or paste an image; it is decoded, embedded and searched
// in a Web Worker (worker.ts) with the bundle's MobileNet TF.js model; nothing leaves the page.
// This is the panel (DOM, events, text); session.ts holds the model, worker, features and search state.
// State is mirrored on the root element's data-* attributes (state, backend, model source,
// tensor counts, latency) so the end-to-end tests and the benchmark can read it.
import './live.css';
import type { Manifest } from '../data/types';
import { LiveSession, WorkerClient, type SearchOutcome } from './session';
import { THUMB_BYTES_ESTIMATE } from './thumbs';
import type { WhyReply, WhyRequest } from './protocol';

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
  /** Receives a runner that searches the last image again under another layer, pooling and metric (side by side). */
  provideSide?(run: SideRunner): void;
}

export type SideRunner = (layer: string, pooling: string, metric: string) => Promise<{ results: { id: number; distance: number }[]; thumb?: (id: number) => string }>;

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
  const modelName = m.models.find((x) => x.id === bs.model)?.name ?? bs.model;

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
  const layerLabel = el('label', 'live-layer-label', `${modelName} layer `);
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

  const showError = (msg: string) => {
    errorBox.textContent = msg;
    errorBox.hidden = false;
  };
  const clearError = () => {
    errorBox.hidden = true;
    errorBox.textContent = '';
  };
  root.dataset.state = 'idle';
  statusLine.textContent = `The model (${mb(bs.model_bytes)}, ${bs.quantization}) loads when you first use this panel; it then stays in this browser.`;

  const nameOf = (dataset: string) => m.datasets.find((d) => d.id === dataset)?.name ?? dataset;

  // --- the session: everything but the DOM ------------------------------------------------------
  const session = new LiveSession(
    { ...host, resolve: (p) => new URL(host.resolve(p), location.href).href },
    (onFatal) => new WorkerClient(onFatal),
    {
      state: (s) => (root.dataset.state = s),
      loading: () => (statusLine.textContent = `Loading the model (${mb(bs.model_bytes)})…`),
      ready: (r, readyMs) => {
        root.dataset.backend = r.backend;
        root.dataset.modelSource = r.source;
        root.dataset.loadMs = r.loadMs.toFixed(1);
        root.dataset.warmupMs = r.warmupMs.toFixed(1);
        root.dataset.baselineTensors = String(r.numTensors);
        root.dataset.numTensors = String(r.numTensors);
        const from = r.source === 'indexeddb' ? 'from this browser’s cache' : `downloaded, ${r.cacheNote}`;
        statusLine.textContent = `Ready: ${modelName} on the ${r.backend} backend (model ${from}; loaded in ${ms(r.loadMs)}, warm-up ${ms(r.warmupMs)}).`;
        root.dataset.readyMs = readyMs.toFixed(1); // first intent → ready
      },
      failed: (msg, fatal) => {
        if (fatal) return showError(`In-browser search is unavailable: ${msg}`);
        statusLine.textContent = 'In-browser search is unavailable.';
        showError(`Could not load the model: ${msg}`);
      },
      thumbs: (dataset) => {
        if (dataset === host.getDataset()) showPrivacy();
      },
    },
  );

  // --- privacy notice -----------------------------------------------------------------------
  const showPrivacy = () => {
    const dataset = host.getDataset();
    const n = session.size(dataset).toLocaleString('en');
    const name = nameOf(dataset);
    const t = session.thumbStatus(dataset);
    loadThumbs.hidden = true;
    root.dataset.thumbs = t.kind;
    if (t.kind === 'ready') {
      root.dataset.thumbBytes = String(t.bytes);
      const missing = t.failed ? ` (${t.failed} could not be loaded and show empty)` : '';
      privacyText.textContent =
        `Private: all ${n} thumbnails of “${name}” (${mb(t.bytes)}) are loaded${missing}, so showing results ` +
        'fetches nothing: the host cannot tell which images match yours. (Clicking a result runs an ordinary dataset query.)';
    } else if (t.kind === 'loading') {
      privacyText.textContent = `Loading all ${n} thumbnails of “${name}” before the first search, so that showing results fetches nothing${t.progress}…`;
    } else if (t.kind === 'failed') {
      privacyText.textContent = `Could not load the thumbnails of “${name}” (${t.message}); results will show no thumbnails. Try again later.`;
    } else if (t.kind === 'pending') {
      privacyText.textContent = `All ${n} thumbnails of “${name}” load with the model, before the first search, so the host cannot tell which images match yours.`;
    } else {
      const est = mb(session.size(dataset) * THUMB_BYTES_ESTIMATE);
      privacyText.textContent =
        `Your image never leaves this page, but “${name}” has ${n} images (≈ ${est} of thumbnails), too many to load unasked: ` +
        'the thumbnails of your results are fetched from the host when shown, so the host can see which dataset images are the nearest neighbours of your image.';
      loadThumbs.textContent = `Load all ${n} thumbnails first (≈ ${est})`;
      loadThumbs.hidden = false;
    }
  };
  loadThumbs.addEventListener('click', () => {
    void session.loadThumbs(host.getDataset()).catch(() => undefined);
  });
  showPrivacy();

  // --- searching: hand the file to the session, render what comes back ------------------------
  let searches = 0;
  const render = async (o: SearchOutcome, fromUpload: boolean, t0: number) => {
    const r = o.reply;
    const tReply = performance.now();
    if (r.preview && o.preview) {
      preview.src = o.preview;
      preview.hidden = false;
      root.dataset.size = `${r.width}x${r.height}`;
    }
    const scaled = r.originalWidth > r.width ? ` (scaled down from ${r.originalWidth}×${r.originalHeight})` : '';
    const what = r.preview ? `${o.name} · ${r.width}×${r.height}${scaled}` : o.name;
    host.showUploadResults({
      imageUrl: o.preview ?? '',
      results: r.hits.map((h) => ({ id: h.id, distance: h.distance })),
      info: `${what} · ${modelName} ${o.layer} (${o.pooling} pooling) · searched in your browser`,
      ...(o.thumb ? { thumb: o.thumb } : {}),
    });
    await nextFrame();
    const total = performance.now() - t0;
    searches++;
    root.dataset.numTensors = String(r.numTensors);
    root.dataset.heldTensors = String(r.heldTensors);
    root.dataset.baselineTensors = String(r.baselineTensors);
    root.dataset.latencyMs = total.toFixed(1);
    root.dataset.embedMs = r.timings.embedMs.toFixed(1);
    root.dataset.searchMs = r.timings.searchMs.toFixed(1);
    // The rest of the latency, for the benchmark's breakdown: decode, top-k (inside searchMs),
    // everything in the worker, and the page's part after the reply (results view + one frame).
    root.dataset.decodeMs = r.timings.decodeMs.toFixed(1);
    root.dataset.topkMs = r.timings.topkMs.toFixed(1);
    root.dataset.workerMs = r.timings.workerMs.toFixed(1);
    root.dataset.replyMs = (tReply - t0).toFixed(1);
    root.dataset.renderMs = (performance.now() - tReply).toFixed(1);
    root.dataset.searches = String(searches);
    root.dataset.top = r.hits.map((h) => `${h.id}:${h.distance}`).join(',');
    timing.textContent =
      `${session.info?.backend ?? '?'} backend · ` +
      (fromUpload ? `decode ${ms(r.timings.decodeMs)} · embed ${ms(r.timings.embedMs)} · ` : r.timings.embedMs > 0 ? `embed ${ms(r.timings.embedMs)} (kept image) · ` : 're-used embedding · ') +
      `search ${o.features.n.toLocaleString('en')} images ${ms(r.timings.searchMs)} · ${fromUpload ? 'upload → results' : 'total'} ${ms(total)}`;
  };

  const runSearch = (file: File | null, t0: number) => {
    clearError();
    session.search(file, layerSel.value).then(
      // A re-search (layer change) is timed from when its worker request starts, like before the split.
      (o) => render(o, file !== null, file ? t0 : performance.now() - o.reply.timings.workerMs),
      (e: unknown) => {
        const msg = e instanceof Error ? e.message : String(e);
        const user = (e as { user?: boolean }).user === true;
        showError(user ? msg : `Search failed: ${msg}`);
        root.dataset.errors = String(Number(root.dataset.errors ?? 0) + 1);
      },
    );
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
    if (session.hasImage && session.info) runSearch(null, performance.now());
    else session.prefetch(layerSel.value);
  });
  // Load the model on the first sign of interest, not on page load: most visits never use it.
  const intent = () => {
    showPrivacy(); // the explorer may have switched datasets
    session.intent(layerSel.value);
  };
  for (const ev of ['pointerenter', 'focusin', 'dragenter'] as const) root.addEventListener(ev, intent);
  host.provideWhy?.((req) => session.why(req));
  host.provideSide?.((layer, pooling, metric) => session.search(null, layer, { pooling, metric }).then((o) => ({
    results: o.reply.hits.map((x) => ({ id: x.id, distance: x.distance })),
    ...(o.thumb ? { thumb: o.thumb } : {}),
  })));
}
