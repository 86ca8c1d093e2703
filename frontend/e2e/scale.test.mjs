// Scale checks: bytes fetched per view switch at N=200, and UMAP smoothness at N=10,000.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { RESULTS, buildTinyBundle, ensureSiteBuilt, launchBrowser, startServer, waitQuiet, watchPage } from './harness.mjs';
import { deriveScaledBundle } from './scaled-bundle.mjs';

let browser;
const servers = [];
before(async () => {
  const tiny = buildTinyBundle();
  ensureSiteBuilt();
  browser = await launchBrowser();
  // N=200 with the default run's 9 models × 8 layers (72 configurations: the compare view's
  // scores file grows with them); N=10,000 with the tiny bundle's models (only the map is checked).
  for (const [n, shape] of [[200, { models: 9, layers: 8 }], [10000, {}]]) {
    const b = deriveScaledBundle(tiny.dir, path.join(RESULTS, `scaled-${n}`), n, shape);
    servers.push({ n, server: await startServer({ bundleDir: b.dir }), bundle: b });
  }
});
after(async () => {
  await browser?.close();
  for (const s of servers) await s.server.close();
});

test('N=200: first result and every view switch stay within budget (≤ 20 KB of data per switch)', async () => {
  const { server, bundle } = servers.find((s) => s.n === 200);
  const page = await browser.context.newPage();
  const problems = watchPage(page);
  await page.goto(server.url);
  await page.waitForSelector('.results-grid .result');
  await waitQuiet(server);
  const firstData = server.log.filter((e) => e.path.startsWith('/data/') && !e.path.includes('/thumbs/'));
  const report = { firstScreen: { total: server.bytes(), dataFiles: firstData.map((e) => `${e.path} ${e.bytes}`), thumbs: server.log.filter((e) => e.path.includes('/thumbs/')).length } };
  const step = async (name, act, ready) => {
    const from = server.log.length;
    await act();
    await page.waitForSelector(ready);
    await waitQuiet(server);
    const files = server.log.slice(from);
    const data = files.filter((e) => !e.path.includes('/thumbs/'));
    report[name] = { dataBytes: data.reduce((s, e) => s + e.bytes, 0), thumbBytes: files.reduce((s, e) => s + e.bytes, 0) - data.reduce((s, e) => s + e.bytes, 0), files: data.map((e) => path.basename(e.path)) };
  };
  const m = bundle.manifest;
  await step('search→map', () => page.click('#tab-map'), 'canvas.umap-canvas[data-points="200"]');
  await step('map→compare', () => page.click('#tab-compare'), '.heatmap .heat-cell');
  assert.equal(await page.locator('.heatmap .heat-cell').count(), 72, 'the default run\'s 9 × 8 configurations');
  await step('metric change (compare)', () => page.selectOption('#sel-metric', 'minkowski'), '.heatmap .heat-cell');
  await step('compare→search', () => page.click('#tab-search'), '.results-grid .result');
  await step('layer change (search)', () => page.selectOption('#sel-layer', m.models[0].layers[0].name), `.results-grid .result`);
  await step('metric change (search)', () => page.selectOption('#sel-metric', 'euclidean'), '.results-grid .result');
  await step('pooling change (search)', () => page.selectOption('#sel-pooling', m.poolings[m.poolings.length - 1].id), '.results-grid .result');
  // One query's row of the new pooling's file: two Range requests (distances, ids).
  assert.deepEqual(report['pooling change (search)'].files, ['euclidean.knn', 'euclidean.knn']);
  assert.ok(report['pooling change (search)'].dataBytes <= 200, `${report['pooling change (search)'].dataBytes} bytes`);
  await step('model change (search)', () => page.selectOption('#sel-model', m.models[1].id), '.results-grid .result');
  // A result click (no gallery scrolling, which would load gallery thumbnails, not query data).
  await step('new query (click a result)', () => page.click('.results-grid .result-btn >> nth=4'), '.results-grid .result');
  for (const [name, r] of Object.entries(report)) if (name !== 'firstScreen') assert.ok(r.dataBytes <= 20_000, `${name}: ${r.dataBytes} data bytes`);
  fs.writeFileSync(path.join(RESULTS, 'view-switch-n200.json'), JSON.stringify(report, null, 1));
  assert.deepEqual(problems, []);
  await page.close();
});

test('N=10,000: the UMAP canvas draws every point quickly and hover stays responsive', async () => {
  const { server } = servers.find((s) => s.n === 10000);
  const page = await browser.context.newPage();
  const problems = watchPage(page);
  await page.goto(server.url + '?view=map&q=0');
  await page.waitForSelector('canvas.umap-canvas[data-points="10000"]', { timeout: 20_000 });
  // Redraw a few times (resizes) and keep the slowest.
  const draws = [];
  for (const w of [1200, 1000, 1280]) {
    await page.setViewportSize({ width: w, height: 900 });
    await page.waitForTimeout(100);
    draws.push(Number(await page.getAttribute('canvas.umap-canvas', 'data-draw-ms')));
  }
  const box = await page.locator('canvas.umap-canvas').boundingBox();
  const hoverMs = await page.evaluate(async ({ x, y }) => {
    const c = document.querySelector('canvas.umap-canvas');
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) c.dispatchEvent(new MouseEvent('mousemove', { clientX: x + i, clientY: y, bubbles: true }));
    return (performance.now() - t0) / 20;
  }, { x: box.x + box.width / 2, y: box.y + box.height / 2 });
  await page.screenshot({ path: path.join(RESULTS, 'map-10000.png') });
  fs.writeFileSync(path.join(RESULTS, 'map-10000.json'), JSON.stringify({ drawMs: draws, hoverMsPerEvent: hoverMs }, null, 1));
  process.stderr.write(`# UMAP at 10,000 points: draw ${draws.join(', ')} ms; hover ${hoverMs.toFixed(2)} ms/event\n`);
  // Speed is measured in a benchmark (bench/bench_explorer_scale.mjs: map redraw median, goal 16 ms),
  // never asserted here: a loaded CI machine would fail a correct page. This test checks the map
  // draws all 10,000 points and reports its timings.
  assert.ok(draws.every((d) => Number.isFinite(d) && d > 0) && Number.isFinite(hoverMs), `draw timings ${draws} / hover ${hoverMs}`);
  assert.deepEqual(problems, []);
  await page.close();
});
