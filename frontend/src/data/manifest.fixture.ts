// Test fixture: a small manifest that is valid against docs/manifest.schema.json and the bounds,
// shaped like what convnet_search/bundle.py writes (two models, one with browser search).
import type { Manifest } from './types';

export const N = 16;
export const K = 15;

export function validManifest(): Manifest {
  return {
    bundle_version: 3, generator: 'convnet-search test', weights: 'random', weights_detail: 'random init (seed 0)', k: K, pooling: 'avg',
    score: { top: 15, scale: 120 },
    metrics: [
      { id: 'cosine', label: 'Cosine', p: null, description: 'angle' },
      { id: 'minkowski', label: 'Minkowski p=3', p: 3, description: 'p-norm' },
    ],
    datasets: [{ id: 'd', name: 'D', description: 'tiny', source: 'test', classes: ['a', 'b'], size: N, id_dtype: 'uint16', k: K, score: { top: 15, scale: 120 }, skipped: [{ file: 'x.txt', reason: 'not an image' }] }],
    models: [
      { id: 'm1', name: 'M1', params: 1, layer_count: 3, input_size: [8, 8], weights: 'random', layers: [
        { name: 'l1', index: 1, type: 'Conv2D', output_shape: [4, 4, 2], dim: 2, params_cumulative: 1, depth: 0.5 },
        { name: 'l2', index: 2, type: 'ReLU', output_shape: [4, 4, 2], dim: 2, params_cumulative: 1, depth: 1 },
      ] },
      { id: 'm2', name: 'M2', params: 1, layer_count: 2, input_size: [8, 8], weights: 'random', layers: [
        { name: 'x', index: 1, type: 'Conv2D', output_shape: [4, 4, 2], dim: 2, params_cumulative: 1, depth: 1 },
      ] },
    ],
    files: {
      index: 'datasets/{dataset}/index.json', thumbnail: 'datasets/{dataset}/thumbs/{id}.jpg', summary: 'datasets/{dataset}/summary/{metric}.json',
      scores: 'datasets/{dataset}/scores/{metric}.u8', neighbors: 'datasets/{dataset}/{model}/{layer}/{metric}.knn',
      umap: 'datasets/{dataset}/{model}/{layer}/umap.f32', browser_features: 'datasets/{dataset}/browser/{layer}.f32',
    },
    browser_search: {
      model: 'm1', model_url: 'tfjs/m1/model.json', model_bytes: 1234, model_sha256: 'ab'.repeat(32), quantization: 'uint8',
      input_size: [8, 8], preprocess: 'in graph', outputs: [{ layer: 'l2', dim: 2, output: 'Identity:0' }], default_layer: 'l2', datasets: ['d'],
    },
  };
}
