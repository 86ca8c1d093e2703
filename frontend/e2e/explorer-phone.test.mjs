// The explorer at a phone's 390×844 viewport (issue 19 #14): the Compare view and the "why
// similar?" dialog fit the width (no horizontal scroll of the page, every value and picture on
// screen). Compare uses a bundle shaped like the default run's (9 models × 8 layers, derived from
// the engine's tiny bundle: e2e/scaled-bundle.mjs), whose leaderboard is the widest; "why
// similar?" needs the engine bundle's in-browser model.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { RESULTS, assertWithinWidth, buildTinyBundle, ensureSiteBuilt, launchBrowser, startServer, watchPage } from './harness.mjs';
import { deriveScaledBundle } from './scaled-bundle.mjs';

const PHONE = { width: 390, height: 844 };
let tmp, tiny, wide, browser, manifest;

before(async () => {
  const bundle = buildTinyBundle();
  ensureSiteBuilt();
  manifest = JSON.parse(fs.readFileSync(path.join(bundle.dir, 'manifest.json'), 'utf8'));
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-e2e-phone-'));
  const b = deriveScaledBundle(bundle.dir, path.join(tmp, 'wide'), 200, { models: 9, layers: 8 });
  tiny = await startServer({ bundleDir: bundle.dir });
  wide = await startServer({ bundleDir: b.dir });
  browser = await launchBrowser({ viewport: PHONE });
});

after(async () => {
  await browser?.close();
  await tiny?.close();
  await wide?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const pageWidth = (page) => page.evaluate(() => document.documentElement.scrollWidth);

test('phone: the compare view (9 models × 8 layers) fits 390 px, every value on screen', async () => {
  const page = await browser.context.newPage();
  const problems = watchPage(page);
  await page.goto(wide.url + '?view=compare&q=2');
  await page.waitForSelector('.heatmap .heat-cell');
  await page.waitForSelector('.cmp-query .score-list');
  assert.ok((await pageWidth(page)) <= PHONE.width, `the page is ${await pageWidth(page)} px wide`);
  // The lists (per layer, pooling, model; best per pooling) and the leaderboard's frame; its
  // 72 cells scroll inside .heat-wrap, which must itself stay on screen.
  await assertWithinWidth(page, '.cmp-query, .cmp-board, .cmp-head, .score-row-btn, .score-label, .score-val, .heat-wrap, #sel-stat', PHONE.width);
  const values = await page.$$eval('.score-val', (els) => els.map((e) => [e.textContent, e.getBoundingClientRect().width, e.scrollWidth <= e.clientWidth]));
  assert.ok(values.length > 8 && values.every(([t, w, whole]) => /^\d\.\d\d$/.test(t) && w > 0 && whole), `values shown whole: ${JSON.stringify(values.slice(0, 4))}`);
  const wrap = await page.$eval('.heat-wrap', (e) => ({ client: e.clientWidth, scroll: e.scrollWidth }));
  assert.ok(wrap.scroll > wrap.client, `the 9 × 8 leaderboard scrolls inside its frame (${JSON.stringify(wrap)})`);
  await page.screenshot({ path: path.join(RESULTS, 'compare-phone.png'), fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();
});

test('phone: "why similar?" shows both pictures whole inside 390 px', async () => {
  const bs = manifest.browser_search;
  const ds = manifest.datasets[0];
  const layer = bs.spatial_outputs.at(-1).layer;
  const page = await browser.context.newPage();
  const problems = watchPage(page);
  await page.goto(`${tiny.url}?view=search&dataset=${ds.id}&model=${bs.model}&layer=${layer}&q=3`);
  await page.waitForSelector('.results-grid .why-btn');
  await page.click('.results-grid .why-btn >> nth=1');
  await page.waitForSelector('dialog.why[data-state=ready], dialog.why[data-state=failed]', { timeout: 120_000 });
  assert.equal(await page.getAttribute('dialog.why', 'data-state'), 'ready', await page.textContent('dialog.why'));
  assert.ok((await pageWidth(page)) <= PHONE.width, `the page is ${await pageWidth(page)} px wide`);
  await assertWithinWidth(page, 'dialog.why, dialog.why .heat-fig, dialog.why .heat-stack, dialog.why .heat-stack img, dialog.why canvas.heat', PHONE.width);
  // Not clipped by the dialog either: each picture lies inside the dialog's visible box, square and not tiny.
  const { dialog, stacks } = await page.evaluate(() => {
    const box = (e) => { const r = e.getBoundingClientRect(); return { left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width, height: r.height }; };
    const d = document.querySelector('dialog.why');
    return { dialog: { ...box(d), scrollWidth: d.scrollWidth, clientWidth: d.clientWidth }, stacks: [...d.querySelectorAll('.heat-stack')].map(box) };
  });
  assert.ok(dialog.scrollWidth <= dialog.clientWidth, `nothing scrolls sideways in the dialog (${dialog.scrollWidth} > ${dialog.clientWidth})`);
  assert.equal(stacks.length, 2);
  for (const s of stacks) {
    assert.ok(s.left >= dialog.left && s.right <= dialog.right, `picture ${JSON.stringify(s)} inside the dialog ${JSON.stringify(dialog)}`);
    assert.ok(s.width >= 100 && Math.abs(s.width - s.height) < 1, `picture scaled down, still square: ${s.width}×${s.height}`);
  }
  await page.screenshot({ path: path.join(RESULTS, 'why-phone.png') });
  assert.deepEqual(problems, []);
  await page.close();
});
