// End-to-end harness shared by the explorer and live-search tests:
//  - buildTinyBundle(): a tiny image folder (4 classes × 10 images + one file named like an XSS
//    payload) run through the real engine CLI with configs/e2e.toml; cached on disk by a hash of
//    the engine sources, the config and the images, so a second test file (or run) reuses it.
//  - ensureSiteBuilt(): `npm run build` when dist/ is missing or older than the sources.
//  - startServer(): node:http static server on 127.0.0.1:<random>, dist/ at /, bundle at /data/,
//    logging every response's byte count (to measure what a page fetches).
//  - launchBrowser(): headless Debian Chromium through playwright-core.
//  - serveBundle() / openTinyBundle() / closeAll(): what a test file's before() and after() open
//    and close (the built site, a bundle's server, a browser).
//  - runEngine(): this checkout's engine CLI.
//  - assertWithinWidth(): layout check for narrow viewports (element boxes inside 0…width px).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const FRONTEND = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = path.resolve(FRONTEND, '..');
export const DIST = path.join(FRONTEND, 'dist');
export const RESULTS = path.join(FRONTEND, 'test-results');
export const XSS_NAME = '<img src=x onerror=alert(1)>.png';
export const PY = path.join(REPO, '.venv', 'bin', 'python');
const CONFIG = path.join(REPO, 'configs', 'e2e.toml');
const SHAPES = path.join(REPO, 'datasets', 'shapes', 'images');
const CLASSES = 4;
const PER_CLASS = 10;

function listFiles(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p));
    else out.push(p);
  }
  return out;
}

/** Copies the test images into dir/<class>/…: from datasets/shapes if it exists, else generated. */
function makeImageFolder(dir) {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const classes = fs.existsSync(SHAPES)
    ? fs.readdirSync(SHAPES).filter((c) => fs.statSync(path.join(SHAPES, c)).isDirectory()).sort()
    : [];
  if (classes.length >= CLASSES) {
    for (const c of classes.slice(0, CLASSES)) {
      fs.mkdirSync(path.join(dir, c));
      const imgs = fs.readdirSync(path.join(SHAPES, c)).filter((f) => /\.(png|jpe?g|webp|bmp|gif)$/i.test(f)).sort().slice(0, PER_CLASS);
      for (const f of imgs) fs.copyFileSync(path.join(SHAPES, c, f), path.join(dir, c, f));
    }
  } else {
    execFileSync(PY, [path.join(FRONTEND, 'e2e', 'make_images.py'), dir, String(PER_CLASS)], { stdio: 'inherit' });
  }
  const first = fs.readdirSync(dir).sort()[0];
  const src = listFiles(path.join(dir, first))[0];
  fs.copyFileSync(src, path.join(dir, first, XSS_NAME));
}

function hashInputs(imagesDir) {
  const h = createHash('sha256');
  const engine = path.join(REPO, 'convnet_search');
  for (const f of [...listFiles(engine).filter((f) => f.endsWith('.py')), CONFIG]) {
    h.update(path.relative(REPO, f));
    h.update(fs.readFileSync(f));
  }
  for (const f of listFiles(imagesDir)) {
    h.update(path.relative(imagesDir, f));
    h.update(fs.readFileSync(f));
  }
  return h.digest('hex').slice(0, 16);
}

function withLock(lockDir, fn) {
  const start = Date.now();
  for (;;) {
    try {
      fs.mkdirSync(lockDir);
      break;
    } catch {
      // A lock left by a killed run (older than the slowest bundle build) is stale: take it over.
      const age = Date.now() - (fs.statSync(lockDir, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 10 * 60_000) fs.rmSync(lockDir, { recursive: true, force: true });
      if (Date.now() - start > 15 * 60_000) throw new Error(`timed out waiting for ${lockDir}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lockDir, { recursive: true, force: true });
  }
}

/**
 * Runs `convnet-search ARGS` with this checkout's engine, not whichever one the venv's console
 * script was installed from (a git worktree shares the main checkout's .venv); returns spawnSync's
 * result (utf8 stdout/stderr).
 */
export function runEngine(args) {
  return spawnSync(PY, ['-m', 'convnet_search.cli', ...args], {
    encoding: 'utf8',
    cwd: REPO,
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3', PYTHONPATH: [REPO, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter) },
    maxBuffer: 64 * 1024 * 1024,
  });
}

/**
 * Builds (or reuses) the tiny engine bundle; returns { dir, imagesDir }.
 * E2E_FRESH=1 forces a rebuild.
 */
export function buildTinyBundle() {
  fs.mkdirSync(RESULTS, { recursive: true });
  return withLock(path.join(RESULTS, '.bundle-lock'), () => {
    const imagesDir = path.join(RESULTS, 'e2e-images', 'tiny');
    makeImageFolder(imagesDir);
    const key = hashInputs(imagesDir);
    const dir = path.join(RESULTS, `e2e-bundle-${key}`);
    if (process.env.E2E_FRESH !== '1' && fs.existsSync(path.join(dir, 'manifest.json'))) return { dir, imagesDir };
    for (const old of fs.readdirSync(RESULTS).filter((f) => f.startsWith('e2e-bundle-'))) fs.rmSync(path.join(RESULTS, old), { recursive: true, force: true });
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-e2e-work-'));
    const tmpOut = `${dir}.partial`;
    fs.rmSync(tmpOut, { recursive: true, force: true });
    const t0 = Date.now();
    // This checkout's engine: the bundle's cache key hashes it.
    const r = runEngine(['precompute', '--config', CONFIG, '--dataset', imagesDir, '--out', tmpOut, '--work', work]);
    fs.rmSync(work, { recursive: true, force: true });
    if (r.status !== 0) {
      throw new Error(`convnet-search precompute failed (exit ${r.status}):\n${(r.stderr || '').slice(-4000)}\n${(r.stdout || '').slice(-2000)}`);
    }
    fs.renameSync(tmpOut, dir);
    process.stderr.write(`# built the e2e bundle with the engine in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${dir}\n`);
    return { dir, imagesDir };
  });
}

const LABEL_ARRAYS = { uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array };

/**
 * A bundle's dataset as the tests use it, read from disk as docs/bundle.md describes it
 * (labels.bin + the names pages): { dataset, size, files: [N names], labels: [N class indices] }.
 */
export function readIndex(bundleDir, dataset) {
  const manifest = JSON.parse(fs.readFileSync(path.join(bundleDir, 'manifest.json'), 'utf8'));
  const ds = manifest.datasets.find((d) => d.id === dataset);
  const fill = (t, v) => t.replace(/\{(\w+)\}/g, (_, k) => String(v[k]));
  const raw = fs.readFileSync(path.join(bundleDir, fill(manifest.files.labels, { dataset })));
  const labels = Array.from(new LABEL_ARRAYS[ds.label_dtype](raw.buffer, raw.byteOffset, ds.size));
  const files = [];
  for (let p = 0; p * ds.names_page < ds.size; p++) files.push(...JSON.parse(fs.readFileSync(path.join(bundleDir, fill(manifest.files.names, { dataset, page: p })), 'utf8')));
  return { dataset, size: ds.size, files, labels };
}

function newestMtime(p) {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(st.mtimeMs, ...fs.readdirSync(p).map((f) => newestMtime(path.join(p, f))));
}

/** Runs the production build when dist/ is missing or older than any source file. */
export function ensureSiteBuilt() {
  fs.mkdirSync(RESULTS, { recursive: true });
  return withLock(path.join(RESULTS, '.build-lock'), () => {
    const inputs = ['src', 'index.html', 'vite.config.ts', 'package.json'].map((f) => path.join(FRONTEND, f)).filter((f) => fs.existsSync(f));
    const built = path.join(DIST, 'index.html');
    if (fs.existsSync(built) && fs.statSync(built).mtimeMs >= Math.max(...inputs.map(newestMtime))) return DIST;
    const r = spawnSync('npm', ['run', '-s', 'build'], { cwd: FRONTEND, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`npm run build failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
    return DIST;
  });
}

const MIME = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.wasm': 'application/wasm', '.png': 'image/png',
  '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.svg': 'image/svg+xml', '.webp': 'image/webp', '.ico': 'image/x-icon',
  '.bin': 'application/octet-stream', '.f32': 'application/octet-stream', '.knn': 'application/octet-stream', '.u8': 'application/octet-stream',
};

/**
 * Serves siteDir at / and bundleDir at /data/ (with single-range requests unless noRange). Returns { url, log, bytes(), reset(), close() };
 * log entries are { path, bytes, status } in response order.
 */
export async function startServer({ siteDir = DIST, bundleDir, noRange = false } = {}) {
  const log = [];
  const server = http.createServer((req, res) => {
    const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const [root, rel] = bundleDir && urlPath.startsWith('/data/') ? [bundleDir, urlPath.slice(6)] : [siteDir, urlPath.slice(1) || 'index.html'];
    const file = path.resolve(root, rel);
    if (!file.startsWith(path.resolve(root) + path.sep) && file !== path.resolve(root)) {
      res.writeHead(403).end();
      return;
    }
    fs.readFile(file, (err, body) => {
      if (err) {
        log.push({ path: urlPath, bytes: 0, status: 404 });
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      const type = MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
      // Single byte ranges, as static hosts serve them (DataProvider.neighborRow); noRange: a host without.
      const m = !noRange && /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (m && Number(m[1]) <= Number(m[2]) && Number(m[1]) < body.length) {
        const start = Number(m[1]), end = Math.min(body.length - 1, Number(m[2]));
        const part = body.subarray(start, end + 1);
        log.push({ path: urlPath, bytes: part.length, status: 206 });
        res.writeHead(206, { 'content-type': type, 'content-length': part.length, 'content-range': `bytes ${start}-${end}/${body.length}`, 'accept-ranges': 'bytes', 'cache-control': 'no-cache' });
        res.end(part);
        return;
      }
      log.push({ path: urlPath, bytes: body.length, status: 200 });
      res.writeHead(200, { 'content-type': type, 'content-length': body.length, 'cache-control': 'no-cache', ...(noRange ? {} : { 'accept-ranges': 'bytes' }) });
      res.end(body);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/`,
    log,
    bytes: (from = 0) => log.slice(from).reduce((s, e) => s + e.bytes, 0),
    reset: () => log.splice(0, log.length),
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); }),
  };
}

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/** Headless Chromium with a throw-away profile; returns { context, close() }. */
export async function launchBrowser(options = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
    ...options,
  });
  return {
    context,
    close: async () => {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Collects console errors, page errors and dialogs (an XSS would open one) of a page. */
export function watchPage(page) {
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('dialog', (d) => { problems.push(`dialog: ${d.message()}`); void d.dismiss(); });
  return problems;
}

/**
 * Resolves once the server has answered no request for quietMs. (Playwright's "networkidle" is a
 * load state reached once per navigation, so it cannot tell when a later click's fetches end.)
 */
export async function waitQuiet(server, quietMs = 400, timeoutMs = 15_000) {
  const start = Date.now();
  let n = server.log.length;
  let since = Date.now();
  while (Date.now() - since < quietMs) {
    if (Date.now() - start > timeoutMs) throw new Error('the page kept fetching for 15 s');
    await new Promise((r) => setTimeout(r, 50));
    if (server.log.length !== n) {
      n = server.log.length;
      since = Date.now();
    }
  }
}

/** Every element matching selector lies within [0, width] horizontally (its box, as drawn). */
export async function assertWithinWidth(page, selector, width) {
  const boxes = await page.$$eval(selector, (els) => els.map((e) => {
    const r = e.getBoundingClientRect();
    return { what: `${e.tagName.toLowerCase()}.${[...e.classList].join('.')} “${(e.textContent ?? '').trim().slice(0, 30)}”`, left: r.left, right: r.right };
  }));
  assert.ok(boxes.length > 0, `nothing matches ${selector}`);
  const out = boxes.filter((b) => b.left < -0.5 || b.right > width + 0.5);
  assert.deepEqual(out, [], `${out.length} of ${boxes.length} elements reach outside 0…${width} px`);
}

/** The built site with bundleDir at /data/, and a browser: { server, browser } (closeAll closes them). */
export async function serveBundle(bundleDir, launchOptions = {}) {
  ensureSiteBuilt();
  const server = await startServer({ bundleDir });
  const browser = await launchBrowser(launchOptions);
  return { server, browser };
}

/** The tiny engine bundle served (serveBundle) with its manifest, first dataset and that dataset's index. */
export async function openTinyBundle() {
  const bundle = buildTinyBundle();
  const manifest = JSON.parse(fs.readFileSync(path.join(bundle.dir, 'manifest.json'), 'utf8'));
  const ds = manifest.datasets[0];
  const index = readIndex(bundle.dir, ds.id);
  return { bundle, manifest, ds, index, ...(await serveBundle(bundle.dir)) };
}

/** A test file's after(): closes what its before() opened (any of it may be missing if before() failed) and removes tmp. */
export async function closeAll({ browser, server, tmp } = {}) {
  await browser?.close();
  await server?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}
