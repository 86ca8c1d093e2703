import { describe, expect, test } from 'vitest';
import { modelCacheKey } from './protocol';

const sha = (c: string) => c.repeat(64);
const manifest = (bs: Record<string, unknown> | null = {}) => ({
  browser_search: bs && ({
    model: 'mobilenet', model_url: 'tfjs/mobilenet/model.json', model_bytes: 3249647, model_sha256: sha('a'),
    quantization: 'uint8', input_size: [224, 224] as [number, number], preprocess: '', default_layer: 'a', datasets: ['d'],
    outputs: [{ layer: 'a', pooling: 'avg', dim: 4, output: 'Identity:0' }], ...bs,
  }),
});

describe('modelCacheKey', () => {
  test('named after the model and its content hash', () => {
    expect(modelCacheKey(manifest())).toBe('convnet-search/mobilenet-aaaaaaaaaaaaaaaa');
  });

  test('the content hash alone decides: new bytes, new key; same bytes, same key', () => {
    expect(modelCacheKey(manifest({ model_sha256: sha('b') }))).not.toBe(modelCacheKey(manifest()));
    expect(modelCacheKey(manifest({ model_bytes: 1, outputs: [] }))).toBe(modelCacheKey(manifest()));
  });

  test('refuses a bundle without browser search or without a sha256', () => {
    expect(() => modelCacheKey(manifest(null))).toThrow(/no browser_search/);
    expect(() => modelCacheKey(manifest({ model_sha256: 'xyz' }))).toThrow(/model_sha256 is not a sha256: "xyz"/);
  });
});
