// Messages between the page (index.ts) and the TF.js worker (worker.ts). Every request carries an
// id; the worker answers each with exactly one reply with the same id (result or error).
import type { Hit, LiveMetric } from './metrics';
import type { BrowserOutput } from '../data/types';

export interface InitRequest {
  type: 'init';
  id: number;
  modelUrl: string; // absolute URL of model.json
  cacheKey: string; // IndexedDB model name; a new bundle's model gets a new key
  outputs: BrowserOutput[];
  inputSize: [number, number];
}

export interface FeaturesRequest {
  type: 'features';
  id: number;
  url: string; // absolute URL of datasets/<dataset>/browser/<layer>.f32
  n: number;
  dim: number;
}

export interface SearchRequest {
  type: 'search';
  id: number;
  /** The uploaded file; absent = search again with the last embedding (layer or metric change). */
  file?: Blob;
  name?: string;
  features: { url: string; n: number; dim: number };
  layer: string;
  metric: LiveMetric;
  p: number;
  k: number;
}

export type Request = InitRequest | FeaturesRequest | SearchRequest;

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
  embedMs: number; // pixels → features (TF.js)
  searchMs: number; // distances + top-k
  workerMs: number; // everything in the worker
}

export interface SearchReply {
  type: 'search';
  id: number;
  hits: Hit[];
  timings: SearchTimings;
  numTensors: number; // tf.memory().numTensors after the search
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

export type Reply = InitReply | FeaturesReply | SearchReply | ErrorReply;

/** FNV-1a (64-bit) as hex: a short, stable fingerprint for cache keys (not for security). */
export function fnv1a64(text: string): string {
  let h = 0xcbf29ce484222325n;
  const prime = 0x100000001b3n;
  for (const byte of new TextEncoder().encode(text)) {
    h ^= BigInt(byte);
    h = (h * prime) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
}

/**
 * IndexedDB key for the bundle's model. The key must change whenever the model's bytes do, and
 * must be known *without* fetching model.json (the point of the cache). Preferred: the exporter's
 * sha256 of model.json + shards (`model_sha256`, when the bundle carries it); otherwise every
 * manifest field that describes the model and its weights.
 */
export function modelCacheKey(manifest: {
  generator: string;
  weights_detail: string;
  browser_search: unknown;
  models: { id: string }[];
}): string {
  const bs = manifest.browser_search as ({ model: string; model_sha256?: string } & Record<string, unknown>) | null;
  if (!bs) throw new Error('the bundle has no browser_search model');
  const model = manifest.models.find((m) => m.id === bs.model) ?? null;
  const basis = bs.model_sha256 ? `sha256:${bs.model_sha256}` : JSON.stringify([manifest.generator, manifest.weights_detail, bs, model]);
  return `convnet-search/${bs.model}-${fnv1a64(basis)}`;
}
