// Private search at scale, in headless Chromium (not part of `make test`; `make bench-scale`):
// download bytes, median upload → results and recall@15 against float32 exact search, with the
// dataset's browser features compressed under the download budget as the engine does it.
//
//   node bench/bench_live_scale.mjs [--n 100000] [--base BUNDLE --images DIR] [--uploads 15] [--budget-mb 32]
//        [--layer L] [--pooling avg] [--metric cosine] [--out bench/out/live-scale.json]
//
// BUNDLE (+ --images, its image folder): a bundle with float32 browser features and its images (default: the real-weights
// tinyimagenet20 bundle frontend/e2e/live-real.test.mjs builds in os.tmpdir(), else the engine's
// tiny e2e bundle). frontend/e2e/scaled-bundle.mjs derives an N-image bundle from it, and
// bench/scaled_features.py writes its features twice: compressed under the budget (what the page
// downloads) and as float32 (the exact reference), N vectors = the base's real ones + synthetic
// same-class mixtures (see there). Each upload is a base photo, searched on both bundles in two
// pages; recall@15 = |top-15(compressed) ∩ top-15(float32)| / 15, with the same browser embedding.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { REPO, buildTinyBundle, ensureSiteBuilt, launchBrowser, readIndex, startServer } from '../frontend/e2e/harness.mjs';
import { deriveScaledBundle } from '../frontend/e2e/scaled-bundle.mjs';

const LIVE = '#live-search';
const { values: a } = parseArgs({
  options: {
    n: { type: 'string', default: '100000' },
    base: { type: 'string' },
    images: { type: 'string' }, // the base bundle's image folder (with --base)
    uploads: { type: 'string', default: '15' },
    'budget-mb': { type: 'string', default: '32' },
    layer: { type: 'string' },
    pooling: { type: 'string', default: 'avg' },
    metric: { type: 'string', default: 'cosine' },
    out: { type: 'string', default: path.join(REPO, 'bench', 'out', 'live-scale.json') },
    work: { type: 'string', default: path.join(os.tmpdir(), 'cs-bench-live-scale') },
  },
});
const N = Number(a.n);
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

function defaultBase() {
  const real = fs.readdirSync(os.tmpdir()).filter((f) => /^cs-e2e-real-[0-9a-f]{16}$/.test(f)).map((f) => path.join(os.tmpdir(), f));
  if (real.length) return { dir: real[0], images: process.env.CONVNET_SEARCH_REAL ? path.join(process.env.CONVNET_SEARCH_REAL, 'tinyimagenet20') : path.join(REPO, '..', 'shared', 'real', 'tinyimagenet20') };
  const tiny = buildTinyBundle();
  return { dir: tiny.dir, images: tiny.imagesDir };
}

function python(args) {
  const r = spawnSync(path.join(REPO, '.venv', 'bin', 'python'), [path.join(REPO, 'bench', 'scaled_features.py'), ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`scaled_features.py failed:\n${r.stderr.slice(-3000)}`);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l));
}

/**
 * The base reduced to the measured (layer, pooling): deriveScaledBundle writes neighbour, score and
 * UMAP files for every configuration, ~0.5 GB at N=100,000 for 48 of them, none of which the
 * private search reads. Its datasets/ and tfjs/ are the base's (symlinks).
 */
function slimBase(base, layer) {
  const dir = path.join(a.work, 'base');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const m = JSON.parse(fs.readFileSync(path.join(base.dir, 'manifest.json'), 'utf8'));
  const bs = m.browser_search;
  m.poolings = m.poolings.filter((p) => p.id === a.pooling);
  m.models = m.models.filter((x) => x.id === bs.model).map((x) => ({ ...x, layers: x.layers.filter((l) => l.name === layer).map((l) => ({ ...l, dims: { [a.pooling]: l.dims[a.pooling] } })) }));
  m.browser_search = { ...bs, default_layer: layer, outputs: bs.outputs.filter((o) => o.layer === layer && o.pooling === a.pooling) };
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(m));
  for (const sub of ['datasets', 'tfjs']) fs.symlinkSync(path.resolve(base.dir, sub), path.join(dir, sub));
  return { dir, images: base.images };
}

/** The derived bundle with features encoded under budgetMb (a huge budget keeps float32). */
function buildScaled(base, name, budgetMb, layer) {
  const dir = path.join(a.work, name);
  const t0 = Date.now();
  const { dataset } = deriveScaledBundle(base.dir, dir, N);
  const bm = JSON.parse(fs.readFileSync(path.join(base.dir, 'manifest.json'), 'utf8'));
  fs.cpSync(path.join(base.dir, 'tfjs'), path.join(dir, 'tfjs'), { recursive: true, dereference: true });
  const entries = python([base.dir, dir, '--dataset-in', bm.datasets[0].id, '--dataset-out', dataset, '--n', String(N), '--budget-mb', String(budgetMb), '--outputs', `${layer}/${a.pooling}`, '--metrics', a.metric]);
  process.stderr.write(`bench_live_scale: ${name} (N=${N}) built in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${JSON.stringify(entries)}\n`);
  return { dir, dataset, entry: entries[0] };
}

async function openLive(browser, server, dataset) {
  const page = await browser.context.newPage();
  await page.goto(`${server.url}?dataset=${dataset}&metric=${a.metric}&pooling=${a.pooling}`);
  await page.waitForSelector(`${LIVE} .live-drop`);
  const t0 = Date.now();
  await page.hover(LIVE);
  await page.waitForSelector(`${LIVE}[data-state=ready], ${LIVE}[data-state=failed]`, { timeout: 600_000 });
  const d = await page.evaluate((sel) => ({ ...document.querySelector(sel).dataset }), LIVE);
  if (d.state !== 'ready') throw new Error(`live search did not load: ${await page.textContent(`${LIVE} .live-error`)}`);
  return { page, readyWallMs: Date.now() - t0 };
}

async function upload(page, file, n) {
  // Two pages are open: the one in the background gets requestAnimationFrame throttled (the panel
  // times "rendered" at the next frame), which added ≈ 0.8 s to every upload of the first page.
  await page.bringToFront();
  await page.setInputFiles(`${LIVE} #live-file`, file);
  await page.waitForFunction(([sel, n]) => document.querySelector(sel).dataset.searches === String(n) && document.querySelector(sel).dataset.state === 'ready', [LIVE, n], { timeout: 120_000 });
  const d = await page.evaluate((sel) => ({ ...document.querySelector(sel).dataset }), LIVE);
  const num = (k) => Number(d[k] ?? NaN); // NaN: a page that does not report this part
  return {
    latencyMs: num('latencyMs'), decodeMs: num('decodeMs'), embedMs: num('embedMs'), searchMs: num('searchMs'), topkMs: num('topkMs'),
    workerMs: num('workerMs'), replyMs: num('replyMs'), renderMs: num('renderMs'), top: d.top.split(',').map((s) => Number(s.split(':')[0])),
  };
}

async function main() {
  const base = a.base ? { dir: a.base, images: a.images } : defaultBase();
  if (!base.images) throw new Error('--base needs --images (the folder the base bundle was built from)');
  const bm = JSON.parse(fs.readFileSync(path.join(base.dir, 'manifest.json'), 'utf8'));
  const index = readIndex(base.dir, bm.datasets[0].id);
  const layer = a.layer ?? bm.browser_search.default_layer;
  fs.mkdirSync(a.work, { recursive: true });
  const slim = slimBase(base, layer);
  const packed = buildScaled(slim, `packed-${N}`, Number(a['budget-mb']), layer);
  const exact = buildScaled(slim, `exact-${N}`, 1e6, layer);
  ensureSiteBuilt();
  const browser = await launchBrowser();
  const servers = [];
  try {
    const s1 = await startServer({ bundleDir: packed.dir });
    const s2 = await startServer({ bundleDir: exact.dir });
    servers.push(s1, s2);
    const p1 = await openLive(browser, s1, packed.dataset);
    const downloaded = s1.log.filter((e) => e.status === 200 && !/\.(js|css|html|wasm|svg|ico)$|\/labels\.bin$|\/names\/\d+\.json$|\/thumbs\//.test(e.path));
    const modelBytes = downloaded.filter((e) => e.path.includes('/tfjs/')).reduce((s, e) => s + e.bytes, 0);
    const featureBytes = downloaded.filter((e) => e.path.includes('/browser/')).reduce((s, e) => s + e.bytes, 0);
    const p2 = await openLive(browser, s2, exact.dataset);
    const count = Math.min(Number(a.uploads), index.files.length);
    const rows = [];
    for (let i = 0; i < count; i++) {
      const id = Math.floor((i * index.files.length) / count);
      const file = path.join(base.images, index.files[id]);
      const r1 = await upload(p1.page, file, i + 1);
      const r2 = await upload(p2.page, file, i + 1);
      const k = Math.min(15, r2.top.length);
      const recall = r1.top.slice(0, k).filter((x) => r2.top.slice(0, k).includes(x)).length / k;
      const { top: _t, ...times } = r1;
      rows.push({ file: index.files[id], id, ...times, exactSearchMs: r2.searchMs, exactLatencyMs: r2.latencyMs, selfFirst: r1.top[0] === id, recall });
      process.stderr.write(`  ${index.files[id]}: ${r1.latencyMs.toFixed(0)} ms (search ${r1.searchMs.toFixed(0)} ms), recall@15 ${recall.toFixed(3)}, top-1 ${r1.top[0] === id ? 'itself' : r1.top[0]}\n`);
    }
    const result = {
      n: N, layer, pooling: a.pooling, metric: a.metric, budget_mb: Number(a['budget-mb']), base: base.dir,
      encoding: packed.entry.encoding, dims: packed.entry.dims, python_recall: packed.entry.recall,
      download_bytes: { model: modelBytes, features: featureBytes, total: modelBytes + featureBytes },
      float32_bytes: exact.entry.bytes, ready_wall_ms: p1.readyWallMs,
      median_upload_to_results_ms: median(rows.map((r) => r.latencyMs)), median_search_ms: median(rows.map((r) => r.searchMs)),
      // Where the upload → results time goes (medians of each part, so they need not add up exactly):
      // decode (file → pixels + preview), embed (TF.js), search (distances + top-k), top-k alone,
      // the worker's whole share, upload → reply on the page, and reply → results rendered (+ 1 frame).
      median_ms: Object.fromEntries(['decodeMs', 'embedMs', 'searchMs', 'topkMs', 'workerMs', 'replyMs', 'renderMs', 'latencyMs', 'exactLatencyMs'].map((k) => [k, median(rows.map((r) => r[k]))])),
      load_average: os.loadavg(),
      median_float32_search_ms: median(rows.map((r) => r.exactSearchMs)),
      browser_recall_at_15: rows.reduce((s, r) => s + r.recall, 0) / rows.length, self_first: rows.filter((r) => r.selfFirst).length, uploads: rows.length, rows,
    };
    fs.mkdirSync(path.dirname(a.out), { recursive: true });
    fs.writeFileSync(a.out, JSON.stringify(result, null, 1));
    const { rows: _, ...summary } = result;
    console.log(JSON.stringify(summary, null, 1));
  } finally {
    await browser.close();
    for (const s of servers) await s.close();
  }
}

await main();
