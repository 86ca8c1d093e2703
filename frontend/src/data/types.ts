// Types of the static bundle, exactly as docs/bundle.md (format version 1) describes it.
// The explorer reads nothing else.

export type MetricId = string;
export type WeightsKind = 'imagenet' | 'random' | 'file' | 'mixed';
export type IdDtype = 'uint16' | 'uint32';

export interface MetricInfo {
  id: MetricId;
  label: string;
  p: number | null;
  description: string;
}

export interface SkippedFile {
  file: string;
  reason: string;
}

export interface DatasetInfo {
  id: string;
  name: string;
  description: string;
  source: string;
  classes: string[];
  size: number;
  id_dtype: IdDtype;
  /** Neighbours stored per image: min(manifest k, size − 1). */
  k: number;
  /** This dataset's search-score window (min(15, k)) and its scale. */
  score: { top: number; scale: number };
  /** Queries per scores file (query q: block floor(q / scores_block), row q % scores_block). */
  scores_block: number;
  skipped: SkippedFile[];
  /** Caveats for people, e.g. a single class (search scores need at least 2). */
  notes?: string[];
}

export interface PoolingInfo {
  id: string;
  label: string;
  description: string;
}

export interface LayerInfo {
  name: string;
  index: number;
  type: string;
  output_shape: number[];
  /** Vector length per pooling id. */
  dims: Record<string, number>;
  params_cumulative: number;
  depth: number;
}

export interface ModelInfo {
  id: string;
  name: string;
  params: number;
  layer_count: number;
  input_size: [number, number];
  weights: string;
  layers: LayerInfo[];
}

export interface FileTemplates {
  index: string;
  thumbnail: string;
  summary: string;
  scores: string;
  neighbors: string;
  umap: string;
  browser_features: string;
}

export interface BrowserOutput {
  layer: string;
  pooling: string;
  dim: number;
  output: string;
}

export interface BrowserSearch {
  model: string;
  model_url: string;
  model_bytes: number;
  /** sha256 over model.json and its shards: the browser's model cache key. */
  model_sha256: string;
  quantization: string;
  input_size: [number, number];
  preprocess: string;
  outputs: BrowserOutput[];
  default_layer: string;
  datasets: string[];
  /** The budget the features files were compressed to fit (model + one file), bytes. */
  features_budget_bytes?: number;
  /** How each features file is stored, and the recall that costs (absent: all float32, older bundles). */
  features?: BrowserFeatures[];
}

/** How a browser-features file is stored (docs/bundle.md "In-browser search files"). */
export type FeatureEncoding = 'float32' | 'float16' | 'uint8' | 'pca_uint8';

/** One browser-features file: its encoding (convnet_search/browser_features.py) and measured cost. */
export interface BrowserFeatures {
  dataset: string;
  layer: string;
  pooling: string;
  encoding: FeatureEncoding;
  dims: number; // stored coordinates per vector (dim, or principal axes for pca_uint8)
  bytes: number;
  /** Recall@recall_k of the page's search against float32 exact search, per metric (1 for float32). */
  recall: Record<string, number>;
  recall_k: number;
  recall_queries: number; // sampled dataset images used as queries (0: float32, exact by definition)
}

export interface Manifest {
  bundle_version: number;
  generator: string;
  weights: WeightsKind | string;
  weights_detail: string;
  k: number;
  poolings: PoolingInfo[];
  score: { top: number; scale: number };
  metrics: MetricInfo[];
  datasets: DatasetInfo[];
  models: ModelInfo[];
  files: FileTemplates;
  browser_search: BrowserSearch | null;
}

/** datasets/<dataset>/index.json */
export interface DatasetIndex {
  dataset: string;
  size: number;
  files: string[];
  labels: number[];
}

export type StatName = 'search_score' | 'precision_at_k' | 'map_at_k';

/** datasets/<dataset>/summary/<metric>.json: [pooling][model][layer] means, in manifest order. */
export type Summary = { dataset: string; metric: MetricId; poolings: string[] } & Record<StatName, number[][][]>;

/** One query's row of a neighbour file. */
export interface Neighbor {
  id: number;
  distance: number;
}

/** A whole <metric>.knn file as typed-array views (no copy). */
export interface KnnTable {
  n: number;
  k: number;
  distances: Float32Array;
  ids: Uint16Array | Uint32Array;
}
