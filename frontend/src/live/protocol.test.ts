import { describe, expect, test } from 'vitest';
import { fnv1a64, modelCacheKey } from './protocol';

const manifest = (over: Record<string, unknown> = {}, bs: Record<string, unknown> = {}) => ({
  generator: 'convnet-search 0.1.0',
  weights_detail: 'random init (seed 0)',
  models: [{ id: 'mobilenet', params: 3228864 }],
  browser_search: { model: 'mobilenet', model_bytes: 3249647, quantization: 'uint8', outputs: [{ layer: 'a', dim: 4, output: 'Identity:0' }], ...bs },
  ...over,
});

describe('fnv1a64', () => {
  test('known vectors', () => {
    expect(fnv1a64('')).toBe('cbf29ce484222325');
    expect(fnv1a64('a')).toBe('af63dc4c8601ec8c');
  });
});

describe('modelCacheKey', () => {
  test('stable for the same bundle, named after the model', () => {
    expect(modelCacheKey(manifest())).toBe(modelCacheKey(manifest()));
    expect(modelCacheKey(manifest())).toMatch(/^convnet-search\/mobilenet-[0-9a-f]{16}$/);
  });

  test('changes when the weights, the outputs, the size or the exporter hash change', () => {
    const base = modelCacheKey(manifest());
    expect(modelCacheKey(manifest({ weights_detail: 'random init (seed 1)' }))).not.toBe(base);
    expect(modelCacheKey(manifest({}, { outputs: [{ layer: 'a', dim: 4, output: 'Identity_1:0' }] }))).not.toBe(base);
    expect(modelCacheKey(manifest({}, { model_bytes: 3249648 }))).not.toBe(base);
    const withHash = modelCacheKey(manifest({}, { model_sha256: 'ab'.repeat(32) }));
    expect(withHash).not.toBe(base);
    // With the exporter's content hash, only that hash decides.
    expect(modelCacheKey(manifest({ weights_detail: 'x' }, { model_sha256: 'ab'.repeat(32) }))).toBe(withHash);
  });

  test('refuses a bundle without browser search', () => {
    expect(() => modelCacheKey(manifest({ browser_search: null }))).toThrow(/no browser_search/);
  });
});
