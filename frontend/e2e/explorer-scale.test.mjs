// The explorer at N=5,000 (synthetic bundle in format 4, e2e/scaled-bundle.mjs): a virtualized
// gallery (bounded DOM, jump to class), one query = a few hundred bytes of neighbours (HTTP Range),
// the WebGL map with pan/zoom showing thumbnails when zoomed in, click-to-query from the map.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { RESULTS, buildTinyBundle, ensureSiteBuilt, launchBrowser, startServer, waitQuiet, watchPage, readIndex } from './harness.mjs';
import { deriveScaledBundle } from './scaled-bundle.mjs';

const N = 5000;
let browser, server, bundle, index;
before(async () => {
  const tiny = buildTinyBundle();
  ensureSiteBuilt();
  bundle = deriveScaledBundle(tiny.dir, path.join(RESULTS, `scaled-fe-${N}`), N);
  index = readIndex(bundle.dir, bundle.dataset);
  server = await startServer({ bundleDir: bundle.dir });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.close();
});

const isData = (e) => e.path.startsWith('/data/') && !e.path.includes('/thumbs/');

test('gallery: only visible rows in the DOM, scrolling and jump to class, click-to-query costs ≤ 1 KB of data', async () => {
  const page = await browser.context.newPage();
  const problems = watchPage(page);
  await page.goto(server.url + '?q=0');
  await page.waitForSelector('.results-grid .result');
  await page.waitForSelector('.gal-item');
  const firstResultMs = await page.evaluate(() => performance.getEntriesByName('first-result')[0]?.startTime ?? -1);
  const dom = () => page.evaluate(() => ({ items: document.querySelectorAll('.gal-item').length, nodes: document.querySelectorAll('*').length }));
  const top = await dom();
  assert.ok(top.items > 0 && top.items <= 400, `gallery items in the DOM: ${top.items} of ${N}`);
  assert.ok(top.nodes < 3000, `DOM nodes: ${top.nodes}`);
  // Scroll to the middle: the rows there are rendered, the DOM stays bounded.
  await page.evaluate(() => { const g = document.querySelector('.gal-scroll'); g.scrollTop = g.scrollHeight / 2; });
  await page.waitForFunction((n) => [...document.querySelectorAll('.gal-item')].some((b) => Math.abs(Number(b.dataset.id) - n / 2) < 200), N);
  const mid = await dom();
  const pos = await page.textContent('.gal-pos');
  const [a, b] = (/images ([\d,]+)–([\d,]+) of 5,000/.exec(pos) ?? []).slice(1).map((x) => Number(x.replace(/,/g, '')));
  assert.ok(a > 1000 && b < 4000 && a < b, `position label: ${pos}`);
  assert.ok(mid.items <= 400 && mid.nodes < 3000, JSON.stringify(mid));
  // Jump to class: the first image of that class is shown at the top and focused.
  const c = 3;
  await page.selectOption('.gal-jump', String(c));
  const first = index.labels.indexOf(c);
  await page.waitForFunction((id) => document.activeElement?.getAttribute('data-id') === String(id), first);
  const inView = await page.evaluate((id) => {
    const g = document.querySelector('.gal-scroll').getBoundingClientRect();
    const b = document.querySelector(`.gal-item[data-id="${id}"]`).getBoundingClientRect();
    return b.top >= g.top - 1 && b.bottom <= g.bottom + 1;
  }, first);
  assert.ok(inView, 'the class’s first image is visible');
  // Click-to-query from the gallery: the new query's neighbours are one row (Range), no whole file.
  await waitQuiet(server);
  const from = server.log.length;
  await page.click(`.gal-item[data-id="${first}"]`);
  await page.waitForFunction((id) => new URL(location.href).searchParams.get('q') === String(id), first);
  await page.waitForFunction((id) => document.querySelector('.query-img')?.getAttribute('alt')?.includes(`img_${String(id).padStart(5, '0')}`), first);
  await waitQuiet(server);
  const isNames = (e) => /\/names\/\d+\.json$/.test(e.path);
  const data = server.log.slice(from).filter((e) => isData(e) && !isNames(e));
  const bytes = data.reduce((s, e) => s + e.bytes, 0);
  assert.ok(data.every((e) => e.status === 206), JSON.stringify(data));
  assert.ok(bytes <= 1024, `neighbour bytes for one query: ${bytes}`);
  // The query's and results' names: at most one names page each (16 images), ≤ 20 KB in all.
  const names = server.log.slice(from).filter(isNames);
  const namesBytes = names.reduce((s, e) => s + e.bytes, 0);
  assert.ok(names.length <= 16 && namesBytes <= 20_000, `${names.length} names pages, ${namesBytes} bytes for one query`);
  const sheets = server.log.filter((e) => e.path.includes('/thumbs/'));
  assert.ok(sheets.every((e) => /\/thumbs\/(small|large)\/\d+\.jpgs?$/.test(e.path)), 'thumbnails come from sprite sheets and packs');
  // The query's and results' images: single JPEGs by Range from the packs, not whole sheets.
  const picks = server.log.slice(from).filter((e) => e.path.endsWith('.jpgs'));
  assert.ok(picks.length > 0 && picks.every((e) => e.status === 206), JSON.stringify(picks.slice(0, 3)));
  const queryThumbBytes = server.bytes(from) - bytes;
  assert.ok(queryThumbBytes < 150_000, `thumbnail bytes for one new query: ${queryThumbBytes}`);
  fs.writeFileSync(path.join(RESULTS, `gallery-${N}.json`), JSON.stringify({ firstResultMs, domTop: top, domMiddle: mid, queryDataBytes: bytes, queryNamesBytes: namesBytes, queryNamesPages: names.length, queryThumbBytes, queryFiles: data, sheetsFetched: new Set(sheets.map((e) => e.path)).size }, null, 1));
  await page.screenshot({ path: path.join(RESULTS, `gallery-${N}.png`) });
  assert.deepEqual(problems, []);
  await page.close();
});

test('first screen: labels whole, names only from the pages of the images it shows, never "undefined"', async () => {
  const page = await browser.context.newPage();
  const problems = watchPage(page);
  const q = 2600; // names page 81; the gallery's first rows are in pages 0…8
  const from = server.log.length;
  await page.goto(server.url + `?q=${q}`);
  await page.waitForSelector('.results-grid .result');
  await page.waitForSelector('.gal-item');
  await page.waitForFunction((f) => document.querySelector('.query-file')?.textContent === f, index.files[q]);
  await waitQuiet(server);
  const log = server.log.slice(from);
  const per = bundle.manifest.datasets[0].names_page;
  const fetched = log.filter((e) => /\/names\/\d+\.json$/.test(e.path)).map((e) => Number(/(\d+)\.json$/.exec(e.path)[1]));
  const shown = await page.evaluate(() => [...document.querySelectorAll('.gal-item, .result-btn')].map((b) => Number(b.dataset.id)));
  const needed = new Set([q, ...shown].map((id) => Math.floor(id / per)));
  assert.equal(new Set(fetched).size, fetched.length, `each names page once: ${fetched}`);
  assert.ok(fetched.every((p) => needed.has(p)), `names pages fetched ${fetched}, pages of the images shown ${[...needed]}`);
  assert.ok(fetched.includes(0) && fetched.includes(Math.floor(q / per)) && fetched.length < Math.ceil(N / per), `${fetched.length} of ${Math.ceil(N / per)} names pages`);
  const labels = log.filter((e) => e.path.endsWith('/labels.bin'));
  assert.deepEqual(labels.map((e) => e.bytes), [N], 'labels.bin once, one byte per image (uint8)');
  assert.ok(!log.some((e) => e.path.endsWith('/index.json')), 'no whole index');
  // Names are filled in where they are shown: no "undefined" in text or accessible names.
  const texts = await page.evaluate(() => [document.body.innerText, ...[...document.querySelectorAll('[title], [aria-label], img[alt]')].map((e) => `${e.getAttribute('title')} ${e.getAttribute('aria-label')} ${e.getAttribute('alt')}`)].join('\n'));
  assert.ok(!/undefined/.test(texts), 'no "undefined" shown');
  const [tileName, resultName] = await page.evaluate(() => [document.querySelector('.gal-item[data-id="0"]')?.getAttribute('title'), document.querySelector('.result-btn')?.getAttribute('title')]);
  assert.equal(tileName, `${index.files[0]} (${bundle.manifest.datasets[0].classes[index.labels[0]]})`);
  assert.ok(resultName.startsWith(index.files[await page.evaluate(() => Number(document.querySelector('.result-btn').dataset.id))]), resultName);
  const data = log.filter(isData);
  fs.writeFileSync(path.join(RESULTS, `first-screen-${N}.json`), JSON.stringify({ dataBytes: data.reduce((s, e) => s + e.bytes, 0), namesPages: fetched.length, namesBytes: log.filter((e) => e.path.includes('/names/')).reduce((s, e) => s + e.bytes, 0), labelsBytes: labels[0].bytes, dataFiles: data.map((e) => `${e.path} ${e.status} ${e.bytes}`) }, null, 1));
  assert.deepEqual(problems, []);
  await page.close();
});

/** Pixels of the WebGL map: the number of distinct painted colours (thumbnails have many). */
const distinctColours = (page) => page.evaluate(() => {
  const c = document.querySelector('canvas.umap-canvas');
  const copy = document.createElement('canvas');
  copy.width = c.width;
  copy.height = c.height;
  const g = copy.getContext('2d');
  g.drawImage(c, 0, 0);
  const px = g.getImageData(0, 0, c.width, c.height).data;
  const seen = new Set();
  for (let i = 0; i < px.length; i += 4) if (px[i + 3] > 0) seen.add((px[i] << 24) | (px[i + 1] << 16) | (px[i + 2] << 8) | px[i + 3]);
  return seen.size;
});

test('map: WebGL points, wheel zoom shows thumbnails from the sheets, drag pans, click on a thumbnail queries it', async () => {
  const page = await browser.context.newPage();
  const problems = watchPage(page);
  await page.setViewportSize({ width: 1280, height: 1100 });
  await page.goto(server.url + '?view=map&q=0');
  await page.waitForSelector(`canvas.umap-canvas[data-points="${N}"]`);
  assert.equal(await page.getAttribute('canvas.umap-canvas', 'data-thumbs'), '0', 'no thumbnails at the whole-map zoom');
  const coloursFar = await distinctColours(page);
  const box = await page.locator('canvas.umap-canvas').boundingBox();
  // Zoom in with the wheel on a point.
  const xy = new Float32Array(fs.readFileSync(path.join(bundle.dir, 'datasets', bundle.dataset, bundle.manifest.models[0].id, bundle.manifest.models[0].layers.at(-1).name, bundle.manifest.poolings[0].id, 'umap.f32')).buffer.slice(0));
  const screenOf = async (id) => {
    const [s, ox, oy] = (await page.getAttribute('canvas.umap-canvas', 'data-transform')).split(',').map(Number);
    return [box.x + ox + xy[2 * id] * s, box.y + oy + (1 - xy[2 * id + 1]) * s];
  };
  const target = 1234;
  // Wheel in on the target until thumbnails appear (sheets load lazily: wait for them each step).
  for (let i = 0; i < 30 && Number(await page.getAttribute('canvas.umap-canvas', 'data-thumbs')) < 20; i++) {
    const [x, y] = await screenOf(target);
    await page.mouse.move(x, y);
    await page.mouse.wheel(0, -200);
    await page.waitForTimeout(60);
    await waitQuiet(server, 150);
  }
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const zoom = Number(await page.getAttribute('canvas.umap-canvas', 'data-zoom'));
  const thumbs = Number(await page.getAttribute('canvas.umap-canvas', 'data-thumbs'));
  const coloursNear = await distinctColours(page);
  assert.ok(thumbs >= 20 && zoom < 50, `${thumbs} thumbnails at zoom ${zoom}`);
  assert.ok(coloursNear > 4 * coloursFar && coloursNear > 1000, `distinct colours: ${coloursFar} whole map, ${coloursNear} zoomed (${thumbs} thumbnails)`);
  assert.ok(server.log.some((e) => /\/thumbs\/(small|large)\/\d+\.jpg$/.test(e.path)), 'sheets fetched');
  await page.screenshot({ path: path.join(RESULTS, `map-zoomed-${N}.png`) });
  // Drag pans (the view moves, the query stays).
  const before = await page.getAttribute('canvas.umap-canvas', 'data-transform');
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 + 80, box.y + box.height / 2 + 30, { steps: 5 });
  await page.mouse.up();
  await page.waitForFunction((b) => document.querySelector('canvas.umap-canvas').dataset.transform !== b, before);
  assert.equal(new URL(page.url()).searchParams.get('q'), '0', 'a drag is not a click');
  // Click the target's thumbnail: it becomes the query.
  const [x, y] = await screenOf(target);
  await page.mouse.move(x, y);
  await page.waitForSelector('.umap-tip:not([hidden])');
  await page.mouse.click(x, y);
  await page.waitForFunction(() => new URL(location.href).searchParams.get('q') !== '0');
  const q = Number(new URL(page.url()).searchParams.get('q'));
  const [qx, qy] = await screenOf(q);
  assert.ok(Math.hypot(qx - x, qy - y) < 1, `clicked ${target}, got ${q}`);
  fs.writeFileSync(path.join(RESULTS, `map-zoomed-${N}.json`), JSON.stringify({ zoom, thumbs, coloursFar, coloursNear }, null, 1));
  assert.deepEqual(problems, []);
  await page.close();
});
