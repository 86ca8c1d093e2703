// A bundle rebuilt under an open page (issue 19 #5): `make precompute` replaces the data folder
// while the explorer shows the old one. Two different bundles (the engine's tiny one, and one
// derived from it with another N at the same paths, e2e/scaled-bundle.mjs) are swapped on disk between a page load
// and a click: the page must say "the data changed: reload" once, with a Reload button, instead
// of a raw byte-range error or a made-up score panel, and Reload must show the new bundle.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { RESULTS, buildTinyBundle, ensureSiteBuilt, launchBrowser, startServer, waitQuiet, watchPage } from './harness.mjs';
import { deriveScaledBundle } from './scaled-bundle.mjs';

const N_NEW = 200;
let tmp, served, rebuilt, oldN, server, browser;

before(async () => {
  const bundle = buildTinyBundle();
  ensureSiteBuilt();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-e2e-stale-'));
  served = path.join(tmp, 'data');
  fs.cpSync(bundle.dir, served, { recursive: true });
  const old = JSON.parse(fs.readFileSync(path.join(served, 'manifest.json'), 'utf8')).datasets[0];
  oldN = old.size;
  // The same dataset id: the files keep their paths and change their sizes, as a rebuild with more images does.
  rebuilt = path.join(tmp, 'rebuilt');
  deriveScaledBundle(bundle.dir, rebuilt, N_NEW, { id: old.id });
  assert.notEqual(oldN, N_NEW, 'the two bundles differ');
  server = await startServer({ bundleDir: served });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** What `make precompute` does to the folder the server serves: the old one goes, the new one takes its place. */
function swapBundle() {
  fs.renameSync(served, `${served}.old`);
  fs.renameSync(rebuilt, served);
}

test('a bundle rebuilt while the page is open: one "data changed" message with Reload, no raw error, no fake score', async () => {
  const page = await browser.context.newPage();
  const problems = watchPage(page);
  await page.goto(server.url + '?q=0');
  await page.waitForSelector('.results-grid .result');
  await page.waitForSelector(`.gal-item[data-id="${oldN - 1}"]`);
  await waitQuiet(server);
  swapBundle();
  // Click an image the page has not asked about yet: its neighbours come from the new .knn file.
  await page.click(`.gal-item[data-id="${oldN - 1}"]`);
  const notice = page.locator('[data-bundle-changed]');
  await notice.waitFor({ timeout: 10_000 });
  assert.equal(await notice.count(), 1, 'one message');
  assert.match(await notice.textContent(), /data .*changed/i);
  const reload = notice.locator('button', { hasText: 'Reload' });
  assert.ok(await reload.isVisible(), 'a Reload button');
  await page.waitForTimeout(300);  // late failures of other loads must not add raw errors either
  const text = await page.evaluate(() => document.body.innerText);
  assert.doesNotMatch(text, /server sent|asked for|bytes|announces|Could not load/i, 'no raw error text');
  assert.doesNotMatch(text, /Search score/, 'no score panel for a query whose neighbours are unknown');
  await page.screenshot({ path: path.join(RESULTS, 'bundle-changed.png') });
  assert.deepEqual(problems.filter((p) => !/Failed to load resource/.test(p)), []);
  // Reload shows the new bundle.
  await reload.click();
  await page.waitForSelector('.results-grid .result');
  await page.waitForFunction((n) => document.querySelector('.gallery-head h2')?.textContent?.includes(`${n} images`), N_NEW);
  assert.equal(await page.locator('[data-bundle-changed]').count(), 0);
  await page.close();
});

test('a broken file of an unchanged bundle keeps its precise error (no false "data changed")', async () => {
  const page = await browser.context.newPage();
  // The served bundle (now the rebuilt one) stays; only one response is cut short.
  await page.route('**/data/**/*.knn', (route) => route.fulfill({ status: 206, headers: { 'content-range': 'bytes 0-9/10', 'content-type': 'application/octet-stream' }, body: Buffer.alloc(10) }));
  await page.goto(server.url + '?q=1');
  const err = page.locator('.results [role=alert]');
  await err.waitFor({ timeout: 10_000 });
  assert.match(await err.textContent(), /\.knn: the server sent bytes 0-9\/10/);
  assert.equal(await page.locator('[data-bundle-changed]').count(), 0);
  await page.close();
});
