// `convnet-search precompute --judgements FILE` (issue 20 item 5): the engine ranks every
// configuration offline from an exported judgements file and stores it in the bundle; the
// "Your judgements" panel shows it as "ranked offline over all N configurations", in real Chromium.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { REPO, closeAll, runEngine, serveBundle, watchPage } from './harness.mjs';

const SHAPES = path.join(REPO, 'datasets', 'shapes', 'images');
const SHOTS = process.env.F20_SHOTS ?? '/tmp';
// A small run (one model, 2 layers): 2 × 4 poolings × 2 metrics = 16 configurations.
const CONFIG = 'models = ["mobilenet_025"]\nnum_layers = 2\nmetrics = ["cosine", "euclidean"]\nweights = "none"\nk = 15\nbatch_size = 20\nbrowser_search = false\nfeatviz_models = []\n';

let tmp, out, server, browser, manifest, marks;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-e2e-offline-'));
  out = path.join(tmp, 'out');
  fs.writeFileSync(path.join(tmp, 'c.toml'), CONFIG);
  // Judged by class folder: 3 queries, 12 results each (the file as the explorer exports it).
  const files = fs.readdirSync(SHAPES).flatMap((c) => fs.readdirSync(path.join(SHAPES, c)).map((f) => `${c}/${f}`)).sort();
  marks = [];
  for (const q of [files[0], files[70], files[140]]) {
    for (const r of files.filter((_, i) => i % 17 === 3).slice(0, 12)) marks.push({ dataset: 'images', query: q, result: r, similar: q.split('/')[0] === r.split('/')[0], at: '2026-12-07T05:00:00.000Z' });
    marks.push({ dataset: 'images', query: q, result: files.find((f) => f !== q && f.split('/')[0] === q.split('/')[0]), similar: true, at: '2026-12-07T05:00:00.000Z' });
  }
  const file = path.join(tmp, 'my-marks.json');
  fs.writeFileSync(file, JSON.stringify({ format: 'convnet-search-judgements', version: 1, judgements: marks }));
  const r = runEngine(['precompute', '--config', path.join(tmp, 'c.toml'), '--dataset', SHAPES, '--out', out, '--work', path.join(tmp, 'work'), '--judgements', file]);
  assert.equal(r.status, 0, `precompute --judgements failed:\n${r.stderr.slice(-3000)}`);
  manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
  ({ server, browser } = await serveBundle(out));
});

after(() => closeAll({ browser, server, tmp }));

test('the panel shows the bundle\'s offline ranking of all configurations, with no console error', async () => {
  const ds = manifest.datasets[0];
  const total = manifest.models.reduce((s, m) => s + m.layers.length, 0) * manifest.poolings.length * manifest.metrics.length;
  assert.equal(ds.judgements.configurations, total);
  assert.equal(ds.judgements.judgements, marks.length);
  const stored = JSON.parse(fs.readFileSync(path.join(out, manifest.files.judgements.replace('{dataset}', ds.id)), 'utf8'));
  const page = await browser.context.newPage();
  const problems = watchPage(page);
  await page.goto(`${server.url}?dataset=${ds.id}&view=judge`);
  await page.waitForSelector('.judge-offline-ranking');
  assert.equal(await page.locator('.judge-offline-ranking h3').textContent(), `Ranked offline over all ${total} configurations`);
  assert.match(await page.locator('.judge-offline-ranking .hint').textContent(), new RegExp(`--judgements my-marks\\.json\\) from ${marks.length} judgements on 3 queries`));
  const shown = await page.$$eval('.judge-offline-row', (els) => els.map((e) => e.dataset.config));
  assert.deepEqual(shown, stored.top.slice(0, 10).map((t) => t.config));
  // This browser has no marks of its own: the panel says so below the offline ranking.
  await page.waitForSelector('.judge-body .status-empty');
  await page.screenshot({ path: path.join(SHOTS, 'j20-offline-ranking.png'), fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();
});
