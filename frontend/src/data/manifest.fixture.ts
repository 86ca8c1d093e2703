// Test fixture: a small manifest that is valid against docs/manifest.schema.json and the bounds,
// shaped like what convnet_search/bundle.py writes (two models, one with browser search).
import type { Manifest } from './types';

export const N = 16;
export const K = 15;

export function validManifest(): Manifest {
  return {
    bundle_version: 6, generator: 'convnet-search test', weights: 'random', weights_detail: 'random init (seed 0)', k: K,
    poolings: [{ id: 'avg', label: 'Average', description: 'mean' }, { id: 'gem', label: 'GeM (p=3)', description: 'generalized mean' }],
    score: { top: 15, scale: 120 },
    metrics: [
      { id: 'cosine', label: 'Cosine', p: null, description: 'angle' },
      { id: 'minkowski', label: 'Minkowski p=3', p: 3, description: 'p-norm' },
    ],
    datasets: [{ id: 'd', name: 'D', description: 'tiny', source: 'test', classes: ['a', 'b'], size: N, id_dtype: 'uint16', label_dtype: 'uint8', names_page: 32, k: K, score: { top: 15, scale: 120 }, scores_block: 10, skipped: [{ file: 'x.txt', reason: 'not an image' }], labels: 'folders', groups: 'class folders', fields: [{ id: 'class', name: 'class', values: ['a', 'b'], dtype: 'uint8', labelled: N, queries: N, skipped: 0 }] }],
    models: [
      { id: 'm1', name: 'M1', params: 1, layer_count: 3, input_size: [8, 8], weights: 'random', layers: [
        { name: 'l1', index: 1, type: 'Conv2D', output_shape: [4, 4, 2], dims: { avg: 2, gem: 2 }, params_cumulative: 1, depth: 0.5 },
        { name: 'l2', index: 2, type: 'ReLU', output_shape: [4, 4, 2], dims: { avg: 2, gem: 2 }, params_cumulative: 1, depth: 1 },
      ] },
      { id: 'm2', name: 'M2', params: 1, layer_count: 2, input_size: [8, 8], weights: 'random', layers: [
        { name: 'x', index: 1, type: 'Conv2D', output_shape: [4, 4, 2], dims: { avg: 2, gem: 2 }, params_cumulative: 1, depth: 1 },
      ] },
    ],
    files: {
      labels: 'datasets/{dataset}/labels.bin', names: 'datasets/{dataset}/names/{page}.json', thumb_sheet: 'datasets/{dataset}/thumbs/{level}/{sheet}.jpg', thumb_pack: 'datasets/{dataset}/thumbs/{level}/{sheet}.jpgs', thumbnail: 'datasets/{dataset}/thumbs/{id}.jpg', summary: 'datasets/{dataset}/summary/{field}/{metric}.json', field_labels: 'datasets/{dataset}/fields/{field}.bin', guidance: 'datasets/{dataset}/guidance/{metric}.json',
      scores: 'datasets/{dataset}/scores/{field}/{metric}/{block}.u8', neighbors: 'datasets/{dataset}/{model}/{layer}/{pooling}/{metric}.knn',
      umap: 'datasets/{dataset}/{model}/{layer}/{pooling}/umap.f32', browser_features: 'datasets/{dataset}/browser/{layer}/{pooling}.{encoding}',
    },
    thumbnails: { grid: 16, background: '#eeeeee', levels: [{ id: 'small', cell: 32 }, { id: 'large', cell: 96 }], pack_level: 'large' },
    browser_search: {
      model: 'm1', model_url: 'tfjs/m1/model.json', model_bytes: 1234, model_sha256: 'ab'.repeat(32), quantization: 'uint8',
      input_size: [8, 8], preprocess: 'in graph', outputs: [{ layer: 'l2', pooling: 'avg', dim: 2, output: 'Identity:0' }, { layer: 'l2', pooling: 'gem', dim: 2, output: 'Identity_1:0' }], default_layer: 'l2', datasets: ['d'],
      features_budget_bytes: 32_000_000,
      features: [{ dataset: 'd', layer: 'l2', pooling: 'avg', encoding: 'uint8', dims: 2, bytes: 160, recall: { cosine: 0.98, minkowski: 0.97 }, recall_k: 15, recall_queries: 16 }],
    },
  };
}
