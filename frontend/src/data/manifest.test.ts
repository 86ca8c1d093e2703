import { describe, expect, it } from 'vitest';
import Ajv2020 from 'ajv/dist/2020';
import schemaJson from '../../../docs/manifest.schema.json';
import { LIMITS, manifestSchemaProblem } from './manifest';
import { sameOriginUrl } from './origin';
import { schemaProblem } from './schema';
import { BundleError } from './errors';
import { DataProvider, validateManifest } from './provider';
import { validManifest } from './manifest.fixture';
import type { Manifest } from './types';

const URL_M = 'http://h/b/manifest.json';
type Json = Record<string, unknown>;
const clone = (): Json => JSON.parse(JSON.stringify(validManifest())) as Json;
const at = (o: Json, path: (string | number)[]): Json => path.reduce<Json>((x, k) => x[k as string] as Json, o);
const reject = (m: unknown) => {
  try {
    validateManifest(m, URL_M);
  } catch (e) {
    expect(e).toBeInstanceOf(BundleError);
    return (e as Error).message;
  }
  throw new Error('the manifest was accepted');
};

// Ajv, the reference implementation, as the oracle for the small run-time checker.
const ajv = new Ajv2020({ strict: true, allErrors: false });
const ajvValid = ajv.compile(schemaJson);

describe('manifest validation', () => {
  it('accepts a valid manifest (and Ajv agrees it is valid)', () => {
    expect(ajvValid(validManifest())).toBe(true);
    expect(validateManifest(validManifest(), URL_M).k).toBe(15);
    expect(validateManifest({ ...validManifest(), browser_search: null }, URL_M).browser_search).toBeNull();
  });

  it('k = 1e9 is refused with the manifest URL and the bound, before anything is drawn', () => {
    const m = clone();
    m.k = 1e9;
    at(m, ['datasets', 0]).k = 1e9;
    expect(ajvValid(m)).toBe(true); // the schema alone lets it through: the bound is ours
    const msg = reject(m);
    expect(msg).toMatch(/^http:\/\/h\/b\/manifest\.json: invalid manifest: k = 1000000000 neighbours per image/);
    expect(msg).toContain(`at most ${LIMITS.k}`);
  });

  it("a dataset's k must be at most N − 1 and the manifest's k; its score window fits in it", () => {
    const cases: [(m: Json) => void, RegExp][] = [
      [(m) => { m.k = 16; at(m, ['datasets', 0]).k = 16; }, /dataset "d": k = 16 but it has only 16 images \(k must be at most N − 1 = 15\)/],
      [(m) => { at(m, ['datasets', 0]).k = 1e9; }, /dataset "d": k = 1000000000 is more than the manifest's k = 15/],
      [(m) => { at(m, ['datasets', 0]).k = 3; }, /dataset "d": score\.top = 15 is more than its k = 3/],
      [(m) => { at(m, ['datasets', 0]).score = { top: 3, scale: 7 }; }, /score\.scale must be top\(top\+1\)\/2 = 6, not 7/],
    ];
    for (const [mutate, re] of cases) {
      const m = clone();
      mutate(m);
      expect(reject(m)).toMatch(re);
    }
    const small = clone(); // a 4-image folder: k and the window shrink to 3 (bundle v3)
    Object.assign(at(small, ['datasets', 0]), { size: 4, k: 3, score: { top: 3, scale: 6 } });
    expect(validateManifest(small, URL_M).datasets[0]!.k).toBe(3);
  });

  it('missing dataset fields are named (not "Cannot read properties of undefined")', () => {
    const m = clone();
    const d = at(m, ['datasets', 0]);
    delete d.size;
    delete d.classes;
    expect(reject(m)).toMatch(/manifest\.json: invalid manifest: datasets\[0\]: missing "classes", "size"/);
  });

  it('wrong types are named with the path, the expected and the actual type', () => {
    const cases: [(m: Json) => void, RegExp][] = [
      [(m) => { m.k = '15'; }, /k: must be integer, not string "15"/],
      [(m) => { m.datasets = 'ds/small'; }, /datasets: must be array, not string/],
      [(m) => { at(m, ['models', 0, 'layers', 0, 'dims']).avg = 2.5; }, /models\[0\]\.layers\[0\]\.dims\.avg: must be integer, not number 2\.5/],
      [(m) => { at(m, ['datasets', 0]).id_dtype = 'int8'; }, /datasets\[0\]\.id_dtype: must be one of "uint16", "uint32", not "int8"/],
      [(m) => { at(m, ['browser_search']).model_bytes = 'big'; }, /browser_search\.model_bytes: must be integer/],
      [(m) => { m.extra = 1; }, /the manifest: unknown field "extra"/],
      [(m) => { at(m, ['metrics', 1]).p = 2; }, /metrics\[1\]\.p: 2 is not allowed here/],
    ];
    for (const [mutate, re] of cases) {
      const m = clone();
      mutate(m);
      expect(reject(m)).toMatch(re);
    }
  });

  it('references must exist: model, layer, dataset, default layer', () => {
    const cases: [(m: Json) => void, RegExp][] = [
      [(m) => { at(m, ['browser_search']).model = 'nope'; }, /browser_search\.model "nope" is not one of the manifest's models/],
      [(m) => { at(m, ['browser_search', 'outputs', 0]).layer = 'zz'; }, /layer "zz" is not a layer of model "m1"/],
      [(m) => { at(m, ['browser_search']).default_layer = 'l1'; }, /default_layer "l1" is not one of its outputs/],
      [(m) => { at(m, ['browser_search']).datasets = ['d', 'other']; }, /browser_search\.datasets: "other" is not one of the manifest's datasets/],
      [(m) => { at(m, ['browser_search']).features = [{ dataset: 'd', layer: 'l2', pooling: 'avg', encoding: 'pca_uint8', dims: 3, bytes: 1, recall: {}, recall_k: 15, recall_queries: 0 }]; }, /features: l2\/avg stores 3 dims of a 2-dim output/],
      [(m) => { at(m, ['browser_search']).features = [{ dataset: 'd', layer: 'l1', pooling: 'avg', encoding: 'uint8', dims: 2, bytes: 1, recall: {}, recall_k: 15, recall_queries: 0 }]; }, /features: layer "l1" with pooling "avg" is not one of its outputs/],
      [(m) => { (m.models as Json[]).push(at(m, ['models', 0])); }, /model "m1" is listed twice/],
    ];
    for (const [mutate, re] of cases) {
      const m = clone();
      mutate(m);
      expect(reject(m)).toMatch(re);
    }
  });

  it('sizes the tab could not hold are refused: N, dimensions, input size, uint16 ids, label dtype, names page', () => {
    const cases: [(m: Json) => void, RegExp][] = [
      [(m) => { Object.assign(at(m, ['datasets', 0]), { size: 20_000_000, id_dtype: 'uint32' }); }, /size 20000000: more than this explorer accepts \(at most 10,000,000/],
      [(m) => { at(m, ['datasets', 0]).size = 70_000; }, /70000 images cannot be numbered with uint16 ids/],
      [(m) => { at(m, ['datasets', 0]).classes = Array.from({ length: 257 }, (_, i) => `c${i}`); }, /257 classes cannot be numbered with uint8 labels/],
      [(m) => { at(m, ['datasets', 0]).names_page = 100_000; }, /names_page 100000 is more than 65536/],
      [(m) => { at(m, ['models', 1, 'layers', 0, 'dims']).gem = 200_001; }, /layer "x": gem dimension 200001 is more than this explorer accepts/],
      [(m) => { delete at(m, ['models', 1, 'layers', 0, 'dims']).gem; }, /layer "x": no dimension for pooling "gem"/],
      [(m) => { at(m, ['browser_search', 'outputs', 0]).dim = 1e6; }, /layer "l2" has dimension 1000000/],
      [(m) => { at(m, ['browser_search']).input_size = [100000, 100000]; }, /input_size 100000×100000 is larger than 4096 px/],
    ];
    for (const [mutate, re] of cases) {
      const m = clone();
      mutate(m);
      expect(reject(m)).toMatch(re);
    }
  });

  it('file templates on another origin are refused', () => {
    for (const t of ['http://127.0.0.2:9/{dataset}.knn', '//evil.example/x/{dataset}.knn']) {
      const m = clone();
      at(m, ['files']).neighbors = t;
      expect(reject(m)).toMatch(/files\.neighbors: ".*" resolves to http:\/\/(127\.0\.0\.2:9|evil\.example)\/.*on another origin than this page \(http:\/\/h\)/);
    }
  });

  // ~3 s alone; the default 5 s timeout failed it on the shared 2-core machine in full runs.
  it('agrees with Ajv on every single-field mutation of a valid manifest', { timeout: 30_000 }, () => {
    // Every path in the fixture × replacements (deleted, null, string, negative, fraction, an
    // extra field): the small checker must accept exactly what Ajv accepts.
    const paths: (string | number)[][] = [];
    const walk = (v: unknown, p: (string | number)[]) => {
      if (p.length) paths.push(p);
      if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...p, i]));
      else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, [...p, k]);
    };
    walk(validManifest(), []);
    const replacements: unknown[] = [undefined, null, 'x', -1, 0.5, 16, true, [], {}, ['x'], 'minkowski', 2];
    let checked = 0;
    let invalid = 0;
    for (const p of paths) {
      for (const r of replacements) {
        const m = clone();
        const parent = at(m, p.slice(0, -1));
        const key = p[p.length - 1]!;
        if (r === undefined) {
          if (Array.isArray(parent)) parent.splice(key as number, 1);
          else delete parent[key as string];
        } else parent[key as string] = r;
        const ours = manifestSchemaProblem(m);
        const theirs = ajvValid(m);
        expect({ path: p.join('.'), replacement: r, valid: ours === null }).toEqual({ path: p.join('.'), replacement: r, valid: theirs });
        checked++;
        if (!theirs) invalid++;
      }
    }
    expect(checked).toBeGreaterThan(1000);
    expect(invalid).toBeGreaterThan(checked / 2);
  });

  it('a schema keyword the checker does not know is an error, never ignored', () => {
    expect(() => schemaProblem(1, { type: 'integer', multipleOf: 2 })).toThrow(/keyword "multipleOf" is not supported/);
    expect(schemaProblem({ a: [1, 2] }, { $ref: '#/$defs/x', $defs: { x: { type: 'object', properties: { a: { maxItems: 1 } } } } })).toBe('a: must have at most 1 item(s), has 2');
  });
});

describe('same-origin URLs', () => {
  it('resolves relative URLs and refuses other origins with both named', () => {
    expect(sameOriginUrl('tfjs/m/model.json', 'http://h/b/manifest.json', 'http://h')).toEqual({ href: 'http://h/b/tfjs/m/model.json' });
    const r = sameOriginUrl('http://127.0.0.2:8001/model.json', 'http://h/b/', 'http://h');
    expect(r).toEqual({ problem: expect.stringMatching(/resolves to http:\/\/127\.0\.0\.2:8001\/model\.json, on another origin than this page \(http:\/\/h\)/) });
    expect('problem' in sameOriginUrl('//h:81/x', 'http://h/', 'http://h')).toBe(true);
  });

  it('a cross-origin model_url opens but is refused when resolved, naming the manifest', async () => {
    const m: Manifest = { ...validManifest(), browser_search: { ...validManifest().browser_search!, model_url: 'http://127.0.0.2:8001/model.json' } };
    const calls: string[] = [];
    const p = await DataProvider.open(URL_M, async (u) => (calls.push(u), new Response(JSON.stringify(m))));
    expect(() => p.resolve(m.browser_search!.model_url)).toThrow(/^http:\/\/h\/b\/manifest\.json: "http:\/\/127\.0\.0\.2:8001\/model\.json" resolves to .* another origin/);
    expect(calls).toEqual([URL_M]);
  });

  it('a manifest on another origin than the page is not even fetched', async () => {
    const calls: string[] = [];
    const open = DataProvider.open('http://127.0.0.2:8001/manifest.json', async (u) => (calls.push(u), new Response('{}')), 'http://h/index.html');
    await expect(open).rejects.toThrow(/refusing to load the manifest: .*another origin than this page \(http:\/\/h\)/);
    expect(calls).toEqual([]);
  });
});
