// End-to-end tests of the private in-browser search (src/live/) in headless Chromium, against the
// tiny bundle the engine builds (harness.buildTinyBundle: MobileNet with browser search is in the
// run). Every request the browser makes is recorded, from the page and from the worker.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO, RESULTS, buildTinyBundle, ensureSiteBuilt, launchBrowser, startServer, waitQuiet, watchPage, readIndex } from './harness.mjs';
import { deriveScaledBundle } from './scaled-bundle.mjs';

const MAX_SELF_DISTANCE = 0.01;
const N_UPLOADS = 20;
const LIVE = '#live-search';

let bundle, server, browser, manifest, index, ds, requests, uploadStart, afterUploads;

/** Every network request of the browser context (pages and their workers), with a timestamp. */
function recordRequests(context) {
  const log = [];
  // blob: and data: URLs are in-memory objects of the page, not requests anyone else can see.
  context.on('request', (r) => { if (!/^(blob|data):/.test(r.url())) log.push({ url: r.url(), t: Date.now() }); });
  return log;
}

async function openLive(query = '?metric=cosine') {
  const page = await browser.context.newPage();
  const problems = watchPage(page);
  await page.goto(server.url + query);
  await page.waitForSelector(`${LIVE} .live-drop`);
  // The model loads on the first sign of interest in the panel.
  await page.hover(LIVE);
  await page.waitForSelector(`${LIVE}[data-state=ready], ${LIVE}[data-state=failed]`, { timeout: 120_000 });
  const state = await page.getAttribute(LIVE, 'data-state');
  assert.equal(state, 'ready', `live search failed to load: ${await page.textContent(`${LIVE} .live-error`)}`);
  return { page, problems };
}

const data = (page) => page.evaluate((sel) => ({ ...document.querySelector(sel).dataset }), LIVE);

/** Waits until search number n has been shown (results rendered, every thumbnail decoded). */
async function waitSearch(page, n) {
  await page.waitForFunction(
    ([sel, n]) => {
      const d = document.querySelector(sel).dataset;
      return d.searches === String(n) && d.state === 'ready';
    },
    [LIVE, n],
    { timeout: 60_000 },
  );
  await page.waitForFunction(() => [...document.querySelectorAll('.results-grid img, .query-img')].every((i) => i.complete && i.naturalWidth > 0));
}

async function waitError(page, errorsBefore) {
  await page.waitForFunction(
    ([sel, n]) => Number(document.querySelector(sel).dataset.errors ?? 0) > n && document.querySelector(sel).dataset.state === 'ready',
    [LIVE, errorsBefore],
    { timeout: 60_000 },
  );
  assert.ok(await page.locator(`${LIVE} .live-error`).isVisible(), 'the error message is visible');
  return (await page.textContent(`${LIVE} .live-error`)).trim();
}

const sha = (file) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

before(async () => {
  bundle = buildTinyBundle();
  ensureSiteBuilt();
  manifest = JSON.parse(fs.readFileSync(path.join(bundle.dir, 'manifest.json'), 'utf8'));
  assert.ok(manifest.browser_search, 'the e2e bundle must include browser search (mobilenet in the run)');
  ds = manifest.datasets.find((d) => manifest.browser_search.datasets.includes(d.id));
  index = readIndex(bundle.dir, ds.id);
  server = await startServer({ bundleDir: bundle.dir });
  browser = await launchBrowser();
  requests = recordRequests(browser.context);
});

after(async () => {
  await browser?.close();
  await server?.close();
});

describe('private live search', () => {
  const runs = [];
  let baseline = -1;

  test(`${N_UPLOADS} dataset images uploaded one after another each return themselves first (cosine ≤ ${MAX_SELF_DISTANCE}), with zero requests and no leaked tensors`, async () => {
    const { page, problems } = await openLive();
    const d0 = await data(page);
    assert.equal(d0.backend, 'wasm', 'wasm backend preferred');
    // Before any upload there is no preview: no empty image box with its alt text.
    assert.equal(await page.locator(`${LIVE} .live-preview`).isVisible(), false, 'the preview is hidden before an upload');
    assert.equal(await page.locator(`${LIVE} .live-error`).isVisible(), false, 'no error before an upload');
    baseline = Number(d0.baselineTensors);
    assert.ok(baseline > 0, `baseline tensor count ${d0.baselineTensors}`);
    // No pre-scrolling of the gallery: the panel itself must have every thumbnail in memory
    // before the first search (a small set), so that showing results fetches nothing.
    assert.equal(d0.thumbs, 'ready', 'all thumbnails are loaded when the panel says ready');
    assert.match(await page.textContent(`${LIVE} .live-privacy`), /Private: all \d+ thumbnails .* are loaded/);
    await waitQuiet(server); // the page's own start-up requests (first gallery screen) are over

    // Files with identical bytes (the harness adds a copy under an XSS-like name) are one image.
    const files = index.files.map((f) => path.join(bundle.imagesDir, f));
    const hashes = files.map(sha);
    const picks = [];
    for (let i = 0; picks.length < N_UPLOADS && i < files.length; i += Math.max(1, Math.floor(files.length / N_UPLOADS))) picks.push(i);
    for (let i = files.length - 1; picks.length < N_UPLOADS && i >= 0; i--) if (!picks.includes(i)) picks.push(i);
    assert.ok(picks.length >= N_UPLOADS, `need ${N_UPLOADS} images, the dataset has ${files.length}`);

    const failures = [];
    uploadStart = { browser: requests.length, server: server.log.length };
    for (const [n, id] of picks.entries()) {
      const selfIds = hashes.flatMap((h, j) => (h === hashes[id] ? [j] : []));
      const reqBefore = requests.length;
      const srvBefore = server.log.length;
      await page.setInputFiles(`${LIVE} #live-file`, files[id]);
      await waitSearch(page, n + 1);
      const d = await data(page);
      const [topId, topDist] = d.top.split(',')[0].split(':').map(Number);
      const shownId = Number(await page.getAttribute('.results-grid .result-btn >> nth=0', 'data-id'));
      const srcs = await page.$$eval('.results-grid img', (imgs) => imgs.map((i) => i.getAttribute('src')));
      if (!srcs.every((s) => s.startsWith('blob:'))) failures.push(`${index.files[id]}: result thumbnails not from memory: ${srcs.filter((s) => !s.startsWith('blob:')).join(' ')}`);
      const during = requests.slice(reqBefore).map((r) => r.url);
      const served = server.log.slice(srvBefore).map((e) => e.path);
      const run = { id, file: index.files[id], topId, topDist, shownId, latencyMs: Number(d.latencyMs), embedMs: Number(d.embedMs), numTensors: Number(d.numTensors), requests: during, served };
      runs.push(run);
      if (!selfIds.includes(topId) || !(topDist <= MAX_SELF_DISTANCE) || shownId !== topId) {
        failures.push(`${run.file} (id ${id}): top-1 is id ${topId} at cosine ${topDist} (page shows id ${shownId})`);
      }
    }
    // Anything fetched late (lazy images of the results, layout shifts revealing gallery items)
    // would arrive after the last result was drawn: wait, then read the logs once more.
    await new Promise((r) => setTimeout(r, 1000));
    afterUploads = {
      browser: requests.slice(uploadStart.browser).map((r) => r.url),
      server: server.log.slice(uploadStart.server).map((e) => e.path),
    };
    fs.writeFileSync(path.join(RESULTS, 'live-uploads.json'), JSON.stringify(runs, null, 1));
    const lat = runs.map((r) => r.latencyMs);
    process.stderr.write(`# live search: ${runs.length} uploads, upload → results median ${median(lat).toFixed(1)} ms (max ${Math.max(...lat).toFixed(1)}), embed median ${median(runs.map((r) => r.embedMs)).toFixed(1)} ms, worst self distance ${Math.max(...runs.map((r) => r.topDist)).toExponential(2)}\n`);
    assert.deepEqual(failures, [], `uploads that did not find themselves:\n${failures.join('\n')}`);
    assert.ok(await page.locator('.query-img').getAttribute('src').then((s) => s.startsWith('data:image/jpeg')), 'the query shows the uploaded image from memory');
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('after the model has loaded, every upload search made zero network requests', () => {
    assert.equal(runs.length, N_UPLOADS, 'the upload test ran');
    const noisy = runs.filter((r) => r.requests.length || r.served.length);
    assert.deepEqual(noisy.map((r) => `${r.file}: ${[...r.requests, ...r.served].join(' ')}`), []);
  });

  test('privacy: from the first upload on, through rendering every result, the host sees no request at all', () => {
    assert.ok(afterUploads, 'the upload test ran');
    assert.deepEqual(afterUploads.server, [], 'the server log after the first upload started');
    assert.deepEqual(afterUploads.browser, [], 'browser requests after the first upload started');
  });

  test(`${N_UPLOADS} searches in a row: tf.memory().numTensors is back to its baseline after each`, () => {
    assert.equal(runs.length, N_UPLOADS, 'the upload test ran');
    assert.deepEqual(runs.map((r) => r.numTensors), runs.map(() => baseline));
  });

  test('on reload the model comes from IndexedDB: no request for model.json or its shards', async () => {
    const { page: first } = await openLive(); // stores the model (already stored by the first test)
    await first.close();
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    const from = requests.length;
    const srvFrom = server.log.length;
    await page.goto(server.url + '?metric=cosine');
    await page.hover(LIVE);
    await page.waitForSelector(`${LIVE}[data-state=ready]`, { timeout: 120_000 });
    await page.reload();
    await page.hover(LIVE);
    await page.waitForSelector(`${LIVE}[data-state=ready]`, { timeout: 120_000 });
    const d = await data(page);
    assert.equal(d.modelSource, 'indexeddb');
    const model = requests.slice(from).map((r) => r.url).filter((u) => /\/tfjs\/|model\.json|shard/.test(u));
    const served = server.log.slice(srvFrom).map((e) => e.path).filter((p) => /\/tfjs\//.test(p));
    assert.deepEqual(model, [], 'no model request from the browser');
    assert.deepEqual(served, [], 'no model file served');
    assert.match(await page.textContent(`${LIVE} .live-status`), /from this browser’s cache/);
    // …and the cached model still finds a dataset image.
    const id = 7;
    await page.setInputFiles(`${LIVE} #live-file`, path.join(bundle.imagesDir, index.files[id]));
    await waitSearch(page, 1);
    const [topId, dist] = (await data(page)).top.split(',')[0].split(':').map(Number);
    assert.equal(topId, id);
    assert.ok(dist <= MAX_SELF_DISTANCE, `distance ${dist}`);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('a text file named .jpg, a truncated JPEG and a corrupt PNG give a clear visible error; the page keeps working', async () => {
    const { page, problems } = await openLive();
    const dir = path.join(RESULTS, 'live-bad');
    fs.mkdirSync(dir, { recursive: true });
    const text = path.join(dir, 'notes.jpg');
    fs.writeFileSync(text, 'These are my notes, not a picture.\nSecond line.\n');
    const jpg = fs.readFileSync(path.join(bundle.dir, 'datasets', ds.id, 'thumbs', '3.jpg'));
    assert.equal(jpg.readUInt16BE(0), 0xffd8, 'thumbnails are JPEGs');
    const truncated = path.join(dir, 'truncated.jpg');
    fs.writeFileSync(truncated, jpg.subarray(0, Math.floor(jpg.length * 0.6)));
    const png = fs.readFileSync(path.join(bundle.imagesDir, index.files[2]));
    const corrupt = path.join(dir, 'corrupt.png');
    const garbled = Buffer.from(png);
    for (let i = 40; i < garbled.length - 16; i++) garbled[i] = (i * 7919) & 255; // header and IEND intact
    fs.writeFileSync(corrupt, garbled);

    const cases = [
      [text, /“notes\.jpg” is not an image \(it looks like a text file\)/],
      [truncated, /“truncated\.jpg” cannot be used: .*truncated/],
      [corrupt, /“corrupt\.png” could not be decoded as an image/],
    ];
    let errors = 0;
    let searches = 0;
    for (const [file, re] of cases) {
      await page.setInputFiles(`${LIVE} #live-file`, file);
      const msg = await waitError(page, errors++);
      assert.match(msg, re);
      // The page keeps working: a good image right after the bad one is searched normally.
      const id = 4 + errors;
      await page.setInputFiles(`${LIVE} #live-file`, path.join(bundle.imagesDir, index.files[id]));
      await waitSearch(page, ++searches);
      assert.equal(Number((await data(page)).top.split(',')[0].split(':')[0]), id);
      assert.ok(await page.locator(`${LIVE} .live-error`).isHidden(), 'the error is cleared by the next good search');
      assert.equal(Number((await data(page)).numTensors), Number((await data(page)).baselineTensors));
    }
    await page.screenshot({ path: path.join(RESULTS, 'live-after-errors.png'), fullPage: true });
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('drag-and-drop and paste work like the file picker; a huge image is scaled down first', async () => {
    const { page, problems } = await openLive();
    const id = 9;
    const b64 = fs.readFileSync(path.join(bundle.imagesDir, index.files[id])).toString('base64');
    // A DataTransfer holding the image, as a real drag or clipboard would carry it (page CSP
    // forbids eval, so the builder is repeated inside each evaluate).
    await page.evaluate((b64) => {
      const u = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([u], 'dropped.png', { type: 'image/png' }));
      const zone = document.querySelector('#live-search .live-drop');
      zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, b64);
    await waitSearch(page, 1);
    assert.equal(Number((await data(page)).top.split(',')[0].split(':')[0]), id, 'drop');
    assert.match(await page.textContent('.query-file'), /dropped\.png/);
    await page.evaluate((b64) => {
      const u = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([u], 'pasted.png', { type: 'image/png' }));
      document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
    }, b64);
    await waitSearch(page, 2);
    assert.equal(Number((await data(page)).top.split(',')[0].split(':')[0]), id, 'paste');

    const huge = path.join(RESULTS, 'live-bad', 'huge.jpg');
    fs.mkdirSync(path.dirname(huge), { recursive: true });
    execFileSync(path.join(REPO, '.venv', 'bin', 'python'), ['-c',
      'import sys; from PIL import Image; Image.open(sys.argv[1]).convert("RGB").resize((4000, 3000)).save(sys.argv[2], quality=90)',
      path.join(bundle.imagesDir, index.files[id]), huge]);
    await page.setInputFiles(`${LIVE} #live-file`, huge);
    await waitSearch(page, 3);
    const d = await data(page);
    assert.equal(d.size, '400x300', 'box-downscaled by k = 10 (≤ 2× the input, even over 3,136 px) before becoming a tensor');
    assert.match(await page.textContent('.query-file'), /scaled down from 4000×3000/);
    assert.equal(Number(d.numTensors), Number(d.baselineTensors));
    // Layer switch re-searches the same embedding in another layer's features.
    const other = manifest.browser_search.outputs.find((o) => o.layer !== manifest.browser_search.default_layer);
    await page.selectOption(`${LIVE} #live-layer`, other.layer);
    await waitSearch(page, 4);
    assert.match(await page.textContent('.query-file'), new RegExp(other.layer));
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('a layer switch after an upload gives exactly what an upload in that layer gives (the upload embeds the searched output first, the rest after)', async () => {
    // GeM pooling: not the first pooling of a layer, and the costliest to compute.
    const bs = manifest.browser_search;
    const layers = [...new Set(bs.outputs.map((o) => o.layer))];
    assert.ok(layers.length >= 2 && bs.outputs.some((o) => o.pooling === 'gem'), 'the e2e model has ≥ 2 layers with gem pooling');
    const [first, last] = [layers[0], layers.at(-1)];
    const file = path.join(bundle.imagesDir, index.files[17]);
    const tops = {};
    for (const [start, then] of [[last, first], [first, last]]) {
      const { page, problems } = await openLive('?metric=cosine&pooling=gem');
      await page.selectOption(`${LIVE} #live-layer`, start);
      await page.setInputFiles(`${LIVE} #live-file`, file);
      await waitSearch(page, 1);
      const up = await data(page);
      assert.ok(Number(up.heldTensors) >= 1, `the worker keeps the upload's model input for the other outputs (held ${up.heldTensors})`);
      assert.equal(Number(up.numTensors), Number(up.baselineTensors));
      (tops[`upload ${start}`] ??= []).push(up.top);
      await page.selectOption(`${LIVE} #live-layer`, then); // at once: the background pass may not be done
      await waitSearch(page, 2);
      const sw = await data(page);
      assert.equal(Number(sw.numTensors), Number(sw.baselineTensors));
      (tops[`switch ${then}`] ??= []).push(sw.top);
      assert.match(await page.textContent('.query-file'), new RegExp(`${then} \\(gem pooling\\)`));
      assert.deepEqual(problems, []);
      await page.close();
    }
    assert.equal(tops[`switch ${first}`][0], tops[`upload ${first}`][0], `${first}: switched to = uploaded in (ids and distances)`);
    assert.equal(tops[`switch ${last}`][0], tops[`upload ${last}`][0], `${last}: switched to = uploaded in (ids and distances)`);
    assert.equal(Number(tops[`upload ${first}`][0].split(':')[0]), 17);
  });

  test('a large dataset: the panel says what the host can see, loads every thumbnail on request, then uploads fetch nothing', async () => {
    // 6,000 images (> the 8 MB estimate, and > 5,000: format 4 has no per-image thumbnail files,
    // only sheets and packs): the tiny bundle scaled up, with its browser model and its browser
    // features repeated cyclically (image i has the features of tiny image i mod N).
    const n = 6000;
    const big = deriveScaledBundle(bundle.dir, path.join(RESULTS, 'live-large-bundle'), n);
    const bs = manifest.browser_search;
    fs.writeFileSync(path.join(big.dir, 'manifest.json'), JSON.stringify({ ...big.manifest, browser_search: { ...bs, datasets: [big.dataset] } }));
    fs.cpSync(path.join(bundle.dir, path.dirname(bs.model_url)), path.join(big.dir, path.dirname(bs.model_url)), { recursive: true });
    for (const o of bs.outputs) {
      const rel = (d) => manifest.files.browser_features.replace('{dataset}', d).replace('{layer}', o.layer).replace('{pooling}', o.pooling).replace('{encoding}', 'float32'); // the base bundle is small: float32
      const f = fs.readFileSync(path.join(bundle.dir, rel(ds.id)));
      const src = new Float32Array(f.buffer, f.byteOffset, f.length / 4);
      const out = new Float32Array(n * o.dim);
      for (let i = 0; i < n; i++) out.set(src.subarray((i % ds.size) * o.dim, ((i % ds.size) + 1) * o.dim), i * o.dim);
      fs.mkdirSync(path.dirname(path.join(big.dir, rel(big.dataset))), { recursive: true });
      fs.writeFileSync(path.join(big.dir, rel(big.dataset)), out);
    }
    const bigServer = await startServer({ bundleDir: big.dir });
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    try {
      await page.goto(bigServer.url + '?metric=cosine');
      await page.hover(LIVE);
      await page.waitForSelector(`${LIVE}[data-state=ready]`, { timeout: 120_000 });
      assert.equal(await page.getAttribute(LIVE, 'data-thumbs'), 'ask');
      assert.equal(big.manifest.files.thumbnail, undefined, 'no per-image thumbnails above 5,000 images');
      assert.match(await page.textContent(`${LIVE} .live-privacy`), /has 6,000 images .* the host can see which dataset images are the nearest neighbours of your image/);
      const button = page.locator(`${LIVE} .live-load-thumbs`);
      assert.match(await button.textContent(), /Load all 6,000 thumbnails first \(≈ 36\.0 MB\)/);
      // Whole packs (status 200) are what the private search loads: the gallery draws sheets
      // (.jpg) and a non-private result list takes single images from packs by Range (206).
      const wholePack = (e) => /\/thumbs\/large\/\d+\.jpgs$/.test(e.path) && e.status === 200;
      const packs = Math.ceil(n / (manifest.thumbnails.grid * manifest.thumbnails.grid));
      assert.equal(bigServer.log.filter(wholePack).length, 0, 'no whole pack before the button');
      await button.click();
      await page.waitForSelector(`${LIVE}[data-thumbs=ready], ${LIVE}[data-thumbs=failed]`, { timeout: 120_000 });
      assert.match(await page.textContent(`${LIVE} .live-privacy`), /Private: all 6,000 thumbnails/);
      const packPaths = bigServer.log.filter(wholePack).map((e) => e.path);
      assert.equal(packPaths.length, packs, `each of the ${packs} packs fetched once: ${packPaths.length} requests`);
      assert.equal(new Set(packPaths).size, packs, 'every pack fetched');
      assert.ok(await button.isHidden(), 'the button goes once they are loaded');
      await waitQuiet(bigServer);
      const from = bigServer.log.length;
      const id = 5;
      await page.setInputFiles(`${LIVE} #live-file`, path.join(bundle.imagesDir, index.files[id]));
      await waitSearch(page, 1);
      assert.equal(Number((await data(page)).top.split(',')[0].split(':')[0]), id, 'ties (the copies) go to the smaller id');
      const srcs = await page.$$eval('.results-grid img', (imgs) => imgs.map((i) => i.getAttribute('src')));
      assert.ok(srcs.length > 0 && srcs.every((x) => x.startsWith('blob:')), `result thumbnails from memory: ${srcs.join(' ')}`);
      // ...and they are the images themselves: decoded, 96-px pack cells, not empty tiles
      const sizes = await page.$$eval('.results-grid img', (imgs) => Promise.all(imgs.map((i) => i.decode().then(() => [i.naturalWidth, i.naturalHeight], () => [0, 0]))));
      assert.ok(sizes.every(([w, h]) => w > 0 && h > 0), `result thumbnails decode: ${JSON.stringify(sizes)}`);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(bigServer.log.slice(from).map((e) => e.path), [], 'no request after the upload');
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
      await bigServer.close();
    }
  });
});
