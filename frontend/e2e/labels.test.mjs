// Any image collection, labelled or not (issue 20): a flat folder, a date-nested phone dump
// (2024/01, 2024/02) and class folders in one run (--labels auto), and a flat folder with a labels
// file of two fields (--labels FILE). Each run exits 0 and its bundle opens with no console error;
// without labels no view shows a score table, NaN or "0 of 15" (label-free guidance instead); with
// a labels file the leaderboard and the map choose the field.
// Screenshots: RESULTS/b20-unlabelled-map.png, RESULTS/b20-field-map.png (copied to /tmp when
// B20_SHOTS is set).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO, RESULTS, ensureSiteBuilt, launchBrowser, startServer, waitQuiet, watchPage } from './harness.mjs';

const PY = path.join(REPO, '.venv', 'bin', 'python');
let tmp, auto, labelled, browser, runs;

function precompute(datasets, extra, name) {
  const cfg = path.join(tmp, 'run.toml');
  // Small and fast: one model, two layers, one pooling and metric; no browser model, no atlas.
  fs.writeFileSync(cfg, 'models = ["mobilenet_025"]\nnum_layers = 2\nmetrics = ["cosine"]\npooling = ["avg"]\n'
    + 'weights = "none"\nbrowser_search = false\natlas = false\nfeatviz_models = []\n');
  const out = path.join(tmp, `bundle-${name}`);
  const r = spawnSync(PY, ['-m', 'convnet_search.cli', 'precompute', '--config', cfg, '--dataset', ...datasets, ...extra,
    '--out', out, '--work', path.join(tmp, `work-${name}`)], { cwd: REPO, encoding: 'utf8', env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' } });
  return { out, status: r.status, stdout: r.stdout, stderr: r.stderr };
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-e2e-labels-'));
  const src = path.join(tmp, 'src');
  const mk = spawnSync(PY, [path.join(REPO, 'frontend', 'e2e', 'make_images.py'), src, '5'], { encoding: 'utf8' });
  assert.equal(mk.status, 0, mk.stderr);
  const images = [];  // [class, file path]
  for (const c of fs.readdirSync(src).sort()) for (const f of fs.readdirSync(path.join(src, c)).sort()) images.push([c, path.join(src, c, f)]);
  const put = (dir, rel, file) => { fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true }); fs.copyFileSync(file, path.join(dir, rel)); };
  const sets = path.join(tmp, 'sets');
  images.forEach(([c, f], i) => {
    const name = `IMG_${String(i).padStart(4, '0')}.png`;
    put(path.join(sets, 'flat'), name, f);
    put(path.join(sets, 'phone'), `2024/${i % 2 ? '02' : '01'}/${name}`, f);
    put(path.join(sets, 'classes'), `${c}/${path.basename(f)}`, f);
    put(path.join(sets, 'products'), name, f);
  });
  // Two fields: the shape, and a tone that crosses it; one empty cell; the last two images have no row.
  const rows = images.slice(0, -2).map(([c], i) => `IMG_${String(i).padStart(4, '0')}.png,${c},${i === 3 ? '' : i % 3 ? 'dark' : 'light'}`);
  fs.writeFileSync(path.join(tmp, 'products.csv'), ['path,shape,tone', ...rows].join('\n') + '\n');
  runs = {
    auto: precompute(['flat', 'phone', 'classes'].map((d) => path.join(sets, d)), [], 'auto'),
    file: precompute([path.join(sets, 'products')], ['--labels', path.join(tmp, 'products.csv')], 'file'),
  };
  ensureSiteBuilt();
  if (runs.auto.status === 0) auto = await startServer({ bundleDir: runs.auto.out });
  if (runs.file.status === 0) labelled = await startServer({ bundleDir: runs.file.out });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await auto?.close();
  await labelled?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function open(server, query) {
  const page = await browser.context.newPage();
  const problems = watchPage(page);
  await page.goto(server.url + query);
  return { page, problems };
}

async function shot(page, name) {
  const file = path.join(RESULTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (process.env.B20_SHOTS) fs.copyFileSync(file, path.join(process.env.B20_SHOTS, `${name}.png`));
}

/** Data bytes (thumbnails aside) a view switch fetches: the per-view budget is 20 KB at N = 200. */
async function switchBytes(server, act) {
  const from = server.log.length;
  await act();
  await waitQuiet(server);
  return server.log.slice(from).filter((e) => e.path.startsWith('/data/') && !e.path.includes('/thumbs/')).reduce((s, e) => s + e.bytes, 0);
}

async function noLabelNonsense(page) {
  const text = await page.evaluate(() => document.body.innerText);
  assert.doesNotMatch(text, /NaN|\b0 of \d+ results|undefined/);
}

describe('any image collection', () => {
  test('every run exits 0 and says which labels mode auto chose', () => {
    assert.equal(runs.auto.status, 0, runs.auto.stderr + runs.auto.stdout);
    assert.equal(runs.file.status, 0, runs.file.stderr + runs.file.stdout);
    const said = (runs.auto.stdout + runs.auto.stderr).replace(/\s+/g, ' ');
    assert.match(said, /dataset 'flat': labels: none \(20 images lie directly in the folder\)/);
    assert.match(said, /dataset 'phone': labels: none \(only 1 first-level folder holds images\)/);
    assert.match(said, /dataset 'classes': labels: class folders/);
    const m = JSON.parse(fs.readFileSync(path.join(runs.auto.out, 'manifest.json'), 'utf8'));
    assert.deepEqual(m.datasets.map((d) => [d.id, d.labels, d.fields.map((f) => f.id)]), [['flat', 'none', []], ['phone', 'none', []], ['classes', 'folders', ['class']]]);
  });

  for (const id of ['flat', 'phone']) {
    test(`${id}: unlabelled — search, map and guidance with no empty table, NaN or "0 of 15"`, async () => {
      const { page, problems } = await open(auto, `?dataset=${id}&q=0`);
      await page.waitForSelector('.results-grid .result');
      assert.match(await page.textContent('.no-labels'), /No search score: .* has no labels/);
      assert.equal(await page.locator('.score-box').count(), 0);
      await noLabelNonsense(page);
      const bytes = await switchBytes(auto, async () => {
        await page.click('#tab-compare');
        await page.waitForSelector('.heatmap[data-kind="hubness"] .heat-cell');
      });
      assert.ok(bytes > 0 && bytes <= 20_000, `compare (guidance) fetched ${bytes} B`);
      assert.equal(await page.locator('.heatmap[data-kind="agreement"] .heat-cell').count(), 2);
      assert.equal(await page.locator('.heatmap[data-kind="score"]').count(), 0);
      assert.match(await page.textContent('.cmp-query .no-labels'), /has no labels .* so no search score can say which results are right/);
      await noLabelNonsense(page);
      if (id === 'flat') await shot(page, 'b20-unlabelled-guidance');
      await page.click('#tab-map');
      await page.waitForSelector('canvas.umap-canvas[data-points]');
      assert.equal(Number(await page.getAttribute('canvas.umap-canvas', 'data-points')), 20);
      const legend = await page.$$eval('.legend li', (els) => els.map((e) => e.textContent));
      assert.deepEqual(legend, id === 'flat' ? ['(top level)'] : ['2024']);
      assert.equal(await page.inputValue('#sel-colour'), 'folder');
      if (id === 'phone') {
        await page.click('#tab-search');
        await page.waitForSelector('.query-file');
        await page.waitForFunction(() => /^2024\/0[12]\/IMG_\d{4}\.png$/.test(document.querySelector('.query-file')?.textContent ?? ''));
      }
      if (id === 'flat') await shot(page, 'b20-unlabelled-map');
      assert.deepEqual(problems, []);
    });
  }

  test('class folders: the class field scores every query', async () => {
    const { page, problems } = await open(auto, '?dataset=classes&q=0&view=compare');
    await page.waitForSelector('.heatmap[data-kind="score"] .heat-cell');
    assert.deepEqual(await page.$$eval('#sel-field option', (els) => els.map((e) => e.textContent)), ['class']);
    await page.click('#tab-search');
    await page.waitForSelector('.score-same');
    assert.match(await page.textContent('.score-same'), /^\d+ of 15 results have the same class \(“\w+”\)\.$/);
    assert.deepEqual(problems, []);
  });

  test('a labels file with two fields: the leaderboard and the map choose the field', async () => {
    const m = JSON.parse(fs.readFileSync(path.join(runs.file.out, 'manifest.json'), 'utf8'));
    const [shape, tone] = m.datasets[0].fields;
    assert.deepEqual([shape.name, shape.labelled, shape.queries, shape.skipped], ['shape', 18, 18, 2]);
    assert.deepEqual([tone.name, tone.values, tone.labelled, tone.skipped], ['tone', ['dark', 'light'], 17, 3]);
    const { page, problems } = await open(labelled, '?view=compare&q=0');
    await page.waitForSelector('.heatmap[data-kind="score"] .heat-cell');
    const fieldBytes = await switchBytes(labelled, async () => {
      await page.selectOption('#sel-field', 'tone');
      await page.waitForFunction(() => new URL(location.href).searchParams.get('field') === 'tone');
      await page.waitForFunction(() => /17 images with a value in it; 3 without one are skipped/.test(document.querySelector('.cmp-board')?.textContent ?? ''));
    });
    assert.ok(fieldBytes > 0 && fieldBytes <= 20_000, `field switch fetched ${fieldBytes} B`);
    const summary = JSON.parse(fs.readFileSync(path.join(runs.file.out, 'datasets/products/summary/tone/cosine.json'), 'utf8'));
    const best = Math.max(...summary.search_score[0][0]);
    assert.match(await page.textContent('.heat-cell.best'), new RegExp(best.toFixed(2).replace('.', '\\.')));
    // Query 3 has no tone: skipped for that field, and said so (not scored 0).
    await page.goto(`${labelled.url}?view=compare&q=3&field=tone`);
    await page.waitForSelector('.skipped-query');
    assert.match(await page.textContent('.skipped-query'), /no value in the field "tone"/);
    await page.goto(`${labelled.url}?view=map&q=3&field=tone&colour=folder`);
    await page.waitForSelector('canvas.umap-canvas[data-points]');
    assert.deepEqual(await page.$$eval('.legend li', (els) => els.map((e) => e.textContent)), ['(top level)']);
    const colourBytes = await switchBytes(labelled, async () => {
      await page.selectOption('#sel-colour', 'tone');
      await page.waitForFunction(() => [...document.querySelectorAll('.legend li')].map((e) => e.textContent).join('|') === 'dark|light|no tone (3 images)');
    });
    assert.ok(colourBytes <= 20_000, `colour switch fetched ${colourBytes} B`);
    process.stderr.write(`# view switches: field ${fieldBytes} B, map colour ${colourBytes} B (N = 20)\n`);
    await page.waitForTimeout(300);
    await shot(page, 'b20-field-map');
    assert.deepEqual(await page.$$eval('#sel-colour option', (els) => els.map((e) => e.value)), ['shape', 'tone', 'folder']);
    await noLabelNonsense(page);
    assert.deepEqual(problems, []);
  });
});
