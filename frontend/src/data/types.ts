// Types of the static bundle, exactly as docs/bundle.md (format version 6) describes it.
// The explorer reads nothing else.

export type MetricId = string;
export type WeightsKind = 'imagenet' | 'random' | 'file' | 'mixed';
export type IdDtype = 'uint16' | 'uint32';
export type LabelDtype = 'uint8' | 'uint16' | 'uint32';
/** One class index per image (files.labels), as stored. */
export type Labels = Uint8Array | Uint16Array | Uint32Array;

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
  /** files.labels: one class index per image, the narrowest unsigned type holding classes − 1. */
  label_dtype: LabelDtype;
  /** File names per files.names page: id's name is entry id % names_page of page ⌊id / names_page⌋. */
  names_page: number;
  /** Neighbours stored per image: min(manifest k, size − 1). */
  k: number;
  /** This dataset's search-score window (min(15, k)) and its scale. */
  score: { top: number; scale: number };
  /** Queries per scores file (query q: block floor(q / scores_block), row q % scores_block). */
  scores_block: number;
  skipped: SkippedFile[];
  /** Caveats for people, e.g. a single class (search scores need at least 2). */
  notes?: string[];
  /** Model ids with a channel atlas for this dataset (all their layers). */
  atlas?: string[];
  /** Best-scoring configuration among the models with trained weights: the first screen. null: all random. */
  best?: BestConfig | null;
  /** How labels were read: class folders, none (an unlabelled collection) or a labels file. */
  labels: 'folders' | 'none' | 'file';
  /** What `classes` / files.labels group images by: the class folders, or each image's top folder. */
  groups: 'class folders' | 'top folders';
  /** Label fields: scores exist per field. Empty: no labels (label-free guidance instead). */
  fields: FieldInfo[];
  /** Label fields listed in files.curate_labels. */
  curate_fields?: string[];
  /** `precompute --judgements`: the offline ranking (files.judgements) and what it rests on. */
  judgements?: OfflineJudgementsInfo | null;
}

export interface BestConfig {
  model: string;
  layer: string;
  pooling: string;
  metric: string;
  search_score: number;
}

/** One label field (docs/bundle.md "Label fields"). */
export interface FieldInfo {
  id: string;
  name: string;
  values: string[];
  /** files.field_labels: value index + 1 per image (0: no value). */
  dtype: LabelDtype;
  labelled: number;
  /** Queries with a value (what the field's scores average over) and without one (skipped). */
  queries: number;
  skipped: number;
}

export interface OfflineJudgementsInfo {
  source: string;
  configurations: number;
  judgements: number;
  judged_queries: number;
  scored_queries: number;
}

/** files.judgements: every configuration ranked offline (stages/judgements.py, docs/bundle.md). */
export interface OfflineJudgements extends OfflineJudgementsInfo {
  format: 1;
  dataset: string;
  leader_share: number;
  score_scale: number;
  /** The leading configurations in full, best first; config = model|layer|pooling|metric. */
  top: { config: string; score: number; n_judged: number; lo: number; hi: number }[];
  /** Configuration indexes (manifest order), best first. */
  order: number[];
  /** Per configuration (manifest order), score × score_scale. */
  scores: number[];
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
  /** Feature visualizations of this layer (featviz/{model}/{layer}.jpg): channels in tile order. */
  featviz?: { channels: number[]; tile: number };
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
  /** One class index per image, little-endian datasets[].label_dtype, no header. */
  labels: string;
  /** Page {page} of file names: a JSON list of names_page strings (the last page shorter). */
  names: string;
  /** Sprite sheet {sheet} of thumbnail level {level} (see ThumbnailsInfo). */
  thumb_sheet: string;
  /** The pack_level's cells as single JPEGs behind an offsets table (docs/bundle.md "Thumbnails"). */
  thumb_pack: string;
  /** Transitional one-JPEG-per-image template, present only in bundles of ≤ 5,000 images per
   * dataset (undefined at run time above that: typed as a string so that not-yet-migrated code
   * compiles; it must test for it). New code draws from the sheets (DataProvider.thumbnail,
   * views/thumb.ts). */
  thumbnail: string;
  /** One label field's values per image ({field}): value index + 1, 0 = no value. */
  field_labels: string;
  /** Per {field} and {metric}: means per configuration (Summary). */
  summary: string;
  /** Per {field}, {metric} and {block}: per-query score numerators (255: no value). */
  scores: string;
  /** Per {metric}: label-free guidance per configuration (Guidance). */
  guidance: string;
  neighbors: string;
  umap: string;
  browser_features: string;
  /** Present iff the bundle has channel atlases / feature visualizations (docs/bundle.md). */
  atlas_index?: string;
  atlas_rows?: string;
  /** Atlas format 1 (C×T ids in channel order): not read; such a bundle shows "no atlas". */
  atlas_top?: string;
  atlas_maps?: string;
  featviz?: string;
  /** Curation lists (docs/bundle.md "Curation"), optional: one configuration's duplicate groups and outliers. */
  curate?: string;
  /** Curation lists: a dataset's likely label mistakes per label field. */
  curate_labels?: string;
  /** Present iff some dataset has an offline judgements ranking (precompute --judgements). */
  judgements?: string;
}

/** Thumbnails in sprite sheets: sheet s of a level holds ids s·grid² … (s+1)·grid² − 1, row-major,
 * each letterboxed into a cell × cell square on `background`. */
export interface ThumbnailsInfo {
  grid: number;
  background: string;
  levels: { id: string; cell: number }[];
  /** The level whose sheets also exist as packs of single JPEGs (files.thumb_pack). */
  pack_level: string;
}

export interface BrowserOutput {
  layer: string;
  pooling: string;
  dim: number;
  output: string;
}

export interface SpatialOutput {
  layer: string;
  output: string;
  shape: [number, number, number];
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
  /** Each layer's raw [h, w, C] map as a graph output (absent in older bundles). */
  spatial_outputs?: SpatialOutput[];
  default_layer: string;
  datasets: string[];
  /** The budget the features files were compressed to fit (model + one file), bytes. */
  features_budget_bytes?: number;
  /** How each features file is stored, and the recall that costs (absent: all float32, older bundles). */
  features?: BrowserFeatures[];
}

/** How a browser-features file is stored (docs/bundle.md "In-browser search files"). */
export type FeatureEncoding = 'float32' | 'float16' | 'uint8' | 'pca_uint8' | 'pca_u8u4';

/** One browser-features file: its encoding (convnet_search/browser_features.py) and measured cost. */
export interface BrowserFeatures {
  dataset: string;
  layer: string;
  pooling: string;
  encoding: FeatureEncoding;
  dims: number; // stored coordinates per vector (dim, or principal axes for pca_uint8 / pca_u8u4)
  bytes: number;
  /** Recall@recall_k of the page's search against float32 exact search, per metric (1 for float32). */
  recall: Record<string, number>;
  recall_k: number;
  recall_queries: number; // sampled dataset images used as queries (0: float32, exact by definition)
  recall_n?: number; // the dataset's size when recall was measured (carried over while it grew ≤ 5 %)
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
  thumbnails: ThumbnailsInfo;
  browser_search: BrowserSearch | null;
  /** A bundle published before the run's last model: the models still being computed. */
  pending_models?: { id: string; name: string }[];
}

/** A dataset's labels (all of them: files.labels) and its file names (fetched a page at a time). */
export interface DatasetIndex {
  dataset: string;
  size: number;
  labels: Labels;
  names: FileNames;
}

/** File names by image id, a names page at a time (data/names.ts). */
export interface FileNames {
  /** The name if its page is loaded, else undefined (synchronous: no fetch). */
  get(id: number): string | undefined;
  /** The name, fetching its page once (cached) if needed. */
  name(id: number): Promise<string>;
}

export type StatName = 'search_score' | 'precision_at_k' | 'map_at_k';

/** datasets/<dataset>/summary/<field>/<metric>.json: [pooling][model][layer] means over the
 * `queries` queries with a value in the field (`skipped` had none), in manifest order. */
export type Summary = { dataset: string; field?: string; metric: MetricId; poolings: string[]; queries?: number; skipped?: number } & Record<StatName, number[][][]>;

/** datasets/<dataset>/guidance/<metric>.json: per [pooling][model][layer], hubness (skewness of
 * the k-occurrence distribution: lower is better) and agreement (mean overlap@k with every other
 * configuration); null where undefined (a single configuration). */
export interface Guidance {
  dataset: string;
  metric: MetricId;
  k: number;
  hubness: (number | null)[][][];
  agreement: (number | null)[][][];
}

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
