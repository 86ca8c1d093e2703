// Private search with REAL ImageNet weights on REAL photos, in headless Chromium.
//
// Random weights hid a broken export (uint8 per tensor: self top-1 0/40, neighbours at chance):
// their batch-norm statistics are trivial. This test builds a bundle of ../shared/real/tinyimagenet20
// (20 ImageNet classes × 50 photos, 64 px) with MobileNet alpha 0.25 and its real ImageNet weights
// (the engine CLI, KERAS_HOME=../shared/real/weights/keras_home, no network), serves it, uploads
// 10 of its photos through the panel's file input and checks that each finds itself first and that
// its top 15 is mostly its own class (Python's P@15 for this configuration is ≈ 0.55; chance 0.05).
// The photos are evaluation data: read in place, bundle and work folder in os.tmpdir(), never in
// the repo. Skipped, saying why, where ../shared/real (or $CONVNET_SEARCH_REAL) is absent.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO, RESULTS, ensureSiteBuilt, launchBrowser, startServer, waitQuiet, watchPage, readIndex } from './harness.mjs';

const REAL = process.env.CONVNET_SEARCH_REAL || path.join(REPO, '..', 'shared', 'real');
const IMAGES = path.join(REAL, 'tinyimagenet20');
const KERAS_HOME = path.join(REAL, 'weights', 'keras_home');
const WEIGHTS_FILE = path.join(KERAS_HOME, 'models', 'mobilenet_2_5_224_tf_no_top.h5');
const MODEL = 'mobilenet_025';
const LAYERS = ['conv_pw_6_relu', 'conv_pw_13_relu'];
const LAST = 'conv_pw_13_relu';
const N_UPLOADS = 10;
const TOP = 15;
const MIN_SAME_CLASS = 0.4;
const LIVE = '#live-search';
const PY = path.join(REPO, '.venv', 'bin', 'python');
const missing = [IMAGES, WEIGHTS_FILE].filter((p) => !fs.existsSync(p));
const SKIP = missing.length
  ? `real ImageNet weights / photos not found (${missing.join(', ')}): set CONVNET_SEARCH_REAL to the folder holding weights/ and tinyimagenet20/`
  : false;

const CONFIG = `# live-real.test.mjs: MobileNet alpha 0.25 with real ImageNet weights as the browser model
models = ["${MODEL}"]
metrics = ["cosine"]
k = ${TOP}
weights = "imagenet"
seed = 0
batch_size = 32
browser_search = true
browser_model = "${MODEL}"
`;

function listFiles(dir) {
  return fs.readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((e) => (e.isDirectory() ? listFiles(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

/** Cache key: engine sources, this test's config and the photo folder (names and sizes). */
function bundleKey() {
  const h = createHash('sha256');
  for (const f of listFiles(path.join(REPO, 'convnet_search')).filter((f) => f.endsWith('.py'))) {
    h.update(path.relative(REPO, f));
    h.update(fs.readFileSync(f));
  }
  h.update(CONFIG + LAYERS.join(','));
  for (const f of listFiles(IMAGES)) h.update(`${path.relative(IMAGES, f)}:${fs.statSync(f).size}\n`);
  return h.digest('hex').slice(0, 16);
}

/** Builds (or reuses) the real-weights bundle in os.tmpdir(); E2E_FRESH=1 forces a rebuild. */
function buildRealBundle() {
  const dir = path.join(os.tmpdir(), `cs-e2e-real-${bundleKey()}`);
  if (process.env.E2E_FRESH !== '1' && fs.existsSync(path.join(dir, 'manifest.json'))) return dir;
  for (const old of fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('cs-e2e-real-'))) fs.rmSync(path.join(os.tmpdir(), old), { recursive: true, force: true });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-e2e-real-work-'));
  const config = path.join(work, 'live-real.toml');
  fs.writeFileSync(config, CONFIG);
  const partial = `${dir}.partial`;
  fs.rmSync(partial, { recursive: true, force: true });
  const t0 = Date.now();
  // This checkout's engine (the key hashes its sources), not the venv console script's checkout.
  const r = spawnSync(PY, ['-m', 'convnet_search.cli', 'precompute', '--config', config, '--dataset', IMAGES, '--models', MODEL, '--weights', 'imagenet',
    '--layers', ...LAYERS, '--out', partial, '--work', path.join(work, 'cache')], {
    encoding: 'utf8',
    env: { ...process.env, KERAS_HOME, PYTHONPATH: REPO, TF_CPP_MIN_LOG_LEVEL: '3' },
    maxBuffer: 64 * 1024 * 1024,
  });
  fs.rmSync(work, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`convnet-search precompute failed (exit ${r.status}):\n${(r.stderr || '').slice(-4000)}\n${(r.stdout || '').slice(-2000)}`);
  fs.renameSync(partial, dir);
  process.stderr.write(`# built the real-weights bundle in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${dir}\n`);
  return dir;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

describe('private search with real ImageNet weights (MobileNet alpha 0.25, tinyimagenet20)', { skip: SKIP }, () => {
  let dir, server, browser, manifest, index;

  before(async () => {
    dir = buildRealBundle();
    ensureSiteBuilt();
    manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    const ds = manifest.datasets[0];
    index = readIndex(dir, ds.id);
    server = await startServer({ bundleDir: dir });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test(`the bundle uses the real weights and the default quantization, with ${LAST} in the browser model`, () => {
    const bs = manifest.browser_search;
    assert.ok(bs, 'browser search in the bundle');
    assert.equal(bs.model, MODEL);
    assert.equal(manifest.models.find((m) => m.id === MODEL).weights, 'imagenet');
    assert.equal(bs.quantization, 'float16');
    assert.ok(bs.outputs.some((o) => o.layer === LAST), `outputs: ${bs.outputs.map((o) => o.layer)}`);
    process.stderr.write(`# real-weights browser model: ${MODEL}, ${bs.quantization}, ${bs.model_bytes.toLocaleString('en')} bytes\n`);
  });

  test(`${N_UPLOADS} uploaded photos each find themselves first; mean same-class share of the top ${TOP} ≥ ${MIN_SAME_CLASS}`, async () => {
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    await page.goto(server.url + '?metric=cosine');
    await page.waitForSelector(`${LIVE} .live-drop`);
    await page.hover(LIVE);
    await page.waitForSelector(`${LIVE}[data-state=ready], ${LIVE}[data-state=failed]`, { timeout: 120_000 });
    assert.equal(await page.getAttribute(LIVE, 'data-state'), 'ready', `live search failed: ${await page.textContent(`${LIVE} .live-error`)}`);
    await page.selectOption(`${LIVE} #live-layer`, LAST);
    await waitQuiet(server);
    const srvBefore = server.log.length;

    // One photo from each of 10 classes, spread over the folder.
    const n = index.files.length;
    const picks = Array.from({ length: N_UPLOADS }, (_, i) => Math.floor(((i + 0.5) * n) / N_UPLOADS));
    const rows = [];
    for (const [j, id] of picks.entries()) {
      await page.setInputFiles(`${LIVE} #live-file`, path.join(IMAGES, index.files[id]));
      await page.waitForFunction(([sel, k]) => {
        const d = document.querySelector(sel).dataset;
        return d.searches === String(k) && d.state === 'ready';
      }, [LIVE, j + 1], { timeout: 60_000 });
      const d = await page.evaluate((sel) => ({ ...document.querySelector(sel).dataset }), LIVE);
      const hits = d.top.split(',').map((s) => s.split(':').map(Number));
      const others = hits.filter(([h]) => h !== id).slice(0, TOP);
      const same = others.filter(([h]) => index.labels[h] === index.labels[id]).length;
      rows.push({ file: index.files[id], top: hits[0][0], topDist: hits[0][1], sameShare: same / others.length, latencyMs: Number(d.latencyMs), embedMs: Number(d.embedMs) });
    }
    const notSelf = rows.filter((r, i) => r.top !== picks[i]).map((r) => `${r.file}: top-1 is ${index.files[r.top]} at ${r.topDist}`);
    const share = rows.reduce((s, r) => s + r.sameShare, 0) / rows.length;
    const lat = rows.map((r) => r.latencyMs);
    fs.mkdirSync(RESULTS, { recursive: true });
    fs.writeFileSync(path.join(RESULTS, 'live-real-uploads.json'), JSON.stringify({ model_bytes: manifest.browser_search.model_bytes, rows }, null, 1));
    process.stderr.write(`# real weights: self top-1 ${rows.length - notSelf.length}/${rows.length}, mean same-class share of top ${TOP} ${share.toFixed(3)}, ` +
      `upload → results median ${median(lat).toFixed(1)} ms (max ${Math.max(...lat).toFixed(1)}), embed median ${median(rows.map((r) => r.embedMs)).toFixed(1)} ms\n`);
    assert.deepEqual(notSelf, [], 'every upload finds itself first');
    assert.ok(share >= MIN_SAME_CLASS, `mean same-class share of the top ${TOP} is ${share.toFixed(3)} (< ${MIN_SAME_CLASS}): the browser model does not reproduce the ImageNet features`);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(server.log.slice(srvBefore).map((e) => e.path), [], 'no request from the first upload on (results shown from memory)');
    assert.deepEqual(problems, []);
    await page.close();
  });
});
