// Private search on compressed browser features, in headless Chromium. The engine's tiny bundle
// (harness.buildTinyBundle) is copied and its browser features re-encoded by the engine's encoder
// (bench/scaled_features.py → convnet_search/browser_features.py) under a budget of model + 41 KB,
// so that its 41 images are stored as float16 (conv_pw_4, 256-d), uint8 (conv_dw_9, 512-d) and
// a PCA encoding (conv_pw_13, 1,024-d, the default layer: pca_uint8 or pca_u8u4, whichever has the
// better measured recall); the float32 files are removed. Uploads of
// dataset images must still find themselves first in every layer, and, with nothing warmed but what
// the panel itself loads when it says ready, make no network request at all.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO, RESULTS, buildTinyBundle, ensureSiteBuilt, launchBrowser, startServer, waitQuiet, watchPage, readIndex } from './harness.mjs';

const LIVE = '#live-search';
const FEATURES_BUDGET = 41_000; // bytes on top of the model: picks a different encoding per layer (above)
const N_UPLOADS = 8;
const PY = path.join(REPO, '.venv', 'bin', 'python');

let dir, server, browser, manifest, index, imagesDir;
const sha = (file) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

function buildCompressedBundle() {
  const tiny = buildTinyBundle();
  imagesDir = tiny.imagesDir;
  const out = path.join(RESULTS, 'live-compressed-bundle');
  fs.rmSync(out, { recursive: true, force: true });
  fs.cpSync(tiny.dir, out, { recursive: true });
  const m = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
  const ds = m.browser_search.datasets[0];
  fs.rmSync(path.join(out, 'datasets', ds, 'browser'), { recursive: true, force: true });
  const budgetMb = (m.browser_search.model_bytes + FEATURES_BUDGET) / 1e6;
  const r = spawnSync(PY, [path.join(REPO, 'bench', 'scaled_features.py'), tiny.dir, out, '--dataset-in', ds, '--dataset-out', ds,
    '--n', String(m.datasets.find((d) => d.id === ds).size), '--budget-mb', String(budgetMb),
    // avg only (the page's default pooling): grid2's 4,096-d PCA is minutes on a loaded machine
    '--outputs', ...m.browser_search.outputs.filter((o) => o.pooling === 'avg').map((o) => `${o.layer}/avg`)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scaled_features.py failed (exit ${r.status}):\n${r.stderr.slice(-3000)}`);
  return out;
}

before(async () => {
  dir = buildCompressedBundle();
  ensureSiteBuilt();
  manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  index = readIndex(dir, manifest.browser_search.datasets[0]);
  server = await startServer({ bundleDir: dir });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

const entry = (layer, pooling = 'avg') => manifest.browser_search.features.find((f) => f.layer === layer && f.pooling === pooling);

describe('private search on compressed features', () => {
  test('the budget picked float16, uint8 and a PCA encoding for the three layers, each with its measured recall', () => {
    const encodings = manifest.browser_search.outputs.filter((o) => o.pooling === 'avg').map((o) => entry(o.layer).encoding);
    assert.deepEqual(encodings.slice(0, 2), ['float16', 'uint8']);
    assert.ok(['pca_uint8', 'pca_u8u4'].includes(encodings[2]), encodings[2]);
    for (const f of manifest.browser_search.features) {
      assert.ok(f.bytes <= FEATURES_BUDGET || f.encoding === 'pca_uint8', `${f.layer}/${f.pooling}: ${f.bytes} bytes`);
      assert.deepEqual(Object.keys(f.recall).sort(), ['cosine', 'euclidean', 'minkowski', 'sqeuclidean']);
      assert.equal(f.recall_queries, f.encoding === 'float32' ? 0 : index.size, 'every image is a query when N ≤ 1,000');
    }
  });

  test(`${N_UPLOADS} uploads find themselves first on PCA-encoded features with zero requests; float16 and uint8 layers too`, async () => {
    const requests = [];
    browser.context.on('request', (r) => { if (!/^(blob|data):/.test(r.url())) requests.push(r.url()); });
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    await page.goto(`${server.url}?metric=cosine`);
    await page.waitForSelector(`${LIVE} .live-drop`);
    await page.hover(LIVE);
    await page.waitForSelector(`${LIVE}[data-state=ready], ${LIVE}[data-state=failed]`, { timeout: 120_000 });
    assert.equal(await page.getAttribute(LIVE, 'data-state'), 'ready', await page.textContent(`${LIVE} .live-error`));
    const def = manifest.browser_search.default_layer;
    assert.ok(server.log.some((e) => e.path.endsWith(`/browser/${def}/avg.${entry(def).encoding}`)), `the panel fetched the ${entry(def).encoding} file when it got ready`);
    await waitQuiet(server);

    const files = index.files.map((f) => path.join(imagesDir, f));
    const hashes = files.map(sha);
    const picks = Array.from({ length: N_UPLOADS }, (_, i) => Math.floor((i * files.length) / N_UPLOADS));
    const reqBefore = requests.length;
    const srvBefore = server.log.length;
    const wrong = [];
    const top1 = async (n) => {
      await page.waitForFunction(([sel, n]) => document.querySelector(sel).dataset.searches === String(n) && document.querySelector(sel).dataset.state === 'ready', [LIVE, n], { timeout: 60_000 });
      return Number((await page.getAttribute(LIVE, 'data-top')).split(',')[0].split(':')[0]);
    };
    for (const [n, id] of picks.entries()) {
      await page.setInputFiles(`${LIVE} #live-file`, files[id]);
      const top = await top1(n + 1);
      if (hashes[top] !== hashes[id]) wrong.push(`${index.files[id]} (id ${id}) → top-1 id ${top}`);
    }
    await new Promise((r) => setTimeout(r, 1000)); // anything fetched late would show up by now
    assert.deepEqual(wrong, [], `uploads not found first on ${def} (${entry(def).encoding}, ${entry(def).dims} axes)`);
    assert.deepEqual(requests.slice(reqBefore), [], 'the browser made no request while searching');
    assert.deepEqual(server.log.slice(srvBefore).map((e) => e.path), [], 'the server saw no request while searching');

    // The other layers re-search the last upload (their features are fetched on the switch).
    const last = picks.at(-1);
    let searches = N_UPLOADS;
    for (const o of manifest.browser_search.outputs.filter((x) => x.pooling === 'avg' && x.layer !== def)) {
      await page.selectOption(`${LIVE} #live-layer`, o.layer);
      const top = await top1(++searches);
      assert.equal(hashes[top], hashes[last], `${o.layer} (${entry(o.layer).encoding}): top-1 is id ${top}, not the upload (id ${last})`);
    }
    assert.deepEqual(problems, [], 'no page errors');
    await page.close();
  });
});
