// End-to-end tests of the Model Explorer view and "why similar?" (issue 11) in headless Chromium,
// against the tiny engine bundle (harness.buildTinyBundle: MobileNet with browser search, channel
// atlas for every model). Every request of the browser context is recorded.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { RESULTS, buildTinyBundle, ensureSiteBuilt, launchBrowser, startServer, waitQuiet, watchPage, readIndex } from './harness.mjs';

// Bytes per model/layer switch, images aside (issue 11): what the server sent (raw, uncompressed),
// summed from its response log. A switch fetches atlas/index.json and atlas/rows/0.bin (the first
// screen's 64 channels); atlas format 1 fetched 32.4 KB at 1,024 channels (a whole C×T top.bin
// and the whole selectivity order). The bytes do not depend on N below 65,536 images (uint16 ids,
// T = 9 once N ≥ 9), so the tiny bundle's 1,024-channel layer measures the N = 200 case.
const SWITCH_BUDGET = 20_000;
let bundle, server, browser, manifest, ds, bs, requests;
const measured = {};

function recordRequests(context) {
  const log = [];
  // blob: and data: URLs are in-memory objects of the page, not requests anyone else can see.
  context.on('request', (r) => { if (!/^(blob|data):/.test(r.url())) log.push(r.url()); });
  return log;
}

/** Pixels drawn on every heat canvas matching sel: [painted pixels, distinct colours] per canvas. */
const canvasStats = (page, sel) => page.$$eval(sel, (cs) => cs.map((c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let painted = 0;
  const colours = new Set();
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 0) painted++;
    colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
  }
  return [painted, colours.size, c.width * c.height];
}));

// Images: featviz JPEGs and thumbnails (sheets, packs read by Range, per-image files).
const isImage = (p) => /\.(jpe?g|png|webp)$/i.test(p) || p.includes('/thumbs/');

/** Rows file p of a layer's atlas, as docs/bundle.md lays it out: { selectivity, channel, ids(rank) }. */
function readRows(dir, layer, p = 0) {
  const base = path.join(dir, 'atlas');
  const idx = JSON.parse(fs.readFileSync(path.join(base, 'index.json'), 'utf8'));
  const buf = fs.readFileSync(path.join(base, 'rows', `${p}.bin`));
  const n = Math.min(idx.page, idx.channels - p * idx.page);
  const size = ds.id_dtype === 'uint32' ? 4 : 2;
  assert.equal(buf.length, n * (8 + idx.top * size), `${layer} rows/${p}.bin size`);
  const id = (rank, i) => (size === 2 ? buf.readUInt16LE : buf.readUInt32LE).call(buf, n * 8 + ((rank - p * idx.page) * idx.top + i) * size);
  return { idx, channel: (rank) => buf.readUInt32LE(n * 4 + (rank - p * idx.page) * 4), ids: (rank) => Array.from({ length: idx.top }, (_, i) => id(rank, i)) };
}
const layerDir = (model, layer) => path.join(bundle.dir, 'datasets', ds.id, model, layer);

before(async () => {
  bundle = buildTinyBundle();
  ensureSiteBuilt();
  manifest = JSON.parse(fs.readFileSync(path.join(bundle.dir, 'manifest.json'), 'utf8'));
  bs = manifest.browser_search;
  assert.ok(bs?.spatial_outputs?.length, 'the e2e bundle must export spatial outputs for "why similar?"');
  ds = manifest.datasets.find((d) => (d.atlas ?? []).includes(bs.model));
  assert.ok(ds, 'the e2e bundle must have a channel atlas for the browser model');
  server = await startServer({ bundleDir: bundle.dir });
  browser = await launchBrowser();
  requests = recordRequests(browser.context);
});

after(async () => {
  fs.mkdirSync(RESULTS, { recursive: true });
  fs.writeFileSync(path.join(RESULTS, 'explorer-model.json'), JSON.stringify(measured, null, 1));
  await browser?.close();
  await server?.close();
});

describe('Model Explorer', () => {
  test('shows the channel grid, a channel with its heatmaps, costs ≤ 20 KB per layer switch, and an image click makes it the query', async () => {
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    const model = manifest.models.find((m) => m.id === bs.model);
    const layers = model.layers.map((l) => l.name);
    await page.goto(`${server.url}?view=explorer&dataset=${ds.id}&model=${model.id}&layer=${layers[0]}`);
    await page.waitForSelector('.view-explorer[data-state=ready]', { timeout: 30_000 });
    const channels = Number(await page.getAttribute('.view-explorer', 'data-channels'));
    const cells = await page.locator('.mx-cell').count();
    assert.equal(cells, Math.min(64, channels), `${cells} cells for ${channels} channels`);
    // Selectivity order: the first cell is the atlas's most selective channel.
    assert.equal(Number(await page.getAttribute('.mx-cell >> nth=0', 'data-channel')), readRows(layerDir(model.id, layers[0]), layers[0]).channel(0));

    // Every other layer: what a switch fetches, images aside.
    measured.switches = [];
    for (const layer of layers.slice(1)) {
      await waitQuiet(server);
      const from = server.log.length;
      await page.selectOption('#sel-layer', layer);
      await page.waitForFunction((l) => document.querySelector('.view-explorer')?.dataset.state === 'ready' && location.search.includes(`layer=${l}`), layer);
      await waitQuiet(server);
      const data = server.log.slice(from).filter((e) => !isImage(e.path));
      const bytes = data.reduce((s, e) => s + e.bytes, 0);
      const gzip = data.reduce((s, e) => s + gzipSync(fs.readFileSync(path.join(bundle.dir, e.path.replace(/^\/data\//, '')))).length, 0);
      const images = server.log.slice(from).filter((e) => isImage(e.path));
      measured.switches.push({ layer, channels: Number(await page.getAttribute('.view-explorer', 'data-channels')), bytes, gzip, files: data.map((e) => `${e.path} ${e.bytes}`), imageRequests: images.length, imageBytes: images.reduce((s, e) => s + e.bytes, 0) });
      assert.deepEqual(data.map((e) => e.path.replace(/.*\/atlas\//, '')).sort(), ['index.json', 'rows/0.bin'], `a switch fetches the atlas index and first rows file only: ${data.map((e) => e.path)}`);
      assert.ok(bytes <= SWITCH_BUDGET, `switching to ${layer} fetched ${bytes} B besides images: ${data.map((e) => `${e.path} ${e.bytes}`).join(', ')}`);
    }
    assert.ok(measured.switches.some((s) => s.channels === 1024), `the e2e bundle has a 1,024-channel layer to measure: ${measured.switches.map((s) => s.channels)}`);

    // "Show more": the next rows file only, 64 more cells in rank order.
    const last = layers[layers.length - 1];
    const rows1 = readRows(layerDir(model.id, last), last, 1);
    const fromMore = server.log.length;
    await page.click('.mx-more');
    await page.waitForFunction((n) => document.querySelectorAll('.mx-cell').length === n, Math.min(128, rows1.idx.channels));
    await waitQuiet(server);
    const moreData = server.log.slice(fromMore).filter((e) => !isImage(e.path));
    assert.deepEqual(moreData.map((e) => e.path.replace(/.*\/atlas\//, '')), ['rows/1.bin']);
    measured.showMoreBytes = moreData[0].bytes;
    assert.equal(Number(await page.getAttribute('.mx-cell >> nth=64', 'data-channel')), rows1.channel(64));

    // A channel: its top images with heat overlays drawn (non-empty, not one flat colour).
    const from = server.log.length;
    await page.click('.mx-cell >> nth=0');
    await page.waitForSelector('.mx-detail[data-state=ready]', { timeout: 30_000 });
    const maps = server.log.slice(from).filter((e) => e.path.includes('/atlas/maps/'));
    assert.equal(maps.length, 1, `one maps block fetched: ${maps.map((e) => e.path)}`);
    const stats = await canvasStats(page, '.mx-detail canvas.heat');
    const idx = rows1.idx;
    assert.equal(stats.length, idx.top, `${stats.length} heatmaps for top ${idx.top}`);
    assert.ok(stats.every(([painted, , all]) => painted === all), 'every heat canvas is fully painted');
    assert.ok(stats.some(([, colours]) => colours > 1), 'the heatmaps are not all one flat colour');
    measured.channelMapsBytes = maps[0].bytes;

    // Click an image: it becomes the search query.
    await page.click('.mx-top .heat-btn >> nth=0');
    await page.waitForFunction(() => location.search.includes('view=search'));
    const q = new URLSearchParams(await page.evaluate(() => location.search)).get('q');
    const rows0 = readRows(layerDir(model.id, last), last, 0);
    assert.equal(Number(q), rows0.ids(0)[0], `the query is the most selective channel's top image (channel ${rows0.channel(0)})`);
    await page.waitForSelector('.results-grid');
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('random weights get their notice; a bundle without an atlas says so instead of breaking', async () => {
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    const model = manifest.models.find((m) => m.id === bs.model);
    await page.goto(`${server.url}?view=explorer&dataset=${ds.id}&model=${model.id}`);
    await page.waitForSelector('.view-explorer[data-state=ready]', { timeout: 30_000 });
    if (model.weights === 'random') assert.match(await page.textContent('.mx-random'), /noise from untrained weights/);
    else assert.equal(await page.locator('.mx-random').count(), 0, 'no random-weights notice for trained weights');
    /** The explorer on `served` as the manifest: the no-atlas state saying `says`, nothing fetched from an atlas. */
    const expectNoAtlas = async (served, says, what) => {
      await page.unroute('**/data/manifest.json');
      await page.route('**/data/manifest.json', (route) => route.fulfill({ json: served }));
      const from = server.log.length;
      await page.goto(`${server.url}?view=explorer&dataset=${ds.id}&model=${model.id}`);
      await page.waitForSelector('.view-explorer[data-state=no-atlas]', { timeout: 30_000 });
      assert.match(await page.textContent('.view-explorer'), says);
      assert.ok(server.log.slice(from).every((e) => !e.path.includes('/atlas/')), `nothing fetched from ${what}`);
    };
    // The same bundle as an older engine wrote it: no atlas keys in the manifest.
    const older = structuredClone(manifest);
    for (const d of older.datasets) delete d.atlas;
    for (const k of ['atlas_index', 'atlas_rows', 'atlas_maps']) delete older.files[k];
    await expectNoAtlas(older, /This bundle has no channel atlas for .* on “/, 'an atlas the manifest does not list');
    // A bundle in atlas format 1 (files.atlas_top): not misread, the view asks for a rebuild.
    const format1 = structuredClone(manifest);
    delete format1.files.atlas_rows;
    format1.files.atlas_top = 'datasets/{dataset}/{model}/{layer}/atlas/top.bin';
    await expectNoAtlas(format1, /older layout .* rebuild the bundle/, 'a format-1 atlas');
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('without per-image thumbnail files (bundles above 5,000 images): grid and heatmaps show the images from the packs', async () => {
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    const model = manifest.models.find((m) => m.id === bs.model);
    const large = structuredClone(manifest);
    delete large.files.thumbnail;
    await page.route('**/data/manifest.json', (route) => route.fulfill({ json: large }));
    const from = server.log.length;
    const last = model.layers[model.layers.length - 1].name;
    await page.goto(`${server.url}?view=explorer&dataset=${ds.id}&model=${model.id}&layer=${last}`);
    await page.waitForSelector('.view-explorer[data-state=ready]', { timeout: 30_000 });
    const loaded = (sel) => page.waitForFunction((s) => {
      const imgs = [...document.querySelectorAll(s)];
      return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 1);
    }, sel, { timeout: 30_000 });
    // The grid's images load near the viewport only: the first row's are in view.
    await loaded('.mx-cell:nth-child(-n+4) img.mx-thumb');
    const lazy = await page.$$eval('.mx-cell img.mx-thumb', (imgs) => imgs.filter((i) => i.naturalWidth <= 1).length);
    assert.ok(lazy > 0, 'cells far below the viewport have not fetched their images');
    await page.click('.mx-cell >> nth=0');
    await page.waitForSelector('.mx-detail[data-state=ready]', { timeout: 30_000 });
    await loaded('.mx-detail .heat-stack img');
    const rows0 = readRows(layerDir(model.id, last), last, 0);
    assert.equal(await page.locator('.mx-detail .heat-stack img').count(), rows0.idx.top);
    const thumbs = server.log.slice(from).filter((e) => e.path.includes('/thumbs/'));
    assert.ok(thumbs.length > 0 && thumbs.every((e) => e.path.endsWith('.jpgs')), `images come from the packs: ${thumbs.slice(0, 5).map((e) => e.path)}`);
    assert.deepEqual(problems, []);
    await page.close();
  });
});

describe('why similar?', () => {
  const layer = () => bs.spatial_outputs[bs.spatial_outputs.length - 1].layer;

  test('on a dataset query: both heatmaps are drawn from the thumbnails, computed in the browser', async () => {
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    await page.goto(`${server.url}?view=search&dataset=${ds.id}&model=${bs.model}&layer=${layer()}&q=3`);
    await page.waitForSelector('.results-grid .why-btn');
    await page.click('.results-grid .why-btn >> nth=1');
    await page.waitForSelector('dialog.why[data-state=ready], dialog.why[data-state=failed]', { timeout: 120_000 });
    assert.equal(await page.getAttribute('dialog.why', 'data-state'), 'ready', await page.textContent('dialog.why'));
    const stats = await canvasStats(page, 'dialog.why canvas.heat');
    assert.equal(stats.length, 2, 'one map over the result, one over the query');
    assert.ok(stats.every(([painted, colours]) => painted > 0 && colours > 1), `heatmaps drawn: ${JSON.stringify(stats)}`);
    assert.match(await page.textContent('dialog.why'), /computed from the thumbnails/);
    await page.keyboard.press('Escape');
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('without per-image thumbnail files and with slow packs: the maps are computed on the real pictures, not a placeholder', async () => {
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    const large = structuredClone(manifest);
    delete large.files.thumbnail;
    await page.route('**/data/manifest.json', (route) => route.fulfill({ json: large }));
    // Packs answer only after "why" is clicked: the result and query pictures are still loading
    // (thumbImg's placeholder) when it is.
    let release;
    const gate = new Promise((r) => { release = r; });
    await page.route('**/thumbs/**', async (route) => { await gate; await route.continue(); });
    await page.goto(`${server.url}?view=search&dataset=${ds.id}&model=${bs.model}&layer=${layer()}&q=3`);
    await page.waitForSelector('.results-grid .why-btn');
    await page.click('.results-grid .why-btn >> nth=4');
    setTimeout(() => release(), 1500);
    await page.waitForSelector('dialog.why[data-state=ready], dialog.why[data-state=failed]', { timeout: 120_000 });
    assert.equal(await page.getAttribute('dialog.why', 'data-state'), 'ready', await page.textContent('dialog.why'));
    const text = await page.textContent('dialog.why');
    assert.doesNotMatch(text, /\b1×1\b/, 'a placeholder pixel was mapped instead of the picture');
    await page.waitForFunction(() => {
      const imgs = [...document.querySelectorAll('dialog.why .heat-stack img')];
      return imgs.length === 2 && imgs.every((i) => i.complete && i.naturalWidth > 1 && i.naturalHeight > 1);
    }, null, { timeout: 10_000 }).catch(async () => {
      const sizes = await page.$$eval('dialog.why .heat-stack img', (imgs) => imgs.map((i) => [i.naturalWidth, i.naturalHeight, i.getAttribute('src')?.slice(0, 12)]));
      assert.fail(`both pictures drawn under the maps: ${JSON.stringify(sizes)}`);
    });
    await page.keyboard.press('Escape');
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('for a model the browser does not run: marked unavailable with the reason', async () => {
    const other = manifest.models.find((m) => m.id !== bs.model);
    assert.ok(other, 'the e2e bundle has a second model');
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    await page.goto(`${server.url}?view=search&dataset=${ds.id}&model=${other.id}&q=3`);
    await page.waitForSelector('.results-grid .why-btn');
    await page.click('.results-grid .why-btn >> nth=0');
    await page.waitForSelector('dialog.why[data-state=unavailable]');
    assert.match(await page.textContent('dialog.why'), /not exported to the browser/);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('on an uploaded image: maps drawn with no network request at all', async () => {
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    await page.goto(`${server.url}?view=search&dataset=${ds.id}&model=${bs.model}&layer=${layer()}&metric=cosine`);
    await page.hover('#live-search');
    await page.waitForSelector('#live-search[data-state=ready]', { timeout: 120_000 });
    const index = readIndex(bundle.dir, ds.id);
    await page.setInputFiles('#live-search #live-file', path.join(bundle.imagesDir, index.files[5]));
    await page.waitForFunction(() => document.querySelector('#live-search')?.dataset.searches === '1', null, { timeout: 60_000 });
    await page.waitForFunction(() => [...document.querySelectorAll('.results-grid img')].every((i) => i.complete && i.naturalWidth > 0));
    await new Promise((r) => setTimeout(r, 500));
    const [reqBefore, srvBefore] = [requests.length, server.log.length];
    await page.click('.results-grid .why-btn >> nth=2');
    await page.waitForSelector('dialog.why[data-state=ready], dialog.why[data-state=failed]', { timeout: 60_000 });
    assert.equal(await page.getAttribute('dialog.why', 'data-state'), 'ready', await page.textContent('dialog.why'));
    const stats = await canvasStats(page, 'dialog.why canvas.heat');
    assert.ok(stats.length === 2 && stats.every(([painted, colours]) => painted > 0 && colours > 1), `heatmaps drawn: ${JSON.stringify(stats)}`);
    assert.match(await page.textContent('dialog.why'), /not sent anywhere/);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(requests.slice(reqBefore), [], 'no request from the browser for "why similar?" on an upload');
    assert.deepEqual(server.log.slice(srvBefore), [], 'the server saw nothing');
    assert.deepEqual(problems, []);
    await page.close();
  });
});
