// End-to-end: the explorer does not trust the manifest (issue 12, item 8) and the weights banner is
// one sentence with a details disclosure (issue 8, item 10). The engine's tiny bundle is served as
// is; each test swaps in a patched manifest.json through Playwright routing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CHROMIUM_ARGS, DIST, FRONTEND, REPO, RESULTS, buildTinyBundle, ensureSiteBuilt, launchBrowser, startServer, watchPage } from './harness.mjs';

const LIVE = '#live-search';
let bundle, server, other, browser, manifest;

/** A second origin (127.0.0.2) that counts every request it receives: it must receive none. */
async function startOtherOrigin() {
  const hits = [];
  const srv = http.createServer((req, res) => {
    hits.push(req.url);
    res.writeHead(404, { 'access-control-allow-origin': '*' }).end();
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.2', resolve));
  return {
    url: `http://127.0.0.2:${srv.address().port}/`,
    hits,
    close: () => new Promise((resolve) => { srv.closeAllConnections?.(); srv.close(resolve); }),
  };
}

/** Opens the explorer with manifest.json replaced by patch(copy of the real one). */
async function openPatched(patch) {
  const m = structuredClone(manifest);
  patch(m);
  const page = await browser.context.newPage();
  const problems = watchPage(page);
  let crashed = false;
  page.on('crash', () => { crashed = true; });
  await page.route(`${server.url}data/manifest.json`, (route) => route.fulfill({ json: m }));
  server.reset();
  await page.goto(server.url);
  return { page, problems, crashed: () => crashed };
}

/** JS heap in use, from the DevTools protocol (works even while the page itself is busy). */
async function jsHeapBytes(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const { metrics } = await cdp.send('Performance.getMetrics');
  await cdp.detach();
  return metrics.find((x) => x.name === 'JSHeapUsedSize').value;
}

const errorText = (page) => page.locator('.status-error').first().textContent({ timeout: 10_000 });

before(async () => {
  bundle = buildTinyBundle();
  ensureSiteBuilt();
  manifest = JSON.parse(fs.readFileSync(path.join(bundle.dir, 'manifest.json'), 'utf8'));
  server = await startServer({ bundleDir: bundle.dir });
  other = await startOtherOrigin();
  // Safety net: a regression that allocates per manifest.k kills this tab at 512 MB of JS heap
  // instead of taking the machine's memory (today's bug reached 9.5 GB).
  browser = await launchBrowser({ args: [...CHROMIUM_ARGS, '--js-flags=--max-old-space-size=512'] });
});

after(async () => {
  await browser?.close();
  await server?.close();
  await other?.close();
});

describe('manifest validation', () => {
  test('k = 1e9: a clear error naming the manifest, nothing drawn or fetched, the heap stays small', async () => {
    // The search view draws one placeholder per neighbour (datasets[].k) before the file arrives.
    const { page, problems, crashed } = await openPatched((m) => {
      m.k = 1e9;
      m.datasets[0].k = 1e9;
    });
    const text = await errorText(page).catch((e) => `(no error shown: ${crashed() ? 'the tab crashed' : e.message})`);
    assert.match(text, /Could not open the data bundle: http:\/\/127\.0\.0\.1:\d+\/data\/manifest\.json: invalid manifest: k = 1000000000 neighbours per image is more than this explorer accepts \(at most 1000\)/);
    assert.equal(crashed(), false);
    assert.equal(await page.locator('.result-ph, .results-skeleton').count(), 0, 'no placeholders drawn');
    const heap = await jsHeapBytes(page);
    assert.ok(heap < 30e6, `JS heap ${(heap / 1e6).toFixed(1)} MB`);
    // Validation comes before any other bundle file is requested.
    assert.deepEqual(server.log.filter((e) => e.path.startsWith('/data/')).map((e) => e.path), []);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('a dataset entry missing fields: the missing fields are named, no "Cannot read properties"', async () => {
    const { page, problems } = await openPatched((m) => {
      delete m.datasets[0].size;
      delete m.datasets[0].classes;
    });
    const text = await errorText(page);
    assert.match(text, /manifest\.json: invalid manifest: datasets\[0\]: missing "classes", "size"/);
    assert.doesNotMatch(await page.locator('body').textContent(), /Cannot read properties/);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('model_url on another origin: refused in the live-search panel, that origin gets no request', async () => {
    const foreign = `${other.url}tfjs/model.json`;
    const { page, problems } = await openPatched((m) => { m.browser_search.model_url = foreign; });
    await page.waitForSelector('.results-grid .result'); // the rest of the explorer works
    // Ask for the model the way a user does (hover, then choose a file) if the panel offers it.
    await page.hover(LIVE);
    const input = page.locator(`${LIVE} input[type=file]`);
    if (await input.count()) {
      const img = path.join(bundle.imagesDir, fs.readdirSync(bundle.imagesDir).sort()[0]);
      const file = path.join(img, fs.readdirSync(img).filter((f) => f.endsWith('.png')).sort()[0]);
      await input.setInputFiles(file);
    }
    const text = await page.locator(`${LIVE} .status-error, ${LIVE} .live-error`).first().textContent({ timeout: 10_000 }).catch(() => '(no error shown)');
    await page.waitForTimeout(1500); // time for any worker fetch to arrive
    assert.deepEqual(other.hits, [], 'requests reached the other origin');
    assert.match(text, /In-browser search is off: .*manifest\.json: "http:\/\/127\.0\.0\.2:\d+\/tfjs\/model\.json" resolves to .* another origin than this page \(http:\/\/127\.0\.0\.1:\d+\)/);
    assert.deepEqual(problems, []);
    await page.close();
  });
});

describe('weights banner', () => {
  test('random weights: one sentence, the raw detail behind a closed "details" disclosure', async () => {
    const { page, problems } = await openPatched(() => {});
    await page.waitForSelector('.banner');
    const sentence = await page.locator('.banner > .banner-text').textContent();
    assert.equal(sentence.match(/[.!?](\s|$)/g)?.length, 1, sentence);
    assert.match(sentence, /random weights/);
    const details = page.locator('.banner details');
    assert.equal(await details.count(), 1);
    assert.equal(await details.locator('summary').textContent(), 'details');
    assert.equal(await details.evaluate((d) => d.open), false);
    assert.equal(await details.locator('p').textContent(), manifest.weights_detail);
    assert.ok(!sentence.includes(manifest.weights_detail));
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('mixed weights: the banner names the random models, the model picker labels each one', async () => {
    const { page, problems } = await openPatched((m) => {
      m.weights = 'mixed';
      m.models[0].weights = 'imagenet';
    });
    await page.waitForSelector('.banner');
    const random = manifest.models.slice(1).map((x) => x.name);
    const sentence = await page.locator('.banner > .banner-text').textContent();
    assert.equal(sentence.match(/[.!?](\s|$)/g)?.length, 1, sentence);
    for (const name of random) assert.ok(sentence.includes(name), `${name} in "${sentence}"`);
    assert.ok(!sentence.includes(manifest.models[0].name), sentence);
    const options = await page.locator('#sel-model option').allTextContents();
    assert.match(options[0], /ImageNet weights\)$/);
    for (const o of options.slice(1)) assert.match(o, /random weights\)$/);
    assert.deepEqual(problems, []);
    await page.close();
  });
});

describe('make serve (scripts/serve.py)', () => {
  test('sends the CSP of index.html as a header on every file; private search still works under it', async () => {
    // dist/ with the bundle at data/, as `make precompute && make serve` lays it out.
    const site = fs.mkdtempSync(path.join(RESULTS, 'serve-'));
    for (const f of fs.readdirSync(DIST).filter((f) => f !== 'data')) fs.symlinkSync(path.join(DIST, f), path.join(site, f));
    fs.symlinkSync(bundle.dir, path.join(site, 'data'));
    const proc = spawn(path.join(REPO, '.venv', 'bin', 'python'), [path.join(FRONTEND, 'scripts', 'serve.py'), '--dir', site, '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const url = await new Promise((resolve, reject) => {
        proc.stdout.on('data', (b) => { const m = /on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(String(b)); if (m) resolve(m[1]); });
        proc.on('exit', (code) => reject(new Error(`serve.py exited with ${code}`)));
      });
      const html = fs.readFileSync(path.join(DIST, 'index.html'), 'utf8');
      const metaCsp = /http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)[1];
      const worker = fs.readdirSync(path.join(DIST, 'assets')).find((f) => /^worker-.*\.js$/.test(f));
      for (const p of ['', `assets/${worker}`, 'data/manifest.json']) {
        const res = await fetch(url + p);
        assert.equal(res.status, 200, p);
        assert.equal(res.headers.get('content-security-policy'), metaCsp, p);
        assert.equal(res.headers.get('x-content-type-options'), 'nosniff', p);
        await res.arrayBuffer();
      }
      // The worker now runs under connect-src 'self' etc.: TF.js (wasm) must still load and search.
      const page = await browser.context.newPage();
      const problems = watchPage(page);
      await page.goto(url);
      await page.waitForSelector(`${LIVE} .live-drop`);
      const img = path.join(bundle.imagesDir, fs.readdirSync(bundle.imagesDir).sort()[0]);
      await page.locator(`${LIVE} input[type=file]`).setInputFiles(path.join(img, fs.readdirSync(img).filter((f) => f.endsWith('.png')).sort()[0]));
      await page.waitForFunction((sel) => document.querySelector(sel).dataset.searches === '1', LIVE, { timeout: 120_000 });
      const live = await page.evaluate((sel) => ({ ...document.querySelector(sel).dataset }), LIVE);
      assert.equal(live.state, 'ready', JSON.stringify(live));
      assert.equal(live.errors ?? '0', '0', await page.locator(`${LIVE} .live-error`).textContent());
      assert.equal(live.modelSource, 'network');
      assert.deepEqual(problems, []);
      await page.close();
    } finally {
      proc.kill();
      fs.rmSync(site, { recursive: true, force: true });
    }
  });
});
