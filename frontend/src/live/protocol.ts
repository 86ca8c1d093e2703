// Messages between the page (index.ts) and the TF.js worker (worker.ts). Every request carries an
// id; the worker answers each with exactly one reply with the same id (result or error).
import type { FeatureLayout } from './features';
import type { Hit, LiveMetric } from './metrics';
import type { BrowserOutput, Manifest, SpatialOutput } from '../data/types';

export interface InitRequest {
  type: 'init';
  id: number;
  modelUrl: string; // absolute URL of model.json
  cacheKey: string; // IndexedDB model name; a new bundle's model gets a new key
  outputs: BrowserOutput[];
  /** The layers' spatial outputs: the worker finds each layer's activation node through them. */
  spatialOutputs?: SpatialOutput[];
  inputSize: [number, number];
}

/** One browser-features file (docs/bundle.md "In-browser search files") and how to read it. */
export interface FeaturesSpec extends FeatureLayout {
  url: string; // absolute URL of files.browser_features for (dataset, layer, pooling)
}

export interface FeaturesRequest extends FeaturesSpec {
  type: 'features';
  id: number;
}

export interface SearchRequest {
  type: 'search';
  id: number;
  /** The uploaded file; absent = search again with the last embedding (layer or metric change). */
  file?: Blob;
  name?: string;
  features: FeaturesSpec;
  layer: string;
  pooling: string;
  metric: LiveMetric;
  p: number;
  k: number;
}

/** An image for "why similar?": the last uploaded one (its pixels stay in the worker), or a
 * dataset thumbnail the page already shows, as a bitmap (transferred: no fetch). */
export type WhyImage = { kind: 'upload' } | { kind: 'bitmap'; bitmap: ImageBitmap };

/** Similarity maps of a query and a result at one layer (see similarity.ts). */
export interface WhyRequest {
  type: 'why';
  id: number;
  layer: string;
  output: string; // the layer's spatial graph output (browser_search.spatial_outputs)
  query: WhyImage;
  result: WhyImage;
}

export type Request = InitRequest | FeaturesRequest | SearchRequest | WhyRequest;

export interface InitReply {
  type: 'init';
  id: number;
  backend: string;
  source: 'indexeddb' | 'network';
  loadMs: number;
  warmupMs: number;
  numTensors: number;
  cacheNote: string; // why the cache was (not) used, for the status line
}

export interface FeaturesReply {
  type: 'features';
  id: number;
  ms: number;
  bytes: number;
}

export interface SearchTimings {
  decodeMs: number; // file → RGB pixels (0 when re-searching)
  embedMs: number; // pixels → the searched vector (TF.js); 0 when a re-search found it computed
  searchMs: number; // distances + top-k
  topkMs: number; // the top-k part of searchMs
  workerMs: number; // everything in the worker
}

export interface SearchReply {
  type: 'search';
  id: number;
  hits: Hit[];
  timings: SearchTimings;
  /** tf.memory().numTensors after the search, less the `heldTensors` the worker keeps for the
   * last upload (its model input and layer maps, until its other outputs are computed). */
  numTensors: number;
  heldTensors: number;
  baselineTensors: number; // … right after the model loaded (the model's weights)
  width: number; // size the image was embedded from (after any scale-down)
  height: number;
  originalWidth: number;
  originalHeight: number;
  preview?: string; // data: URL of a small JPEG of what was embedded (absent when re-searching)
}

export interface ErrorReply {
  type: 'error';
  id: number;
  message: string;
  /** True when the input was at fault (bad file); false for an internal failure. */
  user: boolean;
}

export interface WhyReply {
  type: 'why';
  id: number;
  h: number;
  w: number;
  query: Float32Array; // h·w cosines, row-major
  result: Float32Array;
  /** Pixel size each image was embedded from (before the resize to the model input). */
  querySize: [number, number];
  resultSize: [number, number];
  ms: number;
}

export type Reply = InitReply | FeaturesReply | SearchReply | WhyReply | ErrorReply;

/** Each request type, as the page sends it (the client numbers it), and its reply: a new request adds a line to each. */
export interface RequestOf {
  init: Omit<InitRequest, 'id'>;
  features: Omit<FeaturesRequest, 'id'>;
  search: Omit<SearchRequest, 'id'>;
  why: Omit<WhyRequest, 'id'>;
}
export interface ReplyOf {
  init: InitReply;
  features: FeaturesReply;
  search: SearchReply;
  why: WhyReply;
}

/**
 * IndexedDB key for the bundle's model. It must change whenever the model's bytes do, and must be
 * known *without* fetching model.json (the point of the cache): the exporter's sha256 over
 * model.json and its shards (`browser_search.model_sha256`) is exactly that.
 */
export function modelCacheKey(manifest: Pick<Manifest, 'browser_search'>): string {
  const bs = manifest.browser_search;
  if (!bs) throw new Error('the bundle has no browser_search model');
  if (!/^[0-9a-f]{64}$/.test(bs.model_sha256)) throw new Error(`browser_search.model_sha256 is not a sha256: ${JSON.stringify(bs.model_sha256)}`);
  return `convnet-search/${bs.model}-${bs.model_sha256.slice(0, 16)}`;
}
