// End-to-end tests of the explorer in headless Chromium, against a bundle built by the engine.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RESULTS, XSS_NAME, closeAll, openTinyBundle, waitQuiet, watchPage } from './harness.mjs';

const PLOT_PAD = 16; // src/views/map.ts
let bundle, server, browser, manifest, index, ds;
const shot = (page, name) => page.screenshot({ path: path.join(RESULTS, `${name}.png`), fullPage: true });

async function openPage(query = '') {
  const page = await browser.context.newPage();
  const problems = watchPage(page);
  await page.goto(server.url + query);
  return { page, problems };
}

/** The map of the first model's last layer with image 0 as the query, drawn; and that layer's UMAP coordinates. */
async function openMap() {
  const model = manifest.models[0];
  const layer = model.layers[model.layers.length - 1].name;
  const { page, problems } = await openPage(`?view=map&q=0&model=${model.id}&layer=${layer}`);
  await page.waitForSelector('canvas.umap-canvas[data-points]');
  const buf = fs.readFileSync(path.join(bundle.dir, 'datasets', ds.id, model.id, layer, manifest.poolings[0].id, 'umap.f32'));
  return { page, problems, xy: new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4) };
}

async function distances(page) {
  return page.$$eval('.results-grid .dist', (els) => els.map((e) => e.textContent));
}

async function waitResults(page, notQuery) {
  await page.waitForFunction((prev) => {
    const items = document.querySelectorAll('.results-grid .result');
    return items.length > 0 && new URL(location.href).searchParams.get('q') !== prev;
  }, notQuery ?? '__none__');
}

before(async () => {
  ({ bundle, manifest, ds, index, server, browser } = await openTinyBundle());
});

after(() => closeAll({ browser, server }));

describe('explorer', () => {
  test('first screen: loads without console errors, shows k results and measures what it fetched', async () => {
    server.reset();
    const { page, problems } = await openPage();
    await page.waitForSelector('.results-grid .result');
    // All result thumbnails decoded: the first result is really "shown".
    await page.waitForFunction(() => [...document.querySelectorAll('.results-grid img')].every((i) => i.complete && i.naturalWidth > 0));
    const firstResultMs = await page.evaluate(() => performance.getEntriesByName('first-result')[0]?.startTime ?? -1);
    const bytes = server.bytes();
    // No layout jumps while data arrives: cumulative layout shift of the load (buffered entries).
    const cls = await page.evaluate(() => new Promise((resolve) => {
      let sum = 0;
      new PerformanceObserver((list) => { for (const e of list.getEntries()) if (!e.hadRecentInput) sum += e.value; }).observe({ type: 'layout-shift', buffered: true });
      setTimeout(() => resolve(sum), 200);
    }));
    assert.ok(cls < 0.1, `cumulative layout shift ${cls}`);
    const files = server.log.map((e) => `${e.path} ${e.bytes}`);
    assert.equal(await page.locator('.results-grid .result').count(), manifest.k);
    // The page marks its first result; how soon is measured by bench/bench_explorer_scale.mjs
    // (speed is measured in benchmarks, never asserted in timed tests), only printed below.
    assert.ok(firstResultMs > 0, 'the page set its first-result mark');
    assert.ok(await page.locator('.banner').isVisible(), 'random-weights banner');
    assert.match(await page.locator('.banner').textContent(), /random/);
    // Gallery thumbnails load when scrolled near: scroll through so the full-page shot shows them.
    await page.locator('.gallery').scrollIntoViewIfNeeded();
    await page.waitForFunction(() => [...document.querySelectorAll('.gal-item img')].every((i) => i.complete && i.naturalWidth > 0));
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, 'search');
    // Give lazy gallery images and async work a moment, then check nothing logged an error.
    await page.waitForTimeout(300);
    assert.deepEqual(problems, []);
    fs.writeFileSync(path.join(RESULTS, 'first-load.json'), JSON.stringify({ firstResultMs, bytes, cumulativeLayoutShift: cls, files }, null, 1));
    process.stderr.write(`# first result ${firstResultMs.toFixed(0)} ms after navigation, ${bytes} bytes fetched (${files.length} files), CLS ${cls.toFixed(3)}\n`);
    await page.close();
  });

  test('clicking a gallery image makes it the query and shows k results', async () => {
    const { page, problems } = await openPage('?q=0');
    await page.waitForSelector('.results-grid .result');
    const target = ds.size - 1;
    await page.click(`.gal-item[data-id="${target}"]`);
    await waitResults(page, '0');
    assert.equal(new URL(page.url()).searchParams.get('q'), String(target));
    assert.equal(await page.locator('.results-grid .result').count(), manifest.k);
    assert.equal(await page.locator('.query-file').textContent(), index.files[target]);
    const ids = await page.$$eval('.results-grid .result-btn', (els) => els.map((e) => Number(e.getAttribute('data-id'))));
    assert.ok(!ids.includes(target), 'the query is not among its own results');
    // The score box counts same-class results exactly like the labels say.
    const same = ids.filter((i) => index.labels[i] === index.labels[target]).length;
    assert.match(await page.locator('.score-same').textContent(), new RegExp(`^${same} of ${manifest.score.top}`));
    assert.equal(await page.locator('.result-other').count(), manifest.k - same);
    // Back button returns to the previous query.
    await page.goBack();
    await page.waitForFunction(() => new URL(location.href).searchParams.get('q') === '0');
    await page.waitForFunction((f) => document.querySelector('.query-file')?.textContent === f, index.files[0]);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('changing the metric changes the distances, and every metric draws non-empty bars', async () => {
    const { page, problems } = await openPage('?q=3');
    await page.waitForSelector('.results-grid .result');
    const seen = new Map();
    for (const m of manifest.metrics) {
      const before = await distances(page);
      await page.selectOption('#sel-metric', m.id);
      await page.waitForFunction((id) => new URL(location.href).searchParams.get('metric') === id, m.id);
      if (seen.size > 0) await page.waitForFunction((prev) => JSON.stringify([...document.querySelectorAll('.results-grid .dist')].map((e) => e.textContent)) !== prev, JSON.stringify(before));
      const d = await distances(page);
      assert.equal(d.length, manifest.k, m.id);
      const widths = await page.$$eval('.results-grid .bar-fill', (els) => els.map((e) => e.getBoundingClientRect().width));
      assert.equal(widths.length, manifest.k);
      assert.ok(widths.every((w) => w > 1), `${m.id}: every bar is visible (${widths.join(', ')})`);
      const values = d.map(Number);
      assert.ok(values.every((v, i) => i === 0 || v >= values[i - 1]), `${m.id}: ascending distances ${d}`);
      assert.ok(widths[0] >= Math.max(...widths) - 0.5, `${m.id}: the nearest result has the longest bar`);
      seen.set(m.id, d.join(','));
    }
    assert.equal(new Set(seen.values()).size, manifest.metrics.length, 'each metric shows different distances');
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('UMAP draws one point per image and clicking a point changes the query', async () => {
    const { page, problems, xy } = await openMap();
    assert.equal(Number(await page.getAttribute('canvas.umap-canvas', 'data-points')), ds.size);
    // Every image's position is painted (a non-transparent pixel at its centre).
    const painted = await page.evaluate(({ xy, pad }) => {
      const c = document.querySelector('canvas.umap-canvas');
      const r = c.getBoundingClientRect();
      const s = Math.min(r.width, r.height) - 2 * pad;
      const ox = (r.width - s) / 2, oy = (r.height - s) / 2, dpr = c.width / r.width;
      // The map is WebGL (drawn with preserveDrawingBuffer): copy it into a 2-D canvas to read pixels.
      const copy = document.createElement('canvas');
      copy.width = c.width;
      copy.height = c.height;
      const g = copy.getContext('2d');
      g.drawImage(c, 0, 0);
      return Array.from({ length: xy.length / 2 }, (_, i) => {
        const px = Math.round((ox + xy[2 * i] * s) * dpr), py = Math.round((oy + (1 - xy[2 * i + 1]) * s) * dpr);
        return g.getImageData(px, py, 1, 1).data[3] > 0;
      });
    }, { xy: Array.from(xy), pad: PLOT_PAD });
    assert.equal(painted.filter(Boolean).length, ds.size);
    await shot(page, 'map');
    // Click the image farthest from the query's spot (so it is not hidden under the query ring).
    let target = 1, far = -1;
    for (let i = 1; i < ds.size; i++) {
      const d = (xy[2 * i] - xy[0]) ** 2 + (xy[2 * i + 1] - xy[1]) ** 2;
      if (d > far) { far = d; target = i; }
    }
    // Mouse events need the point inside the viewport: make the whole canvas fit (wherever UMAP put it).
    await page.setViewportSize({ width: 1280, height: 1600 });
    await page.waitForSelector('canvas.umap-canvas[data-points]');
    const box = await page.locator('canvas.umap-canvas').boundingBox();
    assert.ok(box.y + box.height <= 1600, `canvas fits the viewport: ${JSON.stringify(box)}`);
    const s = Math.min(box.width, box.height) - 2 * PLOT_PAD;
    const x = box.x + (box.width - s) / 2 + xy[2 * target] * s;
    const y = box.y + (box.height - s) / 2 + (1 - xy[2 * target + 1]) * s;
    await page.mouse.move(x, y);
    await page.waitForSelector('.umap-tip:not([hidden])');
    const tipFile = await page.locator('.umap-tip .tip-file').textContent();
    await shot(page, 'map-hover');
    await page.mouse.click(x, y);
    await page.waitForFunction(() => new URL(location.href).searchParams.get('q') !== '0');
    const q = Number(new URL(page.url()).searchParams.get('q'));
    assert.equal(index.files[q], tipFile, 'the clicked point is the hovered one');
    const dx = xy[2 * q] - xy[2 * target], dy = xy[2 * q + 1] - xy[2 * target + 1];
    assert.ok(Math.hypot(dx, dy) * s < 10, 'clicked point is where the map draws it');
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('compare view: per-layer, per-pooling and per-model scores, and one heatmap cell per model × layer', async () => {
    const { page, problems } = await openPage('?view=compare&q=2');
    await page.waitForSelector('.heatmap .heat-cell');
    await page.waitForSelector('.cmp-query .score-list');
    const configs = manifest.models.reduce((s, m) => s + m.layers.length, 0);
    assert.equal(await page.locator('.heatmap .heat-cell').count(), configs);
    assert.equal(await page.locator('.heatmap .heat-cell.best').count(), 1);
    const cur = manifest.models[0];
    const rows = page.locator('.cmp-query .score-list').first().locator('.score-row');
    assert.equal(await rows.count(), cur.layers.length);
    const poolingRows = page.locator('.cmp-query .score-list').nth(1).locator('.score-row');
    assert.equal(await poolingRows.count(), manifest.poolings.length);
    assert.equal(await page.locator('.cmp-query .score-list').nth(2).locator('.score-row').count(), manifest.models.length);
    // The per-layer and per-pooling values equal the stored scores (u8 / scale) of image 2: its row
    // [pooling][configuration] of its scores block.
    const block = Math.floor(2 / ds.scores_block);
    const u8 = fs.readFileSync(path.join(bundle.dir, 'datasets', ds.id, 'scores', 'class', 'cosine', `${block}.u8`));
    const perQuery = manifest.poolings.length * configs;
    const row = u8.subarray((2 - block * ds.scores_block) * perQuery, (3 - block * ds.scores_block) * perQuery);
    const layerPos = cur.layers.length - 1;
    assert.equal(await rows.nth(layerPos).locator('.score-val').textContent(), (row[layerPos] / ds.score.scale).toFixed(2));
    for (let pi = 0; pi < manifest.poolings.length; pi++) {
      assert.equal(await poolingRows.nth(pi).locator('.score-val').textContent(), (row[pi * configs + layerPos] / ds.score.scale).toFixed(2));
    }
    // The best cell matches summary/class/cosine.json's maximum for the current (first) pooling.
    const summary = JSON.parse(fs.readFileSync(path.join(bundle.dir, 'datasets', ds.id, 'summary', 'class', 'cosine.json'), 'utf8'));
    const best = Math.max(...summary.search_score[0].flat());
    assert.equal(await page.locator('.score-list-pooling-board .score-row').count(), manifest.poolings.length);
    assert.match(await page.locator('.heat-cell.best').textContent(), new RegExp(best.toFixed(2).replace('.', '\\.')));
    await shot(page, 'compare');
    // Clicking a cell switches the configuration.
    const last = manifest.models[manifest.models.length - 1];
    await page.click(`.heat-cell[data-model="${last.id}"][data-layer="${last.layers[0].name}"]`);
    await page.waitForFunction((id) => new URL(location.href).searchParams.get('model') === id, last.id);
    assert.equal(await page.inputValue('#sel-model'), last.id);
    assert.equal(await page.inputValue('#sel-layer'), last.layers[0].name);
    assert.equal(await page.locator('.heat-cell.current').getAttribute('data-model'), last.id);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test(`a file named ${XSS_NAME} is shown as text and runs nothing`, async () => {
    const id = index.files.findIndex((f) => f.endsWith(XSS_NAME));
    assert.ok(id >= 0, 'the engine kept the file');
    const { page, problems } = await openPage(`?q=${id}`);
    await page.waitForSelector('.results-grid .result');
    await page.waitForFunction((f) => document.querySelector('.query-file')?.textContent === f, index.files[id]);
    assert.equal(await page.locator('img[src="x"]').count(), 0, 'no element was created from the name');
    assert.match(await page.locator(`.gal-item[data-id="${id}"]`).getAttribute('aria-label'), /<img src=x onerror=alert\(1\)>\.png/);
    await page.click('#tab-map');
    await page.waitForSelector('.map-query');
    assert.ok((await page.locator('.map-query').textContent()).includes(XSS_NAME));
    await page.waitForTimeout(300);
    assert.equal(await page.locator('img[src="x"]').count(), 0);
    assert.deepEqual(problems, [], 'no dialog, no error');
    await page.close();
  });

  test('keyboard: tabs with arrow keys, gallery with arrows + Enter', async () => {
    const { page, problems } = await openPage('?q=0');
    await page.waitForSelector('.results-grid .result');
    await page.focus('.gal-item[data-id="0"]');
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('q') === '1');
    await page.focus('#tab-search');
    await page.keyboard.press('ArrowRight');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('view') === 'map');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'tab-map');
    // The map: focus it, step to image 3 with the arrow keys, Enter makes it the query.
    await page.waitForSelector('canvas.umap-canvas[data-points]');
    await page.focus('canvas.umap-canvas');
    for (let i = 0; i < 4; i++) await page.keyboard.press('ArrowRight');
    assert.equal(await page.locator('.umap-tip .tip-file').textContent(), index.files[3]);
    await page.waitForFunction((f) => document.querySelector('.view-map p[aria-live]')?.textContent === f, `4 of ${ds.size}: ${ds.classes[index.labels[3]]}, ${index.files[3]}`);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('q') === '3');
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('map keyboard: +/− zoom about the selection, ←/→ pan to the selected point, Shift+arrows pan', async () => {
    const { page, problems, xy } = await openMap();
    const canvas = page.locator('canvas.umap-canvas');
    await canvas.scrollIntoViewIfNeeded();
    await page.focus('canvas.umap-canvas');
    const drawn = () => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const transform = async () => (await canvas.getAttribute('data-transform')).split(',').map(Number);
    /** Image i is drawn inside the map's canvas and inside the browser's viewport. */
    const assertInView = async (i, when) => {
      await drawn();
      const [s, ox, oy] = await transform();
      const box = await canvas.boundingBox();
      const vp = page.viewportSize();
      const x = box.x + ox + xy[2 * i] * s, y = box.y + oy + (1 - xy[2 * i + 1]) * s;
      const [left, top, right, bottom] = [Math.max(0, box.x), Math.max(0, box.y), Math.min(vp.width, box.x + box.width), Math.min(vp.height, box.y + box.height)];
      assert.ok(x >= left && x <= right && y >= top && y <= bottom, `${when}: image ${i} is drawn at (${x.toFixed(0)}, ${y.toFixed(0)}), outside the visible map [${left.toFixed(0)}, ${right.toFixed(0)}] × [${top.toFixed(0)}, ${bottom.toFixed(0)}]`);
    };
    // + ×5 zooms 32× about the selection (the query, image 0, until the arrows pick one).
    for (let i = 0; i < 5; i++) await page.keyboard.press('+');
    await drawn();
    assert.equal(await canvas.getAttribute('data-zoom'), '32.000');
    await assertInView(0, '+ ×5');
    // → ×4 steps through images 0…3: the map follows each one.
    for (let i = 0; i < 4; i++) {
      await page.keyboard.press('ArrowRight');
      await assertInView(i, `+ ×5, → ×${i + 1}`);
    }
    assert.equal(await page.locator('.umap-tip .tip-file').textContent(), index.files[3]);
    // Shift+→ pans: the map moves left by an eighth of the canvas's shorter side, at the same zoom.
    const [s0, ox0, oy0] = await transform();
    await page.keyboard.press('Shift+ArrowRight');
    await drawn();
    const [s1, ox1, oy1] = await transform();
    const box = await canvas.boundingBox();
    assert.equal(s1, s0);
    assert.ok(Math.abs(ox0 - ox1 - Math.min(box.width, box.height) / 8) < 0.01 && oy1 === oy0, `Shift+→ moved the map by (${ox1 - ox0}, ${oy1 - oy0})`);
    await page.keyboard.press('Shift+ArrowDown');
    await drawn();
    assert.ok((await transform())[2] < oy1, 'Shift+↓ moves the map up');
    // − zooms out about the selected image, which stays in view; 0 shows the whole map.
    await page.keyboard.press('-');
    await drawn();
    assert.equal(await canvas.getAttribute('data-zoom'), '16.000');
    await assertInView(3, '−');
    await page.keyboard.press('0');
    await drawn();
    assert.equal(await canvas.getAttribute('data-zoom'), '1.000');
    assert.ok((await page.locator('.view-map .hint').allTextContents()).some((t) => /Shift\+arrows pan/.test(t)), 'the keyboard help names the pan keys');
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('every image has alt text; about view and deep links work', async () => {
    const { page, problems } = await openPage('?view=about&metric=euclidean');
    await page.waitForSelector('.view-about .faq');
    assert.equal(await page.inputValue('#sel-metric'), 'euclidean');
    assert.ok((await page.locator('.view-about').textContent()).includes(manifest.metrics[3].label));
    await page.locator('.view-about details').evaluateAll((els) => els.forEach((d) => (d.open = true)));
    await shot(page, 'about');
    await page.click('#tab-search');
    await page.waitForSelector('.results-grid .result');
    assert.equal(await page.locator('img:not([alt])').count(), 0);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('gallery by category: one heading per class, state in the URL', async () => {
    const { page, problems } = await openPage('?q=0');
    await page.waitForSelector('.gal-item');
    await page.click('.toggles button:has-text("By category")');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('gallery') === 'class');
    const heads = await page.$$eval('.gal-class', (els) => els.map((e) => e.textContent));
    assert.deepEqual(heads, ds.classes.map((c, i) => `${c} (${index.labels.filter((l) => l === i).length})`));
    assert.equal(await page.locator('.gal-item').count(), ds.size);
    await page.goBack();
    await page.waitForFunction(() => document.querySelectorAll('.gal-class').length === 0);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('a missing bundle gives a clear error naming the URL', async () => {
    const page = await browser.context.newPage();
    await page.goto(server.url + '?data=nowhere/manifest.json');
    const msg = await page.locator('[role=alert]').textContent();
    assert.match(msg, /nowhere\/manifest\.json: HTTP 404 while loading the manifest/);
    await page.close();
  });

  test('small screens: the search view fits a phone width', async () => {
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(server.url + '?q=5');
    await page.waitForSelector('.results-grid .result');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scroll (${overflow}px)`);
    await page.screenshot({ path: path.join(RESULTS, 'search-mobile.png') });
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('view switches fetch only that view’s files, once (in-memory cache)', async () => {
    const { page, problems } = await openPage('?q=0');
    await page.waitForSelector('.results-grid .result');
    await waitQuiet(server);
    const report = {};
    const step = async (name, act, ready) => {
      const from = server.log.length;
      await act();
      await page.waitForSelector(ready);
      await waitQuiet(server);
      const files = server.log.slice(from).filter((e) => !e.path.includes('/thumbs/'));
      report[name] = { dataBytes: files.reduce((s, e) => s + e.bytes, 0), files: files.map((e) => e.path), entries: files, thumbBytes: server.bytes(from) - files.reduce((s, e) => s + e.bytes, 0) };
    };
    await step('search→map', () => page.click('#tab-map'), 'canvas.umap-canvas[data-points]');
    await step('map→compare', () => page.click('#tab-compare'), '.heatmap .heat-cell');
    await step('compare→search', () => page.click('#tab-search'), '.results-grid .result');
    await step('search→map again', () => page.click('#tab-map'), 'canvas.umap-canvas[data-points]');
    await step('metric change', () => page.selectOption('#sel-metric', 'euclidean'), 'canvas.umap-canvas[data-points]');
    const n = ds.size, k = ds.k;
    assert.deepEqual(report['search→map'].files.map((f) => path.basename(f)), ['umap.f32']);
    assert.deepEqual(report['compare→search'].files, [], 'cached');
    assert.deepEqual(report['search→map again'].files, [], 'cached');
    // One query's row of the new metric's file: two Range requests (distances, ids), not the file.
    assert.deepEqual(report['metric change'].files.map((f) => path.basename(f)), ['euclidean.knn', 'euclidean.knn']);
    assert.equal(report['metric change'].dataBytes, k * 6);
    // Whole .knn and .f32 files are exactly linear in N; JSON (summary), score blocks (.u8) and
    // Range answers (206: one query's row) do not depend on N.
    const scaled = (e) => (e.status === 200 && /\.(knn|f32)$/.test(e.path) ? (e.bytes * 200) / n : e.bytes);
    const per200 = Object.fromEntries(Object.entries(report).map(([kk, v]) => [kk, Math.round(v.entries.reduce((s, e) => s + scaled(e), 0))]));
    for (const [kk, b] of Object.entries(per200)) assert.ok(b <= 20_000, `${kk}: ${b} bytes at N=200`);
    fs.writeFileSync(path.join(RESULTS, 'view-switch.json'), JSON.stringify({ n, report, dataBytesAtN200: per200 }, null, 1));
    assert.deepEqual(problems, []);
    await page.close();
  });
});
