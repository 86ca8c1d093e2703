/// <reference lib="webworker" />
// The TF.js side of the private search, in a Web Worker so the page never freezes: decode the
// uploaded file, embed it with the bundle's MobileNet graph model, search the dataset's features.
// Requests are handled one at a time, in order (see `queue`).
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
// The wasm binaries are build assets served next to the app: no CDN (CSP connect-src 'self').
import wasmPlain from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreadedSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { topK } from './metrics';
import { layoutBytes, readFeatures, searchDistances, type FeatureIndex } from './features';
import { describeProblem, MAX_PIXELS, scaledSize, SNIFF_BYTES } from './imagefile';
import { areaFactor, downscaleRows } from './downscale';
import type { FeaturesRequest, FeaturesSpec, InitRequest, Reply, Request, SearchReply, SearchRequest } from './protocol';
import type { BrowserOutput, SpatialOutput } from '../data/types';
import { sameOriginUrl } from '../data/origin';
import { whyMaps, type RgbPixels } from './why';
import { featureKey, UploadFeatures, type Graph, type LayerNode } from './embedding';

declare const self: DedicatedWorkerGlobalScope;

class UserError extends Error {}

interface Loaded {
  model: tf.GraphModel;
  graph: Graph<tf.Tensor>;
  inputName: string;
  outputs: BrowserOutput[];
  /** Each layer's activation node (what its poolings read), from the spatial outputs. */
  nodes: LayerNode[];
  inputSize: [number, number];
  baseline: number;
}

let loaded: Loaded | null = null;
const featureCache = new Map<string, Promise<FeatureIndex>>();
/** Features of the last uploaded image: the searched one at once, the others computed after the
 * reply from the model input kept here (embedding.ts), so a layer, pooling or metric change needs
 * no second upload and, once they are done, no embedding at all. */
let upload: UploadFeatures<tf.Tensor> | null = null;
/** Pixels of the last uploaded image: "why similar?" maps it without the page re-sending it. */
let lastUpload: RgbPixels | null = null;

const now = () => performance.now();

/**
 * The page's CSP is a <meta> tag, which does not govern this worker: every URL it fetches (the
 * model, its weight shards, the features) must be on the page's origin, or it is refused unfetched.
 */
function ownOrigin(url: string): string {
  const r = sameOriginUrl(url, self.location.href, self.location.origin);
  if ('problem' in r) throw new Error(`refusing to fetch ${r.problem}`);
  return r.href;
}
const ownOriginFetch = (url: RequestInfo | URL, init?: RequestInit) => fetch(ownOrigin(url instanceof Request ? url.url : String(url)), init);

async function pickBackend(): Promise<string> {
  setWasmPaths({
    'tfjs-backend-wasm.wasm': new URL(wasmPlain, self.location.href).href,
    'tfjs-backend-wasm-simd.wasm': new URL(wasmSimd, self.location.href).href,
    'tfjs-backend-wasm-threaded-simd.wasm': new URL(wasmThreadedSimd, self.location.href).href,
  });
  // wasm: ~45 ms per MobileNet on 2 CPU cores; webgl in a worker needs OffscreenCanvas + a GPU
  // (software GL is 10× slower than wasm); cpu is the always-there fallback (~1 s).
  for (const name of ['wasm', 'webgl', 'cpu']) {
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        return name;
      }
    } catch {
      // try the next one
    }
  }
  throw new Error('no TF.js backend could start (wasm, webgl and cpu all failed)');
}

async function init(req: InitRequest) {
  const t0 = now();
  const backend = await pickBackend();
  const idbUrl = `indexeddb://${req.cacheKey}`;
  let model: tf.GraphModel | null = null;
  let source: 'indexeddb' | 'network' = 'network';
  let cacheNote = '';
  const stored = await tf.io.listModels().catch(() => ({}) as Record<string, unknown>);
  if (idbUrl in stored) {
    try {
      model = await tf.loadGraphModel(idbUrl);
      source = 'indexeddb';
    } catch (e) {
      cacheNote = `cached copy unreadable (${String(e)}), loaded from the network`;
      await tf.io.removeModel(idbUrl).catch(() => undefined);
    }
  }
  if (!model) {
    model = await tf.loadGraphModel(ownOrigin(req.modelUrl), { fetchFunc: ownOriginFetch });
    try {
      await model.save(idbUrl);
      cacheNote ||= 'stored in this browser for next time';
    } catch (e) {
      cacheNote ||= `could not store it in this browser (${String(e)})`;
    }
    // Older bundles' models under our prefix are dead weight: drop them.
    for (const key of Object.keys(stored)) {
      if (key.startsWith(`indexeddb://${req.cacheKey.slice(0, req.cacheKey.lastIndexOf('-') + 1)}`) && key !== idbUrl) await tf.io.removeModel(key).catch(() => undefined);
    }
  }
  const loadMs = now() - t0;
  // Warm-up: the first execution compiles kernels and allocates; do it before the first user search.
  const t1 = now();
  // It also proves the manifest's output names exist in this graph.
  let ys: tf.Tensor[];
  try {
    ys = tf.tidy(() => asArray(model!.execute(tf.zeros([1, ...req.inputSize, 3]), req.outputs.map((o) => o.output))));
  } catch (e) {
    throw new Error(`the model does not compute the outputs the manifest names (${req.outputs.map((o) => o.output).join(', ')}): ${String(e)}`);
  }
  await Promise.all(ys.map((y) => y.data()));
  tf.dispose(ys);
  const warmupMs = now() - t1;
  const graph: Graph<tf.Tensor> = {
    run: (feeds, outputs) => asArray(model!.execute(Object.fromEntries(feeds), outputs)),
    read: (t) => t.data<'float32'>(),
    dispose: (t) => t.dispose(),
  };
  loaded = { model, graph, inputName: model.inputs[0]!.name, outputs: req.outputs, nodes: layerNodes(model, req.spatialOutputs ?? []), inputSize: req.inputSize, baseline: tf.memory().numTensors };
  return { backend, source, loadMs, warmupMs, numTensors: tf.memory().numTensors, cacheNote };
}

/**
 * The node each spatial output is an Identity of: the layer's activation, which its poolings read.
 * Feeding it back lets the other poolings skip the network (embedding.ts). This reads TF.js's
 * (private) graph; if it is not there or not as expected, the layer has no node and its outputs
 * are computed from the input: the same numbers, more work.
 */
function layerNodes(model: tf.GraphModel, spatial: SpatialOutput[]): LayerNode[] {
  const nodes = (model as unknown as { executor?: { graph?: { nodes?: Record<string, { op?: string; inputs?: { name: string }[] }> } } }).executor?.graph?.nodes;
  const out: LayerNode[] = [];
  for (const s of spatial) {
    const id = nodes?.[s.output.split(':')[0]!];
    const src = id?.op === 'Identity' && id.inputs?.length === 1 ? id.inputs[0]!.name : null;
    if (src && nodes?.[src]) out.push({ layer: s.layer, node: src });
  }
  return out;
}

function asArray(x: tf.Tensor | tf.Tensor[] | tf.NamedTensorMap): tf.Tensor[] {
  if (Array.isArray(x)) return x;
  if (x instanceof tf.Tensor) return [x];
  return Object.values(x);
}

function loadFeatures(spec: FeaturesSpec): Promise<FeatureIndex> {
  let p = featureCache.get(spec.url);
  if (!p) {
    p = (async () => {
      const res = await ownOriginFetch(spec.url);
      if (!res.ok) throw new Error(`${spec.url}: HTTP ${res.status}`);
      try {
        return readFeatures(await res.arrayBuffer(), spec);
      } catch (e) {
        throw new Error(`${spec.url}: ${e instanceof Error ? e.message : String(e)}`);
      }
    })();
    p.catch(() => featureCache.delete(spec.url));
    featureCache.set(spec.url, p);
  }
  return p;
}

async function features(req: FeaturesRequest) {
  const t0 = now();
  await loadFeatures(req);
  return { ms: now() - t0, bytes: layoutBytes(req) };
}

interface Pixels {
  rgb: Float32Array; // [h, w, 3], 0…255, alpha composited on white like the engine
  width: number;
  height: number;
  originalWidth: number;
  originalHeight: number;
  preview: string; // data: URL
}

async function decode(file: Blob, name: string, inputSize: [number, number]): Promise<Pixels> {
  const head = new Uint8Array(await file.slice(0, SNIFF_BYTES).arrayBuffer());
  const tail = new Uint8Array(await file.slice(Math.max(0, file.size - 65536)).arrayBuffer());
  const problem = describeProblem(name, file.size, head, tail);
  if (problem) throw new UserError(problem);
  let bmp: ImageBitmap;
  try {
    // Pixels as stored, like the engine's Pillow decode: no colour-profile conversion, no
    // premultiplication; EXIF orientation applied (the engine applies it too).
    bmp = await createImageBitmap(file, { imageOrientation: 'from-image', premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
  } catch (e) {
    throw new UserError(`“${name}” could not be decoded as an image: the file is corrupt or in a format this browser cannot read (${e instanceof Error ? e.message : String(e)}).`);
  }
  try {
    const ow = bmp.width;
    const oh = bmp.height;
    if (ow * oh > MAX_PIXELS) throw new UserError(`“${name}” is too large: ${ow}×${oh} pixels (limit ${MAX_PIXELS.toLocaleString('en')}).`);
    // Step 1 of the engine's path (docs/live-search.md "Large images"): a side over 2× the input
    // → k×k box mean in integer arithmetic (downscale.ts), bit-identical to the engine; smaller
    // images pass through (k = 1) as RGB. Drawn 1:1 (no smoothing involved), read in strips.
    const canvas = new OffscreenCanvas(ow, oh);
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    if (!ctx) throw new Error('no 2D canvas in this worker');
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(bmp, 0, 0);
    const { rgb, width: w, height: h } = downscaleRows(ow, oh, areaFactor(oh, ow, inputSize), (y0, rows) => ctx.getImageData(0, y0, ow, rows).data);
    const preview = await previewJpeg(bmp);
    return { rgb, width: w, height: h, originalWidth: ow, originalHeight: oh, preview };
  } finally {
    bmp.close();
  }
}

/**
 * Small JPEG of the image as a data: URL. A data: URL (unlike a blob: URL) does not even show up as
 * a request in the browser's network log: displaying the query is provably local.
 */
async function previewJpeg(bmp: ImageBitmap): Promise<string> {
  const [w, h] = scaledSize(bmp.width, bmp.height, 256);
  const c = new OffscreenCanvas(w, h);
  const ctx = c.getContext('2d')!;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, w, h);
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bmp, 0, 0, w, h);
  const blob = await c.convertToBlob({ type: 'image/jpeg', quality: 0.85 });
  return new FileReaderSync().readAsDataURL(blob);
}

/** The model input of an upload (kept by UploadFeatures until all its outputs are computed). */
function modelInput(px: Pixels, inputSize: [number, number]): tf.Tensor {
  return tf.tidy(() => {
    const img = tf.tensor4d(px.rgb, [1, px.height, px.width, 3], 'float32');
    // Step 2 of THE preprocessing path (step 1 is in decode), twin of convnet_search/preprocess.py
    // resize_rgb: bilinear, half-pixel centres, no antialias; preprocess_input is in the graph.
    return px.height === inputSize[0] && px.width === inputSize[1] ? img : tf.image.resizeBilinear(img, inputSize, false, true);
  });
}

async function search(req: SearchRequest): Promise<Omit<SearchReply, 'type' | 'id'>> {
  if (!loaded) throw new Error('the model is not loaded');
  const t0 = now();
  let decodeMs = 0;
  let embedMs = 0;
  let px: Pixels | null = null;
  const key = featureKey(req);
  if (!loaded.outputs.some((o) => featureKey(o) === key)) throw new Error(`the model has no output for layer ${req.layer} with ${req.pooling} pooling`);
  if (req.file) {
    px = await decode(req.file, req.name ?? 'file', loaded.inputSize);
    decodeMs = now() - t0;
    upload?.release();
    upload = null;
    upload = new UploadFeatures(loaded.graph, loaded.inputName, loaded.outputs, loaded.nodes, modelInput(px, loaded.inputSize));
    lastUpload = px;
  } else if (!upload) {
    throw new UserError('Choose an image first.');
  }
  // The search's vector only (at once for an upload; for a layer or pooling change, only if the
  // background pass has not computed it yet).
  const t1 = now();
  const computed = !upload.get(key);
  const q = await upload.ensure(key);
  embedMs = computed ? now() - t1 : 0;
  const f = await loadFeatures(req.features);
  const t2 = now();
  const d = searchDistances(q, f, req.metric, req.p);
  const t3 = now();
  const hits = topK(d, req.k);
  const t4 = now();
  const searchMs = t4 - t2;
  return {
    hits,
    timings: { decodeMs, embedMs, searchMs, topkMs: t4 - t3, workerMs: now() - t0 },
    numTensors: tf.memory().numTensors - (upload?.held ?? 0),
    heldTensors: upload?.held ?? 0,
    baselineTensors: loaded.baseline,
    width: px?.width ?? 0,
    height: px?.height ?? 0,
    originalWidth: px?.originalWidth ?? 0,
    originalHeight: px?.originalHeight ?? 0,
    ...(px ? { preview: px.preview } : {}),
  };
}

async function handle(req: Request): Promise<Reply> {
  try {
    switch (req.type) {
      case 'init':
        return { type: 'init', id: req.id, ...(await init(req)) };
      case 'features':
        return { type: 'features', id: req.id, ...(await features(req)) };
      case 'search':
        return { type: 'search', id: req.id, ...(await search(req)) };
      case 'why':
        if (!loaded) throw new Error('the model is not loaded');
        return { type: 'why', id: req.id, ...(await whyMaps(loaded.model, loaded.inputSize, req, lastUpload)) };
    }
  } catch (e) {
    return { type: 'error', id: req.id, message: e instanceof Error ? e.message : String(e), user: e instanceof UserError };
  }
}

// One request at a time: a search never races a model load, and replies come back in order.
let queue: Promise<unknown> = Promise.resolve();
/** Requests received and not yet answered: the background pass runs only while this is 0. */
let waiting = 0;
self.onmessage = (ev: MessageEvent<Request>) => {
  const req = ev.data;
  waiting++;
  queue = queue.then(async () => {
    const reply = await handle(req);
    waiting--;
    self.postMessage(reply);
    if (waiting === 0) queue = queue.then(background);
  });
};

/** Lets queued messages in (each one bumps `waiting`). */
const yieldToMessages = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/**
 * After a reply, while no request waits: the last upload's remaining outputs, one per step, so
 * a new upload waits for at most one step (one pooling, or one stretch of the network). Then the
 * upload's input and maps are freed. Stopped steps resume after the next request, or are computed
 * on demand by a search that needs them.
 */
async function background(): Promise<void> {
  await yieldToMessages();
  while (upload && waiting === 0) {
    const next = upload.nextPending();
    if (!next) {
      upload.release();
      return;
    }
    try {
      await upload.ensure(featureKey(next));
    } catch {
      return; // a search that needs this output computes it again and reports the error
    }
    await yieldToMessages();
  }
}
