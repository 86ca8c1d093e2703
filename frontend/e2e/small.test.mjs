// A folder of 5 valid images (+3 broken ones) runs end to end: the explorer shows 4 results per
// query and says why, with no console errors.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { PY, REPO, RESULTS, closeAll, runEngine, serveBundle, watchPage } from './harness.mjs';

let server, browser, tmp;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-e2e-small-'));
  const images = path.join(tmp, 'images');
  const mk = spawnSync(PY, [path.join(REPO, 'frontend', 'e2e', 'make_images.py'), images, '3'], { encoding: 'utf8' });
  assert.equal(mk.status, 0, mk.stderr);
  // make_images.py writes several classes x 3; keep 5 images in two classes, then add 3 broken files.
  const classes = fs.readdirSync(images).sort();
  for (const c of classes.slice(2)) fs.rmSync(path.join(images, c), { recursive: true });
  const second = path.join(images, classes[1]);
  fs.rmSync(path.join(second, fs.readdirSync(second).sort()[0]));
  fs.writeFileSync(path.join(images, classes[0], 'empty.jpg'), '');
  fs.writeFileSync(path.join(second, 'notes.jpg'), 'not an image');
  fs.writeFileSync(path.join(second, 'cut.png'), fs.readFileSync(path.join(images, classes[0], fs.readdirSync(path.join(images, classes[0])).sort().find((f) => f.endsWith('.png')))).subarray(0, 60));
  const out = path.join(tmp, 'bundle');
  const r = runEngine(['precompute', '--dataset', images, '--models', 'mobilenet_025', '--weights', 'none',
    '--num-layers', '2', '--no-browser-search', '--out', out, '--work', path.join(tmp, 'work')]);
  assert.equal(r.status, 0, r.stderr);
  ({ server, browser } = await serveBundle(out));
});

after(() => closeAll({ browser, server, tmp }));

test('a 5-image folder shows 4 results per query and says why', async () => {
  const page = await browser.context.newPage();
  const problems = watchPage(page);
  await page.goto(server.url);
  await page.click('button.gal-item');
  await page.waitForSelector('.results-grid .result');
  assert.equal(await page.locator('.results-grid .result').count(), 4);
  const note = await page.textContent('.small-dataset');
  assert.match(note, /has 5 images, so each query has 4 results \(k=15 requested\)/);
  await page.screenshot({ path: path.join(RESULTS, 'small-folder.png'), fullPage: true });
  assert.deepEqual(problems, []);
});
