// End-to-end tests of the Curate view (issue 23) in headless Chromium: the lists of the bundle's
// curation files, virtualized; what a switch to the view fetches (images aside, ≤ 20 KB); an item
// opens the search view on its image; no request leaves the page's origin.
// CURATE_BUNDLE=<bundle dir> runs it on another bundle (the real caltech10 one for the screenshots,
// written to CURATE_SHOTS=<prefix> as <prefix>-<tab>.png).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import os from 'node:os';
import { REPO, RESULTS, buildTinyBundle, ensureSiteBuilt, launchBrowser, runEngine, startServer, waitQuiet, watchPage } from './harness.mjs';

const SWITCH_BUDGET = 20_000;
const isImage = (p) => /\.(jpe?g|png|webp)$/i.test(p) || p.includes('/thumbs/');
let bundleDir, server, browser, manifest, ds;
const measured = {};

before(async () => {
  bundleDir = process.env.CURATE_BUNDLE || buildTinyBundle().dir;
  ensureSiteBuilt();
  manifest = JSON.parse(fs.readFileSync(path.join(bundleDir, 'manifest.json'), 'utf8'));
  ds = manifest.datasets[0];
  assert.ok(manifest.files.curate && manifest.files.curate_labels, 'the bundle must have curation lists');
  server = await startServer({ bundleDir });
  browser = await launchBrowser();
});

after(async () => {
  fs.mkdirSync(RESULTS, { recursive: true });
  fs.writeFileSync(path.join(RESULTS, 'curate.json'), JSON.stringify(measured, null, 1));
  await browser?.close();
  await server?.close();
});

/** A bundle of the e2e images with avg and the mirror grid (one model, one layer, random weights). */
function mirrorBundle() {
  const { imagesDir } = buildTinyBundle();
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-e2e-mirror-'));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-e2e-mirror-work-'));
  const r = runEngine(['precompute', '--config', path.join(REPO, 'configs', 'e2e.toml'), '--dataset', imagesDir, '--models', 'mobilenet',
    '--num-layers', '1', '--pooling', 'avg', 'mgrid3', '--metrics', 'cosine', '--no-browser-search', '--no-featviz',
    '--out', path.join(out, 'bundle'), '--work', work]);
  fs.rmSync(work, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`precompute with mgrid3 failed (exit ${r.status}):\n${(r.stderr || '').slice(-3000)}`);
  return path.join(out, 'bundle');
}

const curateFile = (model, layer, pooling, metric) =>
  JSON.parse(fs.readFileSync(path.join(bundleDir, manifest.files.curate.replace('{dataset}', ds.id).replace('{model}', model).replace('{layer}', layer).replace('{pooling}', pooling).replace('{metric}', metric)), 'utf8'));

/** Waits for the view's lists of `tab`; a failure says what the page showed and logged. */
async function ready(page, problems, tab) {
  try {
    await page.waitForSelector(`.view-curate[data-state=ready][data-tab=${tab}]`, { timeout: 30_000 });
  } catch (e) {
    const info = await page.locator('.cur-info').textContent().catch(() => '?');
    throw new Error(`${tab}: not ready (${e.message}); info: ${info}; problems: ${problems.join(' | ')}`);
  }
}

describe('Curate view', () => {
  test('lists groups, outliers and suspects of the bar configuration, virtualized, ≤ 20 KB per switch, and opens the search view', async () => {
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    const requests = [];
    page.on('request', (r) => { if (!/^(blob|data):/.test(r.url())) requests.push(r.url()); });
    const model = manifest.models[0];
    const layer = model.layers[model.layers.length - 1].name;
    const [pooling, metric] = [manifest.poolings[0].id, 'cosine'];
    await page.goto(`${server.url}?view=search&dataset=${ds.id}&model=${model.id}&layer=${layer}&pooling=${pooling}&metric=${metric}&q=0`);
    await page.waitForSelector('.result-btn', { timeout: 30_000 });
    await waitQuiet(server);

    // The switch: click the tab, wait for the view's lists (its code chunk aside: a one-time download).
    const from = server.log.length;
    await page.click('#tab-curate');
    await ready(page, problems, 'duplicates');
    await waitQuiet(server);
    const data = server.log.slice(from).filter((e) => e.path.startsWith('/data/') && !isImage(e.path));
    measured.switch = { n: ds.size, files: data.map((e) => e.path), bytes: data.reduce((s, e) => s + e.bytes, 0),
      image_bytes: server.log.slice(from).filter((e) => isImage(e.path)).reduce((s, e) => s + e.bytes, 0) };
    assert.ok(measured.switch.bytes <= SWITCH_BUDGET, `a switch fetched ${measured.switch.bytes} bytes: ${measured.switch.files}`);

    const want = curateFile(model.id, layer, pooling, metric);
    const rows = await page.locator('.cur-row').count();
    assert.ok(rows <= Math.min(want.groups.length, 20), `${rows} rows in the DOM for ${want.groups.length} groups`);
    assert.equal(rows > 0, want.groups.length > 0);
    if (process.env.CURATE_SHOTS) await page.screenshot({ path: `${process.env.CURATE_SHOTS}-duplicates.png`, fullPage: true });
    if (want.groups.length) {
      const ids = await page.locator('.cur-row >> nth=0').locator('.cur-thumb').evaluateAll((bs) => bs.map((b) => Number(b.dataset.id)));
      assert.deepEqual(ids, want.groups[0].slice(0, 8));
    }

    // A pooling that misses flipped copies says how to get the mirror grid, which groups them.
    if (!manifest.poolings.some((p) => p.id === 'mgrid3')) {
      assert.match(await page.locator('.cur-info').textContent(), /--pooling avg grid3 mgrid3/);
    }

    await page.click('.cur-tab[data-tab=outliers]');
    await ready(page, problems, 'outliers');
    const outlierRows = await page.locator('.cur-row').count();
    assert.ok(outlierRows > 0 && outlierRows < want.outliers.length, `virtualized: ${outlierRows} of ${want.outliers.length} outliers in the DOM`);
    assert.equal(Number(await page.getAttribute('.cur-row >> nth=0', 'data-id')), want.outliers[0]);
    await page.locator('.cur-scroll').evaluate((el) => { el.scrollTop = el.scrollHeight; });
    await page.waitForFunction((last) => !!document.querySelector(`.cur-item[data-id="${last}"]`), want.outliers[want.outliers.length - 1]);
    if (process.env.CURATE_SHOTS) {
      await page.locator('.cur-scroll').evaluate((el) => { el.scrollTop = 0; });
      await page.waitForTimeout(300);
      await page.screenshot({ path: `${process.env.CURATE_SHOTS}-outliers.png`, fullPage: true });
    }

    await page.click('.cur-tab[data-tab=labels]');
    await ready(page, problems, 'labels');
    const labels = JSON.parse(fs.readFileSync(path.join(bundleDir, manifest.files.curate_labels.replace('{dataset}', ds.id)), 'utf8'));
    const suspects = labels.fields.class?.ids ?? [];
    if (suspects.length) {
      const first = page.locator('.cur-row >> nth=0');
      assert.equal(Number(await first.getAttribute('data-id')), suspects[0]);
      assert.equal(await first.locator('.cur-suggested').textContent(), ds.classes[labels.fields.class.suggested[0]]);
    }
    if (process.env.CURATE_SHOTS) await page.screenshot({ path: `${process.env.CURATE_SHOTS}-labels.png`, fullPage: true });

    // An item opens the search view on its image.
    const target = suspects[0] ?? want.outliers[0];
    await page.click(`.cur-thumb[data-id="${target}"]`);
    await page.waitForFunction((q) => location.search.includes('view=search') && location.search.includes(`q=${q}`), target);

    const origin = new URL(server.url).origin;
    assert.deepEqual(requests.filter((u) => new URL(u).origin !== origin), [], 'no request leaves the origin');
    assert.deepEqual(problems, []);
  });

  test('a bundle with the mirror grid offers it from another pooling, and the button switches to its groups', async () => {
    // The shared e2e bundle has no mirror grid (and CURATE_BUNDLE may have none): then a small one of
    // the same images is made, one model, one layer, avg beside mgrid3.
    const hasMirror = manifest.poolings.some((p) => p.id === 'mgrid3') && manifest.poolings.length > 1;
    const dir = hasMirror ? bundleDir : mirrorBundle();
    const m = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    const d = m.datasets[0];
    const srv = hasMirror ? server : await startServer({ bundleDir: dir });
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    const model = m.models[0];
    const layer = model.layers[model.layers.length - 1].name;
    const other = m.poolings.map((p) => p.id).find((p) => p !== 'mgrid3');
    await page.goto(`${srv.url}?view=curate&dataset=${d.id}&model=${model.id}&layer=${layer}&pooling=${other}&metric=cosine`);
    await ready(page, problems, 'duplicates');
    await page.click('.cur-mirror');
    await page.waitForFunction(() => new URLSearchParams(location.search).get('pooling') === 'mgrid3'
      && !document.querySelector('.cur-mirror') && !!document.querySelector('.view-curate[data-state=ready][data-tab=duplicates]'));
    const file = path.join(dir, m.files.curate.replace('{dataset}', d.id).replace('{model}', model.id).replace('{layer}', layer).replace('{pooling}', 'mgrid3').replace('{metric}', 'cosine'));
    const want = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.match(await page.locator('.cur-info').textContent(), new RegExp(`^${want.groups_total} group`));
    if (want.groups.length) {
      const ids = await page.locator('.cur-row >> nth=0').locator('.cur-thumb').evaluateAll((bs) => bs.map((b) => Number(b.dataset.id)));
      assert.deepEqual(ids, want.groups[0].slice(0, 8));
    }
    assert.deepEqual(problems, []);
    if (!hasMirror) {
      await srv.close();
      fs.rmSync(path.dirname(dir), { recursive: true, force: true });
    }
    await page.close();
  });
});
