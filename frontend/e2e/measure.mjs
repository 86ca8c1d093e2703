// Measures the explorer on a real bundle (default: public/data from `make precompute`):
// time from navigation to the first result, bytes fetched until then, and bytes per view switch.
// Usage: node e2e/measure.mjs [bundleDir]  → prints JSON and writes test-results/measure.json
import fs from 'node:fs';
import path from 'node:path';
import { FRONTEND, RESULTS, ensureSiteBuilt, launchBrowser, startServer, waitQuiet, watchPage } from './harness.mjs';

const bundleDir = path.resolve(process.argv[2] ?? path.join(FRONTEND, 'public', 'data'));
if (!fs.existsSync(path.join(bundleDir, 'manifest.json'))) {
  console.error(`${bundleDir}/manifest.json not found: run "make precompute" or pass a bundle folder`);
  process.exit(2);
}
ensureSiteBuilt();
const server = await startServer({ bundleDir });
const browser = await launchBrowser();
const split = (entries) => {
  const out = { code: 0, data: 0, thumbs: 0, thumbCount: 0, dataFiles: [] };
  for (const e of entries) {
    if (e.path.includes('/thumbs/')) { out.thumbs += e.bytes; out.thumbCount++; }
    else if (e.path.startsWith('/data/')) { out.data += e.bytes; out.dataFiles.push(`${e.path.slice(6)} ${e.bytes}`); }
    else out.code += e.bytes;
  }
  return out;
};
try {
  const runs = [];
  for (let i = 0; i < 3; i++) {
    server.reset();
    const page = await browser.context.newPage();
    const problems = watchPage(page);
    await page.goto(server.url);
    await page.waitForSelector('.results-grid .result');
    await page.waitForFunction(() => [...document.querySelectorAll('.results-grid img, .query-img')].every((im) => im.complete && im.naturalWidth > 0));
    const ms = await page.evaluate(() => performance.getEntriesByName('first-result')[0].startTime);
    const shown = await page.evaluate(() => performance.now());
    runs.push({ firstResultMs: Math.round(ms), allResultImagesMs: Math.round(shown), bytes: server.bytes(), ...split(server.log), problems });
    if (i < 2) await page.close();
    else {
      await waitQuiet(server);
      const switches = {};
      const step = async (name, act) => {
        const from = server.log.length;
        await act();
        await page.waitForTimeout(100);
        await waitQuiet(server);
        const s = split(server.log.slice(from));
        switches[name] = { data: s.data, thumbs: s.thumbs, files: s.dataFiles };
      };
      await step('search→map', () => page.click('#tab-map'));
      await step('map→compare', () => page.click('#tab-compare'));
      await step('compare→search', () => page.click('#tab-search'));
      await step('layer change', async () => page.selectOption('#sel-layer', { index: 0 }));
      await step('metric change', () => page.selectOption('#sel-metric', 'euclidean'));
      await step('model change', () => page.selectOption('#sel-model', { index: 1 }));
      await step('new query (result click)', () => page.click('.results-grid .result-btn >> nth=3'));
      await step('dataset change', () => page.selectOption('#sel-dataset', { index: 1 }));
      runs[i].switches = switches;
    }
  }
  const out = { bundle: bundleDir, runs };
  fs.mkdirSync(RESULTS, { recursive: true });
  fs.writeFileSync(path.join(RESULTS, 'measure.json'), JSON.stringify(out, null, 1));
  console.log(JSON.stringify(out, null, 1));
} finally {
  await browser.close();
  await server.close();
}
