// A run of two models publishes the bundle after the first: that bundle opens in the explorer
// ("1 of 2 models ready"), searches, and the finished one opens on the best configuration of the
// model with real ImageNet weights, its banner naming the model that is random.
// Real photos (a slice of datasets/caltech10), offline: MobileNet α 0.25 loads the weights shipped
// with the package, MobileNet α 0.5 falls back to random init.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { REPO, RESULTS, ensureSiteBuilt, launchBrowser, startServer, watchPage } from './harness.mjs';

const CALTECH = path.join(REPO, 'datasets', 'caltech10', 'images');
let tmp, early, final, browser;

function copyImages(dest) {
  for (const c of ['bonsai', 'chair', 'sunflower']) {
    fs.mkdirSync(path.join(dest, c), { recursive: true });
    for (const f of fs.readdirSync(path.join(CALTECH, c)).sort().slice(0, 6)) fs.copyFileSync(path.join(CALTECH, c, f), path.join(dest, c, f));
  }
}

function readManifest(dir) {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  } catch {
    return null;
  }
}

/** Runs the engine; when the first published bundle appears, freezes the run (SIGSTOP), copies it, resumes. */
async function runAndCatchFirstBundle(images, out, work, snapshot) {
  const py = path.join(REPO, '.venv', 'bin', 'python');
  const args = ['-m', 'convnet_search.cli', 'precompute', '--dataset', images, '--models', 'mobilenet_025', 'mobilenet_050',
    '--weights', 'auto', '--num-layers', '2', '--pooling', 'avg', 'grid3', '--metrics', 'cosine', 'euclidean', '--k', '5',
    '--no-browser-search', '--out', out, '--work', work];
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-keras-home-')); // an empty Keras cache
  const proc = spawn(py, args, { cwd: REPO, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3', KERAS_HOME: home, CONVNET_SEARCH_OFFLINE: '1', PYTHONPATH: REPO }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
  let caught = false;
  const deadline = Date.now() + 600_000;
  while (!caught && Date.now() < deadline && proc.exitCode === null) {
    const m = readManifest(out);
    if (m?.pending_models) {
      proc.kill('SIGSTOP'); // the bundle folder is only ever swapped whole; frozen, it cannot change under the copy
      fs.cpSync(out, snapshot, { recursive: true });
      proc.kill('SIGCONT');
      caught = true;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const code = await exited;
  fs.rmSync(home, { recursive: true, force: true });
  assert.equal(code, 0, stderr.slice(-4000));
  assert.ok(caught, `no bundle was published before the run's end:\n${stderr.slice(-2000)}`);
  return stderr;
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-e2e-progressive-'));
  const images = path.join(tmp, 'images');
  copyImages(images);
  early = path.join(tmp, 'early');
  final = path.join(tmp, 'out');
  const stderr = await runAndCatchFirstBundle(images, final, path.join(tmp, 'work'), early);
  assert.match(stderr, /bundle published: 1 of 2 models ready/);
  ensureSiteBuilt();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('the bundle published after the first model opens, says what is coming, and searches', async () => {
  const m = readManifest(early);
  assert.deepEqual(m.models.map((x) => x.id), ['mobilenet_025']);
  assert.deepEqual(m.pending_models, [{ id: 'mobilenet_050', name: 'MobileNet α=0.5' }]);
  const server = await startServer({ bundleDir: early });
  try {
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    await page.goto(server.url);
    await page.waitForSelector('.banner-progress');
    assert.equal((await page.textContent('.banner-progress')).trim(), '1 of 2 models ready; still computing MobileNet α=0.5. Reload the page later to see them.');
    assert.equal(await page.locator('#sel-model option').count(), 1);
    await page.click('button.gal-item >> nth=0');
    await page.waitForSelector('.results-grid .result');
    assert.equal(await page.locator('.results-grid .result').count(), 5);
    await page.screenshot({ path: path.join(RESULTS, 'progressive-first-bundle.png'), fullPage: false });
    assert.deepEqual(problems, []);
  } finally {
    await server.close();
  }
});

test('the finished bundle opens on the best real-weights configuration and names the random model', async () => {
  const m = readManifest(final);
  assert.equal(m.pending_models, undefined);
  assert.deepEqual(m.models.map((x) => [x.id, x.weights]), [['mobilenet_025', 'imagenet'], ['mobilenet_050', 'random']]);
  const best = m.datasets[0].best;
  assert.equal(best.model, 'mobilenet_025');
  const server = await startServer({ bundleDir: final });
  try {
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    await page.goto(server.url);
    await page.waitForSelector('.results-grid .result');
    const state = new URLSearchParams(await page.evaluate(() => location.search));
    assert.deepEqual(['model', 'layer', 'pooling', 'metric'].map((k) => state.get(k)), [best.model, best.layer, best.pooling, best.metric]);
    assert.equal(await page.locator('.banner-progress').count(), 0);
    assert.match(await page.textContent('.banner'), /MobileNet α=0\.5 uses random \(untrained\) weights, the other models ImageNet weights/);
    assert.deepEqual(problems, []);
  } finally {
    await server.close();
  }
});
