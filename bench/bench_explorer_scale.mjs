#!/usr/bin/env node
// The explorer at scale in headless Chromium on this machine (not run in CI): given a bundle
// folder (format 4, e.g. written by `make bench-scale` at N=100,000, or --synthetic N), reports
//   - first result: ms from navigation start to the first result list on screen (?q=0, cold);
//   - bytes of data (not thumbnails) per view switch and per new query;
//   - map redraw: median ms of a pan/zoom redraw with all N points (the page's own timing, with
//     gl.finish() so it covers the GPU work), and whether thumbnails appear zoomed in;
//   - JS heap after gallery + map (CDP Runtime.getHeapUsage after a forced GC);
//   - gallery DOM nodes.
// Goals (issue 9): first result ≤ 1.5 s, ≤ 20 KB of data per view switch, map redraw ≤ 16 ms
// median, JS heap ≤ 300 MB.
//
//   node bench/bench_explorer_scale.mjs --bundle DIR [--out FILE] [--shots DIR]
//   node bench/bench_explorer_scale.mjs --synthetic 20000 [--models 1 --layers 2] [--out FILE] [--shots DIR]
//     (--synthetic: frontend/e2e/scaled-bundle.mjs from the e2e tiny engine bundle)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RESULTS, buildTinyBundle, ensureSiteBuilt, launchBrowser, startServer, waitQuiet } from '../frontend/e2e/harness.mjs';
import { deriveScaledBundle } from '../frontend/e2e/scaled-bundle.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const GOALS = { first_result_ms: 1500, data_bytes_per_switch: 20_000, map_redraw_median_ms: 16, js_heap_mb: 300 };
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};

function bundleDir() {
  if (arg('bundle')) return path.resolve(arg('bundle'));
  const n = Number(arg('synthetic', '0'));
  if (!n) throw new Error('usage: bench_explorer_scale.mjs --bundle DIR | --synthetic N [--out FILE] [--shots DIR]');
  // --models M --layers L: that many configurations (fewer files at 10⁵ images than the tiny bundle's 3 × 3)
  const shape = arg('models') ? { models: Number(arg('models')), layers: Number(arg('layers', '2')) } : {};
  return deriveScaledBundle(buildTinyBundle().dir, path.join(RESULTS, `bench-scale-${n}`), n, shape).dir;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const isData = (e) => e.path.startsWith('/data/') && !e.path.includes('/thumbs/');

async function main() {
  const dir = bundleDir();
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  const ds = manifest.datasets.reduce((a, b) => (b.size > a.size ? b : a));
  ensureSiteBuilt();
  const server = await startServer({ bundleDir: dir });
  const browser = await launchBrowser();
  const out = { bundle: dir, dataset: ds.id, n: ds.size, goals: GOALS, machine: 'headless Chromium (SwiftShader WebGL, --disable-gpu), this machine' };
  try {
    const page = await browser.context.newPage();
    const cdp = await browser.context.newCDPSession(page);
    // usedSize: the JS heap; backingStorageSize (newer Chromium): ArrayBuffer contents (the
    // layout, index, neighbour rows), which live outside it. The goal is checked on the sum.
    const heapMb = async () => {
      await cdp.send('HeapProfiler.collectGarbage');
      const u = await cdp.send('Runtime.getHeapUsage');
      return { js: u.usedSize / 2 ** 20, buffers: (u.backingStorageSize ?? 0) / 2 ** 20 };
    };
    // First result, cold.
    await page.goto(`${server.url}?dataset=${ds.id}&q=0`);
    await page.waitForSelector('.results-grid .result', { timeout: 60_000 });
    out.first_result_ms = Math.round(await page.evaluate(() => performance.getEntriesByName('first-result')[0]?.startTime ?? -1));
    await waitQuiet(server);
    out.first_screen = { data_bytes: server.log.filter(isData).reduce((s, e) => s + e.bytes, 0), files: server.log.filter(isData).map((e) => `${e.path} ${e.status} ${e.bytes}`), thumb_bytes: server.log.filter((e) => e.path.includes('/thumbs/')).reduce((s, e) => s + e.bytes, 0) };
    out.gallery_dom = await page.evaluate(() => ({ items: document.querySelectorAll('.gal-item').length, nodes: document.querySelectorAll('*').length }));
    // Scroll the gallery through: frames stay bounded in DOM size.
    const scroll = await page.evaluate(async () => {
      const g = document.querySelector('.gal-scroll');
      const frames = [];
      let last = performance.now();
      for (let i = 0; i < 60; i++) {
        g.scrollTop += g.clientHeight * 0.8;
        await new Promise((r) => requestAnimationFrame(r));
        const now = performance.now();
        frames.push(now - last);
        last = now;
      }
      return { frame_ms_median: frames.sort((a, b) => a - b)[30], items_after: document.querySelectorAll('.gal-item').length };
    });
    out.gallery_scroll = scroll;
    // Data bytes per switch.
    const switches = {};
    const step = async (name, act, ready) => {
      await waitQuiet(server);
      const from = server.log.length;
      const t0 = Date.now();
      await act();
      await page.waitForSelector(ready, { timeout: 60_000 });
      const ms = Date.now() - t0;
      await waitQuiet(server);
      const data = server.log.slice(from).filter(isData);
      switches[name] = { data_bytes: data.reduce((s, e) => s + e.bytes, 0), ms, files: data.map((e) => `${path.basename(e.path)} ${e.status} ${e.bytes}`) };
    };
    await step('search→map', () => page.click('#tab-map'), `canvas.umap-canvas[data-points="${ds.size}"]`);
    await step('map→compare', () => page.click('#tab-compare'), '.heatmap .heat-cell');
    await step('compare→search', () => page.click('#tab-search'), '.results-grid .result');
    await step('metric change (search)', () => page.selectOption('#sel-metric', manifest.metrics[1]?.id ?? manifest.metrics[0].id), '.results-grid .result');
    await step('new query (click a result)', () => page.click('.results-grid .result-btn >> nth=3'), '.results-grid .result');
    out.view_switches = switches;
    out.max_data_bytes_per_switch = Math.max(...Object.entries(switches).filter(([k]) => k !== 'search→map').map(([, v]) => v.data_bytes));
    out.map_layout_bytes = switches['search→map'].data_bytes;  // the N×2 float32 layout itself
    // Map redraws: alternate wheel zooms about the centre, each redraw synced to the GPU.
    await page.click('#tab-map');
    await page.waitForSelector(`canvas.umap-canvas[data-points="${ds.size}"]`);
    await page.evaluate(() => { document.querySelector('canvas.umap-canvas').dataset.sync = '1'; });
    const box = await page.locator('canvas.umap-canvas').boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    const draws = [];
    for (let i = 0; i < 40; i++) {
      await page.mouse.wheel(0, i % 8 < 4 ? -120 : 120);
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      draws.push(Number(await page.getAttribute('canvas.umap-canvas', 'data-draw-ms')));
    }
    out.map_redraw_ms = { median: median(draws), max: Math.max(...draws), samples: draws.length };
    // Zoom far in: thumbnails drawn from the sheets.
    for (let i = 0; i < 25 && Number(await page.getAttribute('canvas.umap-canvas', 'data-thumbs')) === 0; i++) {
      await page.mouse.wheel(0, -400);
      await page.waitForTimeout(80);
    }
    await waitQuiet(server);
    await page.waitForTimeout(300);
    out.map_zoomed = { zoom: Number(await page.getAttribute('canvas.umap-canvas', 'data-zoom')), thumbs: Number(await page.getAttribute('canvas.umap-canvas', 'data-thumbs')), redraw_ms: Number(await page.getAttribute('canvas.umap-canvas', 'data-draw-ms')) };
    const heap = await heapMb();
    const shots = arg('shots');
    if (shots) {
      fs.mkdirSync(shots, { recursive: true });
      await page.locator('.view-map').screenshot({ path: path.join(shots, 'map_zoomed.png') });
    }
    // Two more steps in (fewer points in view: each image alone, sharp) for the record and the screenshot.
    for (let i = 0; i < 2; i++) {
      await page.mouse.wheel(0, -400);
      await page.waitForTimeout(150);
    }
    await waitQuiet(server);
    await page.waitForTimeout(500);
    out.map_zoomed_more = { zoom: Number(await page.getAttribute('canvas.umap-canvas', 'data-zoom')), thumbs: Number(await page.getAttribute('canvas.umap-canvas', 'data-thumbs')), redraw_ms: Number(await page.getAttribute('canvas.umap-canvas', 'data-draw-ms')) };
    out.js_heap_mb = Math.round(heap.js + heap.buffers);
    out.js_heap_detail_mb = { js: Math.round(heap.js * 10) / 10, array_buffers: Math.round(heap.buffers * 10) / 10 };
    if (shots) {
      await page.click('#tab-search');
      await page.waitForSelector('.gal-item');
      await page.evaluate(() => { const g = document.querySelector('.gal-scroll'); g.scrollTop = g.scrollHeight * 0.37; });
      await page.waitForTimeout(1500);
      await page.locator('.gallery').screenshot({ path: path.join(shots, 'gallery_scale.png') });
    }
    out.meets = {
      first_result: out.first_result_ms <= GOALS.first_result_ms,
      data_per_switch: out.max_data_bytes_per_switch <= GOALS.data_bytes_per_switch,
      map_redraw: out.map_redraw_ms.median <= GOALS.map_redraw_median_ms,
      js_heap: out.js_heap_mb <= GOALS.js_heap_mb,
    };
  } finally {
    await browser.close();
    await server.close();
  }
  const file = path.resolve(arg('out', path.join(BENCH, 'out', 'explorer-scale.json')));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(out, null, 1));
  process.stdout.write(JSON.stringify(out, null, 1) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${e.stack ?? e}\n`);
  process.exit(1);
});
