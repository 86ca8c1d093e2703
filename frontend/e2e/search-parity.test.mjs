// One new photo, three ways in, one answer: the Python API (`convnet_search.open_run(...).search`),
// the command line (`convnet-search search --json`) and the browser's private search return the
// same top 15 for the browser model (ids and order; distances within 1e-4).
//
// Real data: MobileNet alpha 0.25 with its real ImageNet weights (KERAS_HOME=../shared/real/weights/
// keras_home, no network) over ../shared/real/tinyimagenet20 (evaluation data: read in place; work
// folder and bundle in os.tmpdir(), never in the repo), one layer, avg pooling, cosine, the TF.js
// model unquantized (quantize = "none": float16 weights would move the browser's features by
// ~1e-3, more than the tolerance). The photo is /work/shared/demo/caltech10's first chair, not in
// the dataset and larger than 2× the input, so both sides also take the box-downscale step.
// Skipped, saying why, where the real weights or photos are absent.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO, ensureSiteBuilt, launchBrowser, startServer, waitQuiet, watchPage } from './harness.mjs';

const REAL = process.env.CONVNET_SEARCH_REAL || path.join(REPO, '..', 'shared', 'real');
const IMAGES = path.join(REAL, 'tinyimagenet20');
const KERAS_HOME = path.join(REAL, 'weights', 'keras_home');
const WEIGHTS_FILE = path.join(KERAS_HOME, 'models', 'mobilenet_2_5_224_tf_no_top.h5');
const PHOTO = process.env.PARITY_PHOTO || path.join(REAL, '..', 'demo', 'caltech10', 'chair', 'image_0001.jpg');
const MODEL = 'mobilenet_025';
const LAYER = 'conv_pw_13_relu';
const TOP = 15;
const TOL = 1e-4;
const LIVE = '#live-search';
const PY = path.join(REPO, '.venv', 'bin', 'python');
const missing = [IMAGES, WEIGHTS_FILE, PHOTO].filter((p) => !fs.existsSync(p));
const SKIP = missing.length
  ? `real ImageNet weights / photos not found (${missing.join(', ')}): set CONVNET_SEARCH_REAL to the folder holding weights/ and tinyimagenet20/`
  : false;

const CONFIG = `# search-parity.test.mjs
models = ["${MODEL}"]
pooling = ["avg"]
metrics = ["cosine"]
k = ${TOP}
weights = "imagenet"
seed = 0
batch_size = 32
browser_search = true
browser_model = "${MODEL}"
quantize = "none"
`;
const ENV = { ...process.env, KERAS_HOME, PYTHONPATH: REPO, TF_CPP_MIN_LOG_LEVEL: '3' };

function listFiles(dir) {
  return fs.readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((e) => (e.isDirectory() ? listFiles(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

// What a search reads but `precompute` never imports: editing them does not change the run.
const NOT_IN_RUN = new Set(['api.py', 'io/exports.py', 'search/query_index.py']);

/** Cache key: the engine sources precompute runs, the config and the photo folder (names and sizes). */
function runKey() {
  const h = createHash('sha256');
  const pkg = path.join(REPO, 'convnet_search');
  for (const f of listFiles(pkg).filter((f) => f.endsWith('.py') && !NOT_IN_RUN.has(path.relative(pkg, f)))) {
    h.update(path.relative(REPO, f));
    h.update(fs.readFileSync(f));
  }
  h.update(CONFIG + LAYER);
  for (const f of listFiles(IMAGES)) h.update(`${path.relative(IMAGES, f)}:${fs.statSync(f).size}\n`);
  return h.digest('hex').slice(0, 16);
}

/** Work folder + bundle of the real-weights run in os.tmpdir() (reused while the key holds). */
function buildRun() {
  const root = path.join(os.tmpdir(), `cs-e2e-parity-${runKey()}`);
  const run = { work: path.join(root, 'work'), out: path.join(root, 'bundle') };
  if (process.env.E2E_FRESH !== '1' && fs.existsSync(path.join(root, 'done'))) return run;
  for (const old of fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('cs-e2e-parity-'))) fs.rmSync(path.join(os.tmpdir(), old), { recursive: true, force: true });
  fs.mkdirSync(root, { recursive: true });
  fs.writeFileSync(path.join(root, 'parity.toml'), CONFIG);
  const t0 = Date.now();
  const r = spawnSync(PY, ['-m', 'convnet_search.cli', 'precompute', '--config', path.join(root, 'parity.toml'), '--dataset', IMAGES,
    '--layers', `${MODEL}:${LAYER}`, '--out', run.out, '--work', run.work], { encoding: 'utf8', env: ENV, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`convnet-search precompute failed (exit ${r.status}):\n${(r.stderr || '').slice(-4000)}`);
  fs.writeFileSync(path.join(root, 'done'), '');
  process.stderr.write(`# built the real-weights parity run in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${root}\n`);
  return run;
}

const SELECT = ['--model', MODEL, '--layer', LAYER, '--pooling', 'avg', '--metric', 'cosine', '--k', String(TOP)];

function viaApi(run) {
  const code = `import json, sys, convnet_search as cs
run = cs.open_run(sys.argv[1], sys.argv[2])
config = run.select(model="${MODEL}", layer="${LAYER}", pooling="avg", metric="cosine")
print(json.dumps([[h.id, h.distance] for h in run.search(sys.argv[3], config, k=${TOP})]))`;
  const r = spawnSync(PY, ['-c', code, run.work, run.out, PHOTO], { encoding: 'utf8', env: ENV, maxBuffer: 16 * 1024 * 1024 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

function viaCli(run) {
  const r = spawnSync(PY, ['-m', 'convnet_search.cli', 'search', PHOTO, '--work', run.work, '--out', run.out, ...SELECT, '--json'],
    { encoding: 'utf8', env: ENV, maxBuffer: 16 * 1024 * 1024 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout)[0].results.map((h) => [h.id, h.distance]);
}

function assertSame(name, got, want) {
  assert.deepEqual(got.map(([id]) => id), want.map(([id]) => id), `${name}: ids and order differ from the API's`);
  const worst = Math.max(...got.map(([, d], i) => Math.abs(d - want[i][1])));
  assert.ok(worst <= TOL, `${name}: a distance differs from the API's by ${worst} (> ${TOL})`);
  return worst;
}

describe('API, CLI and browser search agree on a new photo (real weights)', { skip: SKIP }, () => {
  let run, server, browser;

  before(async () => {
    run = buildRun();
    ensureSiteBuilt();
    server = await startServer({ bundleDir: run.out });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  test(`the same top ${TOP}, distances within ${TOL}`, async () => {
    const api = viaApi(run);
    const cli = viaCli(run);
    assert.equal(api.length, TOP);

    const page = await browser.context.newPage();
    const problems = watchPage(page);
    await page.goto(server.url + '?metric=cosine');
    await page.waitForSelector(`${LIVE} .live-drop`);
    await page.hover(LIVE);
    await page.waitForSelector(`${LIVE}[data-state=ready], ${LIVE}[data-state=failed]`, { timeout: 180_000 });
    assert.equal(await page.getAttribute(LIVE, 'data-state'), 'ready', `live search failed: ${await page.textContent(`${LIVE} .live-error`)}`);
    await page.selectOption(`${LIVE} #live-layer`, LAYER);
    await waitQuiet(server);
    const srvBefore = server.log.length;
    await page.setInputFiles(`${LIVE} #live-file`, PHOTO);
    await page.waitForFunction((sel) => {
      const d = document.querySelector(sel).dataset;
      return d.searches === '1' && d.state === 'ready';
    }, LIVE, { timeout: 120_000 });
    const top = await page.getAttribute(LIVE, 'data-top');
    const browserHits = top.split(',').map((s) => s.split(':').map(Number)).slice(0, TOP);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(server.log.slice(srvBefore).map((e) => e.path), [], 'the upload causes no request');
    assert.deepEqual(problems, []);
    await page.close();

    const wCli = assertSame('CLI', cli, api);
    const wBrowser = assertSame('browser', browserHits, api);
    process.stderr.write(`# parity: top ${TOP} ids equal (API = CLI = browser); max |Δdistance| CLI ${wCli.toExponential(2)}, ` +
      `browser ${wBrowser.toExponential(2)}; API top-3 ${JSON.stringify(api.slice(0, 3))}\n`);
  });
});
