// `convnet-search export --format projector` opens in TensorBoard's Embedding Projector.
//
// A tiny run (generated shapes, MobileNet alpha 0.25 with random weights: what is checked is the
// file format, not the features) is exported with this checkout's engine CLI, served with
// `tensorboard --logdir EXPORT` (the projector plugin ships with TensorBoard), and opened in
// headless Chromium: the projector must report every point with the features' dimension, and
// the page must log no console error. Screenshot: /tmp/a24-projector.png (or $PROJECTOR_SHOT).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FRONTEND, REPO, launchBrowser, watchPage } from './harness.mjs';

const PY = path.join(REPO, '.venv', 'bin', 'python');
const SHOT = process.env.PROJECTOR_SHOT || '/tmp/a24-projector.png';
const PER_CLASS = 5;
const CONFIG = `models = ["mobilenet_025"]
num_layers = 1
pooling = ["avg"]
metrics = ["cosine"]
k = 5
weights = "none"
browser_search = false
batch_size = 10
`;

function engine(args, env = {}) {
  const r = spawnSync(PY, ['-m', 'convnet_search.cli', ...args], {
    encoding: 'utf8', cwd: REPO, maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3', PYTHONPATH: REPO, ...env },
  });
  if (r.status !== 0) throw new Error(`convnet-search ${args[0]} failed (exit ${r.status}):\n${(r.stderr || '').slice(-3000)}`);
  return r;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** The text of a frame including every shadow root (the projector is built of Polymer elements). */
function deepText() {
  const parts = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) walk(el.shadowRoot);
      if (el.tagName === 'STYLE' || el.tagName === 'SCRIPT') continue;
      for (const n of el.childNodes) if (n.nodeType === 3 && n.textContent.trim()) parts.push(n.textContent.trim());
    }
  };
  walk(document);
  return parts.join(' ');
}

describe('projector export in TensorBoard', () => {
  let tmp, dest, tb, browser, url, n, dim;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-e2e-projector-'));
    const images = path.join(tmp, 'shapes');
    const mk = spawnSync(PY, [path.join(FRONTEND, 'e2e', 'make_images.py'), images, String(PER_CLASS)], { encoding: 'utf8' });
    assert.equal(mk.status, 0, mk.stderr);
    fs.writeFileSync(path.join(tmp, 'run.toml'), CONFIG);
    engine(['precompute', '--config', path.join(tmp, 'run.toml'), '--dataset', images, '--work', path.join(tmp, 'work'), '--out', path.join(tmp, 'bundle')]);
    dest = path.join(tmp, 'projector');
    engine(['export', '--format', 'projector', '--work', path.join(tmp, 'work'), '--out', path.join(tmp, 'bundle'), '--dest', dest]);
    n = fs.readFileSync(path.join(dest, 'metadata.tsv'), 'utf8').trim().split('\n').length - 1;
    dim = fs.readFileSync(path.join(dest, 'tensors.tsv'), 'utf8').split('\n')[0].split('\t').length;
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    tb = spawn(PY, ['-m', 'tensorboard.main', '--logdir', dest, '--host', '127.0.0.1', '--port', String(port)], {
      env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    tb.stderr.on('data', (d) => { log = (log + d).slice(-4000); });
    const start = Date.now();
    for (;;) {  // TensorBoard imports TensorFlow first: on a busy 2-core machine that takes minutes
      if (tb.exitCode !== null) throw new Error(`tensorboard exited (${tb.exitCode}): ${log}`);
      try {
        const r = await fetch(`${url}/data/plugin/projector/runs`);
        if (r.ok && (await r.json()).length) break;
      } catch { /* not listening yet */ }
      if (Date.now() - start > 600_000) throw new Error(`tensorboard did not serve the projector in 10 min: ${log}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    if (tb && tb.exitCode === null) tb.kill('SIGTERM');
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('the exported points load in the projector, with no console error', async () => {
    assert.equal(n, 4 * PER_CLASS);
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    await page.goto(`${url}/#projector`);
    const want = `Points: ${n}`;
    const start = Date.now();
    let text = '';
    while (!text.includes(want)) {  // (playwright serialises deepText itself: no eval in the page)
      if (Date.now() - start > 180_000) throw new Error(`the projector did not show "${want}" in 3 min: ${text.slice(0, 500)}`);
      await page.waitForTimeout(500);
      // The plugin runs in an iframe (plugin_entry.html) holding another (projector_binary.html).
      text = (await Promise.all(page.frames().map((f) => f.evaluate(deepText).catch(() => '')))).join(' ');
    }
    assert.match(text, new RegExp(`Points: ${n}\\b`));
    assert.match(text, new RegExp(`Dimension: ${dim}\\b`));
    assert.match(text, /metadata\.tsv/);
    await page.waitForTimeout(2000);  // the sprite thumbnails are drawn after the points
    await page.screenshot({ path: SHOT });
    process.stderr.write(`# projector: ${n} points × ${dim} dims loaded; screenshot ${SHOT}\n`);
    assert.deepEqual(problems, []);
    await page.close();
  });
});
