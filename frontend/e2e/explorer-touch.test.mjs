// Touch input on the UMAP map, driven as real touch events through the Chrome DevTools Protocol
// (Input.dispatchTouchEvent) on a touch-enabled page: a two-finger pinch zooms, one finger pans
// (without picking), a tap makes the tapped point the query.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { buildTinyBundle, ensureSiteBuilt, launchBrowser, startServer, watchPage } from './harness.mjs';

let bundle, server, browser, manifest;
before(async () => {
  bundle = buildTinyBundle();
  ensureSiteBuilt();
  manifest = JSON.parse(fs.readFileSync(path.join(bundle.dir, 'manifest.json'), 'utf8'));
  server = await startServer({ bundleDir: bundle.dir });
  browser = await launchBrowser({ hasTouch: true });
});
after(async () => {
  await browser?.close();
  await server?.close();
});

test('map: pinch zooms, one finger pans without picking, a tap picks the point', async () => {
  const page = await browser.context.newPage();
  const problems = watchPage(page);
  const ds = manifest.datasets[0];
  const model = manifest.models[0];
  const layer = model.layers.at(-1).name;
  await page.goto(server.url + `?view=map&q=0&model=${model.id}&layer=${layer}&pooling=${manifest.poolings[0].id}`);
  await page.waitForSelector(`canvas.umap-canvas[data-points="${ds.size}"]`);
  assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector('canvas.umap-canvas')).touchAction), 'none');
  const cdp = await page.context().newCDPSession(page);
  const touch = (type, points) => cdp.send('Input.dispatchTouchEvent', { type, touchPoints: points.map(([x, y], id) => ({ x, y, id })) });
  const transform = () => page.getAttribute('canvas.umap-canvas', 'data-transform');
  const changed = (before) => page.waitForFunction((b) => document.querySelector('canvas.umap-canvas').dataset.transform !== b, before);
  const box = await page.locator('canvas.umap-canvas').boundingBox();
  // The target of the final tap: the point farthest from its nearest neighbour on screen. The
  // pinch is centred on it and the pan moves it by (80, 30) px, so it stays in view.
  const raw = fs.readFileSync(path.join(bundle.dir, 'datasets', ds.id, model.id, layer, manifest.poolings[0].id, 'umap.f32'));
  const xy = new Float32Array(raw.buffer, raw.byteOffset, ds.size * 2);
  const t0 = await transform();
  const screen = (t, i) => {
    const [s, ox, oy] = t.split(',').map(Number);
    return [ox + xy[2 * i] * s, oy + (1 - xy[2 * i + 1]) * s];
  };
  let target = -1, room = 0;
  for (let i = 1; i < ds.size; i++) {
    const [x, y] = screen(t0, i);
    if (x < box.width / 4 || y < box.height / 4 || x > box.width * 0.6 || y > box.height * 0.6) continue; // stays in view at 4×
    let near = Infinity;
    for (let j = 0; j < ds.size; j++) if (j !== i) near = Math.min(near, Math.hypot(screen(t0, j)[0] - x, screen(t0, j)[1] - y));
    if (near > room) [target, room] = [i, near];
  }
  assert.ok(target > 0 && room > 3, `a point to tap: ${target}, ${room.toFixed(1)} px from the next`);
  const [cx, cy] = screen(t0, target).map((v, k) => v + (k ? box.y : box.x));

  // Pinch: two fingers 60 px apart spread to 240 px → about 4× zoom about their midpoint.
  await touch('touchStart', [[cx - 30, cy], [cx + 30, cy]]);
  for (let s = 1; s <= 6; s++) await touch('touchMove', [[cx - 30 - 15 * s, cy], [cx + 30 + 15 * s, cy]]);
  await touch('touchEnd', []);
  await changed(t0);
  const zoom = Number(await page.getAttribute('canvas.umap-canvas', 'data-zoom'));
  assert.ok(zoom > 3 && zoom < 5, `pinch 60 → 240 px: zoom ${zoom}`);
  // The data point under the fingers' midpoint (the target) stays there.
  const t1 = await transform();
  const [px, py] = screen(t1, target);
  assert.ok(Math.hypot(px + box.x - cx, py + box.y - cy) < 2, `zoomed about the pinch midpoint: ${px + box.x - cx}, ${py + box.y - cy}`);

  // One-finger pan: the view follows the finger; the query does not change.
  await touch('touchStart', [[cx, cy]]);
  for (let s = 1; s <= 5; s++) await touch('touchMove', [[cx + 16 * s, cy + 6 * s]]);
  await touch('touchEnd', []);
  await changed(t1);
  const t2 = await transform();
  const [s1, ox1, oy1] = t1.split(',').map(Number);
  const [s2, ox2, oy2] = t2.split(',').map(Number);
  assert.equal(s2, s1, 'a pan keeps the zoom');
  assert.ok(Math.abs(ox2 - ox1 - 80) < 1 && Math.abs(oy2 - oy1 - 30) < 1, `panned by ${ox2 - ox1}, ${oy2 - oy1} (finger moved 80, 30)`);
  assert.equal(new URL(page.url()).searchParams.get('q'), '0', 'a pan is not a tap');

  // A tap on the target makes it the query. (Observed: a touch sent right after the pan's end
  // produced no click in headless Chromium, one 600 ms later does: wait as a hand would.)
  await page.waitForTimeout(600);
  const [tx, ty] = screen(t2, target);
  await touch('touchStart', [[box.x + tx, box.y + ty]]);
  await touch('touchEnd', []);
  await page.waitForFunction(() => new URL(location.href).searchParams.get('q') !== '0');
  assert.equal(new URL(page.url()).searchParams.get('q'), String(target), 'the tapped point is the query');
  assert.equal(await transform(), t2, 'a tap does not move the view');
  assert.deepEqual(problems, []);
  await page.close();
});
