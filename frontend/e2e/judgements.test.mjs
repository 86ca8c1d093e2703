// Issue 20 items 4 and 5 in headless Chromium: side by side (overlap@k against the stored rows),
// ✓ / ✗ judgements (no request, kept over a reload, export → import on a fresh profile), the
// "Your judgements" leaderboard (every configuration), and its bytes at N=200.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RESULTS, closeAll, launchBrowser, openTinyBundle, startServer, waitQuiet, watchPage } from './harness.mjs';
import { deriveScaledBundle } from './scaled-bundle.mjs';

let bundle, server, browser, manifest, ds, index;
const SHOTS = process.env.F20_SHOTS ?? '/tmp';

/** Query q's stored neighbour ids of one configuration, read from the .knn file on disk. */
function storedIds(dir, m, d, col, q) {
  const [model, layer, pooling, metric] = col.split('|');
  const rel = m.files.neighbors.replace(/\{(\w+)\}/g, (_, k) => ({ dataset: d.id, model, layer, pooling, metric })[k]);
  const buf = fs.readFileSync(path.join(dir, rel));
  const ids = new Uint16Array(buf.buffer, buf.byteOffset + d.size * d.k * 4, d.size * d.k);
  return Array.from(ids.subarray(q * d.k, (q + 1) * d.k));
}

const overlap = (a, b) => a.filter((x) => b.includes(x)).length;
const colUrl = (cols) => cols.map((c) => `col=${encodeURIComponent(c)}`).join('&');

before(async () => {
  ({ bundle, manifest, ds, index, server, browser } = await openTinyBundle());
});

after(() => closeAll({ browser, server }));

async function checkOverlaps(page, cols, q) {
  await page.waitForSelector(`.side-col >> nth=${cols.length - 1}`);
  await page.waitForFunction((n) => document.querySelectorAll('.side-col').length === n && document.querySelectorAll('.side-results .result').length > 0, cols.length);
  const shown = await page.$$eval('.side-col', (els) => els.map((e) => [e.dataset.col, [...e.querySelectorAll('.result-btn')].map((b) => Number(b.dataset.id))]));
  assert.deepEqual(shown.map((s) => s[0]), cols);
  const rows = cols.map((c) => storedIds(bundle.dir, manifest, ds, c, q));
  shown.forEach(([, ids], i) => assert.deepEqual(ids, rows[i], `column ${i + 1} shows the stored row`));
  const pairs = await page.$$eval('.overlap', (els) => els.map((e) => [e.dataset.pair, Number(e.dataset.overlap)]));
  const want = [];
  for (let a = 0; a < cols.length; a++) for (let b = a + 1; b < cols.length; b++) want.push([`${a + 1}-${b + 1}`, overlap(rows[a], rows[b])]);
  assert.deepEqual(pairs, want);
  return want;
}

describe('side by side', () => {
  test('2 columns (first vs last layer) and 3 columns: overlap@k equals the stored rows\'', async () => {
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    const layers = manifest.models[0].layers.map((l) => l.name);
    const cols = [`mobilenet|${layers[0]}|avg|cosine`, `mobilenet|${layers[layers.length - 1]}|avg|cosine`];
    const q = 3;
    await page.goto(`${server.url}?view=side&q=${q}&${colUrl(cols)}`);
    const two = await checkOverlaps(page, cols, q);
    await page.waitForFunction(() => [...document.querySelectorAll('.side-results img, img.side-query-img')].every((i) => i.src.startsWith('blob:') && i.complete && i.naturalWidth > 1));
    await page.screenshot({ path: path.join(SHOTS, 'f20-side-by-side.png'), fullPage: true });
    // A third column from the button, then its metric changed from its own picker.
    await page.click('.side-add');
    await page.waitForFunction(() => document.querySelectorAll('.side-col').length === 3);
    await page.selectOption('[aria-label="Column 3 metric"]', 'euclidean');
    const three = [...cols, `mobilenet|${layers[layers.length - 1]}|avg|euclidean`];
    await page.waitForFunction((c) => new URL(location.href).searchParams.getAll('col').join() === c.join() && document.querySelector('.side-col:nth-child(3)')?.dataset.col === c[2], three);
    const got = await checkOverlaps(page, three, q);
    await page.screenshot({ path: path.join(SHOTS, 'f20-side-by-side-3.png'), fullPage: true });
    // Back (twice: the metric change, then the added column) restores the 2-column URL state.
    await page.goBack();
    await page.goBack();
    await checkOverlaps(page, cols, q);
    process.stderr.write(`# side by side q=${q}: overlap@${ds.k} ${JSON.stringify(two)}; 3 columns ${JSON.stringify(got)}\n`);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('an uploaded image side by side: browser-model columns, overlap@k, nothing fetched but features files', async () => {
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    const requests = [];
    page.on('request', (r) => { if (!/^(blob|data):/.test(r.url())) requests.push(r.url()); });
    await page.goto(`${server.url}?metric=cosine`);
    await page.hover('#live-search');
    await page.waitForSelector('#live-search[data-state=ready]', { timeout: 120_000 });
    const id = 12;
    await page.setInputFiles('#live-search #live-file', path.join(bundle.imagesDir, index.files[id]));
    await page.waitForFunction(() => document.querySelector('#live-search').dataset.searches === '1', null, { timeout: 60_000 });
    await waitQuiet(server);
    const from = requests.length;
    await page.click('#tab-side');
    await page.waitForFunction(() => document.querySelectorAll('.side-col .side-results').length === 2, null, { timeout: 60_000 });
    const bs = manifest.browser_search;
    const layers = [...new Set(bs.outputs.map((o) => o.layer))];
    const cols = await page.$$eval('.side-col', (els) => els.map((e) => [e.dataset.col, [...e.querySelectorAll('.result-btn')].map((b) => Number(b.dataset.id))]));
    assert.deepEqual(cols.map((c) => c[0]), [`${bs.model}|${layers[0]}|avg|cosine`, `${bs.model}|${layers[layers.length - 1]}|avg|cosine`]);
    // The image itself (a dataset image) is the nearest result under every column: each really ran.
    for (const [col, ids] of cols) assert.equal(ids[0], id, `${col}: ${ids}`);
    const shown = Number(await page.getAttribute('.overlap', 'data-overlap'));
    assert.equal(shown, overlap(cols[0][1], cols[1][1]));
    assert.equal(await page.locator('.side-results .judge').count(), 0, 'no marks for an upload (no file name to key them by)');
    await page.screenshot({ path: path.join(SHOTS, 'f20-side-by-side-upload.png'), fullPage: true });
    const after = requests.slice(from).filter((u) => !/\/assets\//.test(u));  // the view's own lazy chunk aside
    assert.ok(after.every((u) => /\/browser\//.test(u)), `only features files after the upload: ${after.join(' ')}`);
    process.stderr.write(`# upload side by side: overlap ${shown}; requests after the upload: ${after.map((u) => new URL(u).pathname).join(', ') || 'none'}\n`);
    assert.deepEqual(problems, []);
    await page.close();
  });
});

/** Marks the first `per` results of query q by true class (✓ same class, ✗ other). */
async function judgeQuery(page, q, per) {
  await page.goto(`${server.url}?view=search&q=${q}`);
  await page.waitForSelector('.results-grid .judge button:not([disabled])');
  await page.waitForFunction((n) => document.querySelectorAll('.results-grid .judge button:not([disabled])').length >= 2 * n, per);
  const marks = [];
  for (let i = 0; i < per; i++) {
    const li = page.locator('.results-grid .result').nth(i);
    const id = Number(await li.locator('.result-btn').getAttribute('data-id'));
    const same = index.labels[id] === index.labels[q];
    await li.locator(same ? '.judge-yes' : '.judge-no').click();
    await page.waitForFunction(([el, v]) => document.querySelectorAll('.results-grid .judge')[el]?.dataset.judged === v, [i, same ? 'yes' : 'no']);
    marks.push([q, id, same]);
  }
  return marks;
}

describe('your judgements', () => {
  let exported;
  test('a mark followed at once by a navigation is kept (the journal outlives the aborted IndexedDB write)', async () => {
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    const marked = [];
    for (const q of [5, 6, 7, 8, 9]) {
      await page.goto(`${server.url}?view=search&q=${q}`);
      await page.waitForSelector('.results-grid .judge button:not([disabled])');
      const li = page.locator('.results-grid .result').nth(2);
      marked.push([q, Number(await li.locator('.result-btn').getAttribute('data-id'))]);
      await li.locator('.judge-no').click();  // and straight on to the next page, no wait
    }
    await page.goto(`${server.url}?view=search&q=5`);
    const kept = await page.evaluate(async (pairs) => {
      const all = await new Promise((ok, bad) => {
        const r = indexedDB.open('convnet-search');
        r.onsuccess = () => { const g = r.result.transaction('judgements').objectStore('judgements').getAll(); g.onsuccess = () => ok(g.result); g.onerror = bad; };
        r.onerror = bad;
      });
      return pairs.map(([q, id]) => all.some((j) => j.query_id === q && j.result_id === id && j.similar === false));
    }, marked);
    assert.deepEqual(kept, marked.map(() => true), 'every mark reached IndexedDB');
    assert.equal(await page.evaluate(() => localStorage.getItem('convnet-search-judgements-journal')), null, 'the journal is empty once committed');
    // Leave the store as the next test expects it (it counts this dataset's marks): undo them.
    for (const [q, id] of marked) {
      await page.goto(`${server.url}?view=search&q=${q}`);
      const el = page.locator(`.results-grid .judge[data-r="${id}"]`);
      await el.locator('.judge-no:not([disabled])').click();
      await page.waitForFunction((r) => document.querySelector(`.results-grid .judge[data-r="${r}"]`)?.dataset.judged === '', id);
    }
    await page.waitForFunction(() => localStorage.getItem('convnet-search-judgements-journal') === null);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('a ✓ / ✗ mark sends no request, survives a reload, and ~20 marks rank every configuration', async () => {
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    await page.goto(`${server.url}?view=search&q=0`);
    await page.waitForSelector('.results-grid .judge button:not([disabled])');
    await waitQuiet(server);  // the page's own loading (thumbnails) is over; nothing else is warmed
    // Every request from here on, before the first mark: page-side interception and the server's log.
    const requests = [];
    await page.route('**/*', (route) => { requests.push(route.request().url()); return route.continue(); });
    const from = server.log.length;
    const li = page.locator('.results-grid .result').first();
    await li.locator('.judge-yes').click();
    await page.locator('.results-grid .result').nth(1).locator('.judge-no').click();
    await page.waitForFunction(() => document.querySelectorAll('.results-grid .judge')[1]?.dataset.judged === 'no');
    await page.waitForTimeout(500);
    assert.deepEqual(requests, [], 'judging makes no request');
    assert.deepEqual(server.log.slice(from), [], 'the server saw nothing');
    await page.unroute('**/*');
    // Kept in IndexedDB: a reload shows the marks.
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll('.results-grid .judge')[1]?.dataset.judged === 'no');
    assert.equal(await page.locator('.results-grid .judge').first().getAttribute('data-judged'), 'yes');
    // Undo by clicking again; then ~20 marks by true class over 4 queries.
    await page.locator('.results-grid .result').first().locator('.judge-yes').click();
    // Each undo lands (IndexedDB is async) before the next click, or a late one undoes a new mark.
    await page.waitForFunction(() => document.querySelectorAll('.results-grid .judge')[0]?.dataset.judged === '');
    await page.locator('.results-grid .result').nth(1).locator('.judge-no').click();
    await page.waitForFunction(() => document.querySelectorAll('.results-grid .judge')[1]?.dataset.judged === '');
    const marks = [];
    for (const q of [0, 11, 22, 33]) marks.push(...await judgeQuery(page, q, 5));
    await waitQuiet(server);
    let mark = server.log.length;
    await page.click('#tab-judge');
    await page.waitForSelector('.judge-table tbody tr', { timeout: 30_000 });
    await waitQuiet(server);
    const configs = manifest.models.reduce((s, m) => s + m.layers.length, 0) * manifest.poolings.length * manifest.metrics.length;
    // Bundle data (the view's JS chunk and thumbnails aside, as e2e/scale.test.mjs counts).
    const data = (f) => server.log.slice(f).filter((e) => e.path.startsWith('/data/') && !e.path.includes('/thumbs/'));
    const first = data(mark);
    // 4 judged queries × 144 configurations × 30 bytes = 17,280 > the 12 KB the rows get per view.
    const partial = Number(await page.getAttribute('.judge-body', 'data-configs'));
    assert.equal(partial, Math.floor(12_000 / (4 * ds.k * 2)), 'whole configurations within the budget');
    assert.ok(first.reduce((s, e) => s + e.bytes, 0) <= 20_000, `view switch: ${first.reduce((s, e) => s + e.bytes, 0)} data bytes`);
    assert.match(await page.locator('.judge-partial').textContent(), new RegExp(`Ranked ${partial} of ${configs} configurations`));
    process.stderr.write(`# tiny bundle, 4 judged queries: first view of the leaderboard ${first.reduce((s, e) => s + e.bytes, 0)} data bytes (${first.filter((e) => e.path.endsWith('.knn')).length} rows), ${partial} of ${configs} configurations ranked\n`);
    await page.screenshot({ path: path.join(SHOTS, 'f20-leaderboard-partial.png'), fullPage: false });
    mark = server.log.length;
    await page.click('.judge-all');
    await page.waitForFunction((n) => document.querySelector('.judge-body')?.dataset.configs === String(n), configs, { timeout: 30_000 });
    await waitQuiet(server);
    assert.equal(data(mark).filter((e) => e.path.endsWith('.knn')).length, 4 * (configs - partial), 'only the rows not fetched yet');
    assert.equal(await page.locator('.judge-table tbody tr').count(), configs, 'every configuration is listed');
    assert.equal(await page.locator('.judge-partial').count(), 0);
    const rows = await page.$$eval('.judge-table tbody tr', (trs) => trs.map((tr) => tr.dataset.config));
    assert.equal(new Set(rows).size, configs);
    assert.match(await page.locator('.judge-count').textContent(), /^20 judgements in this dataset/);
    const verdict = await page.locator('.judge-verdict').textContent();
    await page.waitForFunction(() => [...document.querySelectorAll('.suggest img')].every((i) => i.src.startsWith('blob:') && i.complete && i.naturalWidth > 1));
    await page.screenshot({ path: path.join(SHOTS, 'f20-leaderboard.png'), fullPage: false });
    const top = await page.$$eval('.judge-table tbody tr', (trs) => trs.slice(0, 5).map((tr) => [...tr.children].map((td) => td.textContent).join(' | ')));
    process.stderr.write(`# leaderboard after ${marks.length} marks: ${configs} configurations; ${verdict}\n#   ${top.join('\n#   ')}\n`);
    // Export (a download made in the page).
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('.judge-export')]);
    exported = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'f20-')), 'judgements.json');
    await download.saveAs(exported);
    const file = JSON.parse(fs.readFileSync(exported, 'utf8'));
    assert.equal(file.format, 'convnet-search-judgements');
    assert.equal(file.judgements.length, 20);
    const want = new Map(marks.map(([q, r, v]) => [`${index.files[q]}→${index.files[r]}`, v]));
    for (const j of file.judgements) assert.equal(want.get(`${j.query}→${j.result}`), j.similar, `${j.query} → ${j.result}`);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('export then import on a fresh browser profile restores the marks', async () => {
    assert.ok(exported, 'needs the export of the previous test');
    const fresh = await launchBrowser();
    try {
      const page = await fresh.context.newPage();
      const problems = watchPage(page);
      await page.goto(`${server.url}?view=judge`);
      await page.waitForSelector('.judge-body .status-empty');
      await page.setInputFiles('.judge-file', exported);
      await page.waitForSelector('.judge-note');
      assert.match(await page.locator('.judge-note').textContent(), /Imported 20 judgements/);
      await page.waitForSelector('.judge-table tbody tr', { timeout: 30_000 });
      const file = JSON.parse(fs.readFileSync(exported, 'utf8'));
      const q = index.files.indexOf(file.judgements[0].query);
      await page.goto(`${server.url}?view=search&q=${q}`);
      await page.waitForSelector('.results-grid .judge button:not([disabled])');
      await page.waitForFunction(() => [...document.querySelectorAll('.results-grid .judge')].filter((e) => e.dataset.judged).length >= 5);
      const shown = await page.$$eval('.results-grid .judge', (els) => els.filter((e) => e.dataset.judged).map((e) => [e.dataset.rn, e.dataset.judged === 'yes']));
      const want = file.judgements.filter((j) => j.query === file.judgements[0].query).map((j) => [j.result, j.similar]);
      assert.deepEqual(shown.sort(), want.sort());
      assert.deepEqual(problems, []);
      await page.close();
    } finally {
      await fresh.close();
    }
  });
});

describe('bytes at N=200 (the default run\'s 9 models × 8 layers)', () => {
  test('the leaderboard fetches only the judged queries\' id rows, once', async () => {
    const scaled = deriveScaledBundle(bundle.dir, path.join(RESULTS, 'scaled-200-judge'), 200, { models: 9, layers: 8 });
    const m = scaled.manifest;
    const d = m.datasets[0];
    const s = await startServer({ bundleDir: scaled.dir });
    const b = await launchBrowser();
    try {
      const page = await b.context.newPage();
      const problems = watchPage(page);
      const names = (i) => `${d.classes[Math.floor((i * d.classes.length) / 200)]}/img_${String(i).padStart(5, '0')}.png`;
      const mk = (q, r, similar) => ({ dataset: d.id, query: names(q), result: names(r), similar, at: '2026-12-07T00:00:00.000Z', query_id: q, result_id: r });
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'f20-')), 'j.json');
      const write = (js) => fs.writeFileSync(file, JSON.stringify({ format: 'convnet-search-judgements', version: 1, judgements: js }));
      const configs = m.models.reduce((x, y) => x + y.layers.length, 0) * m.poolings.length * m.metrics.length;
      const report = { configs, k: d.k, idBytes: 2, steps: {} };
      const step = async (name, act) => {
        const from = s.log.length;
        await act();
        await page.waitForSelector('.judge-table tbody tr', { timeout: 120_000 });
        await waitQuiet(s);
        const got = s.log.slice(from).filter((e) => e.path.startsWith('/data/') && !e.path.includes('/thumbs/'));
        const knn = got.filter((e) => e.path.endsWith('.knn'));
        report.steps[name] = { dataBytes: got.reduce((x, e) => x + e.bytes, 0), knnRequests: knn.length, knnBytes: knn.reduce((x, e) => x + e.bytes, 0), other: got.filter((e) => !e.path.endsWith('.knn')).map((e) => `${e.path} ${e.bytes}`) };
        return report.steps[name];
      };
      await page.goto(`${s.url}?view=judge`);
      await page.waitForSelector('.judge-body .status-empty');
      const ranked = () => page.getAttribute('.judge-body', 'data-configs').then(Number);
      const rowBytes = d.k * 2;
      const perView = Math.floor(12_000 / rowBytes);  // whole configurations of 1 judged query in 12 KB
      write([mk(5, 6, true), mk(5, 7, false)]);
      const one = await step('import: 1 judged query', () => page.setInputFiles('.judge-file', file));
      assert.equal(one.knnRequests, perView);
      assert.equal(one.knnBytes, perView * rowBytes, 'k uint16 ids per configuration, no distances');
      assert.equal(await ranked(), perView);
      const away = async () => {
        await page.click('#tab-search');
        await page.waitForSelector('.results-grid .result');
        await waitQuiet(s);
      };
      // Each later visit ranks the next configurations, fetching only rows it does not have.
      let seen = perView;
      for (let i = 2; seen < configs; i++) {
        await away();
        const next = await step(`view switch ${i}, same judgements`, () => page.click('#tab-judge'));
        const want = Math.min(perView, configs - seen);
        assert.equal(next.knnRequests, want);
        await page.waitForFunction((n) => document.querySelector('.judge-body')?.dataset.configs === String(n), seen + want);
        seen += want;
      }
      assert.equal(await page.locator('.judge-table tbody tr').count(), configs, 'every configuration, after 3 visits');
      await away();
      const again = await step('view switch, all rows here', () => page.click('#tab-judge'));
      assert.equal(again.knnBytes, 0, 'rows already fetched cost nothing');
      write([mk(9, 10, true)]);
      const two = await step('import: a 2nd judged query', () => page.setInputFiles('.judge-file', file));
      assert.equal(two.knnBytes, perView * rowBytes, 'only the new query\'s rows, within the budget');
      const all = await step('"rank all" button', () => page.click('.judge-all'));
      assert.equal(all.knnBytes, (configs - perView) * rowBytes);
      await page.waitForFunction((n) => document.querySelector('.judge-body')?.dataset.configs === String(n), configs);
      for (const [name, r] of Object.entries(report.steps)) if (name !== '"rank all" button') assert.ok(r.dataBytes <= 20_000, `${name}: ${r.dataBytes} data bytes`);
      report.perJudgedQueryAtN100000 = { idBytes: 4, bytes: configs * d.k * 4 };
      report.budget = 20_000;
      fs.writeFileSync(path.join(RESULTS, 'judgements-n200.json'), JSON.stringify(report, null, 1));
      process.stderr.write(`# N=200, ${configs} configurations: ${JSON.stringify(report.steps)}; at N=100,000 (uint32 ids) ${configs * d.k * 4} bytes per judged query\n`);
      assert.deepEqual(problems, []);
      await page.close();
    } finally {
      await b.close();
      await s.close();
    }
  });
});
