// A larger bundle for the scale checks (UMAP smoothness at 10⁴ points, bytes per view switch at
// N=200), derived from the engine-built tiny bundle: its metrics and thumbnails (hard-linked,
// reused cyclically), its models and layers or, with { models, layers }, that many (e.g. 9 × 8 =
// the default run's 72 configurations: the tiny bundle's repeated under new ids), with N synthetic
// images whose files have exactly the sizes and layout docs/bundle.md fixes for that N (dataset
// id `scaled<N>`, or { id }: the base's own id gives a "rebuilt" bundle at the same paths). The
// explorer's behaviour (not the engine's numbers) is what these checks measure; correctness
// checks use the real engine bundle.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
/** Per-image thumbnails exist only up to this N (convnet_search/bundle.py LEGACY_THUMBS_MAX). */
const LEGACY_THUMBS_MAX = 5000;

function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gauss(r) {
  return Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
}

/** UMAP-like layout: one blob per class, normalised into [0,1]² as the contract says. */
function layout(labels, classes, r) {
  const n = labels.length;
  const xy = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    const a = (2 * Math.PI * labels[i]) / classes;
    xy[2 * i] = Math.cos(a) * 3 + gauss(r) * 0.8;
    xy[2 * i + 1] = Math.sin(a) * 3 + gauss(r) * 0.8;
  }
  let lo = Infinity, hi = -Infinity;
  for (const v of xy) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  for (let i = 0; i < xy.length; i++) xy[i] = (xy[i] - lo) / (hi - lo);
  return xy;
}

/** Random neighbours (ascending distances, q excluded), biased towards the query's class. */
function neighbours(labels, k, r, Ids) {
  const n = labels.length;
  const buf = new ArrayBuffer(n * k * (4 + Ids.BYTES_PER_ELEMENT));
  const dist = new Float32Array(buf, 0, n * k);
  const ids = new Ids(buf, n * k * 4, n * k);
  for (let q = 0; q < n; q++) {
    const seen = new Set([q]);
    let d = 0.1 + r();
    for (let i = 0; i < k; i++) {
      let j;
      do j = Math.floor(r() * n); while (seen.has(j));
      seen.add(j);
      d += r() * 0.2;
      dist[q * k + i] = d;
      ids[q * k + i] = j;
    }
  }
  return { buf, ids };
}

/** `count` models of `layers` layers each, cycling through the tiny bundle's (ids made unique). */
function defaultSizedModels(models, count, layers) {
  return Array.from({ length: count }, (_, i) => {
    const m = models[i % models.length];
    const round = Math.floor(i / models.length);
    return {
      ...m,
      id: round ? `${m.id}${round + 1}` : m.id,
      name: round ? `${m.name} (${round + 1})` : m.name,
      layers: Array.from({ length: layers }, (_, j) => {
        const l = m.layers[j % m.layers.length];
        const r = Math.floor(j / m.layers.length);
        return { ...l, name: r ? `${l.name}_${r + 1}` : l.name };
      }),
    };
  });
}

export function deriveScaledBundle(baseDir, outDir, n, { models, layers, id = `scaled${n}` } = {}) {
  const tiny = JSON.parse(fs.readFileSync(path.join(baseDir, 'manifest.json'), 'utf8'));
  const base = models && layers ? { ...tiny, models: defaultSizedModels(tiny.models, models, layers) } : tiny;
  const src = base.datasets[0];
  const classes = src.classes;
  const C = classes.length;
  const Ids = n <= 65535 ? Uint16Array : Uint32Array;
  const manifest = {
    ...base,
    datasets: [{ ...src, id, name: `Scaled test set (${n})`, description: 'Synthetic scale test.', size: n, id_dtype: n <= 65535 ? 'uint16' : 'uint32', k: src.k, score: src.score, skipped: [],
      fields: src.fields.map((f) => ({ ...f, labelled: n, queries: n, skipped: 0 })) }],
    browser_search: null,
  };
  if (n > LEGACY_THUMBS_MAX) {
    const { thumbnail: _legacy, ...files } = manifest.files;
    manifest.files = files;
  }
  fs.rmSync(outDir, { recursive: true, force: true });
  const dsDir = path.join(outDir, 'datasets', id);
  fs.mkdirSync(path.join(dsDir, 'thumbs'), { recursive: true });
  // Sprite sheets (the format's thumbnails): the base bundle's cells reused cyclically.
  execFileSync(path.join(REPO, '.venv', 'bin', 'python'), [path.join(HERE, 'make_sheets.py'), baseDir, src.id, dsDir, String(n)], { env: { ...process.env, PYTHONPATH: REPO }, stdio: 'inherit' });
  const labels = Array.from({ length: n }, (_, i) => Math.floor((i * C) / n));
  // files.labels and the names pages (docs/bundle.md), as convnet_search/bundle.py writes them.
  const Labels = { uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array }[src.label_dtype];
  fs.writeFileSync(path.join(dsDir, 'labels.bin'), new Uint8Array(Labels.from(labels).buffer));
  fs.mkdirSync(path.join(dsDir, 'names'));
  const names = labels.map((l, i) => `${classes[l]}/img_${String(i).padStart(5, '0')}.png`);
  for (let p = 0; p * src.names_page < n; p++) fs.writeFileSync(path.join(dsDir, 'names', `${p}.json`), JSON.stringify(names.slice(p * src.names_page, (p + 1) * src.names_page)));
  if (n <= LEGACY_THUMBS_MAX) for (let i = 0; i < n; i++) fs.linkSync(path.join(baseDir, 'datasets', src.id, 'thumbs', `${i % src.size}.jpg`), path.join(dsDir, 'thumbs', `${i}.jpg`));
  const r = rng(n);
  const k = src.k;
  const poolings = base.poolings.map((p) => p.id);
  const configs = base.models.reduce((s, m) => s + m.layers.length, 0);
  const perQuery = poolings.length * configs;
  // Same rule as convnet_search/bundle.py scores_block: a block of query rows stays ≤ 4096 bytes.
  const block = Math.max(1, Math.floor(4096 / perQuery));
  manifest.datasets[0].scores_block = block;
  fs.writeFileSync(path.join(outDir, 'manifest.json'), JSON.stringify(manifest));
  fs.mkdirSync(path.join(dsDir, 'summary', 'class'), { recursive: true });
  const round4 = (x) => Math.round(x * 1e4) / 1e4; // the engine rounds summary means to 4 decimals
  for (const metric of base.metrics) {
    const u8 = new Uint8Array(n * perQuery); // [query][pooling][configuration]
    const table = { search_score: [], precision_at_k: [], map_at_k: [] };
    poolings.forEach((pooling, pi) => {
      const perPooling = { search_score: [], precision_at_k: [], map_at_k: [] };
      let c = 0;
      for (const model of base.models) {
        const rows = { search_score: [], precision_at_k: [], map_at_k: [] };
        for (const layer of model.layers) {
          const dir = path.join(dsDir, model.id, layer.name, pooling);
          fs.mkdirSync(dir, { recursive: true });
          if (metric === base.metrics[0]) fs.writeFileSync(path.join(dir, 'umap.f32'), layout(labels, C, r));
          const { buf, ids } = neighbours(labels, k, r, Ids);
          fs.writeFileSync(path.join(dir, `${metric.id}.knn`), new Uint8Array(buf));
          let sumS = 0, sumP = 0;
          for (let q = 0; q < n; q++) {
            let s = 0, same = 0;
            for (let i = 0; i < k; i++) if (labels[ids[q * k + i]] === labels[q]) { s += k - i; same++; }
            u8[q * perQuery + pi * configs + c] = s;
            sumS += s / src.score.scale;
            sumP += same / k;
          }
          rows.search_score.push(round4(sumS / n));
          rows.precision_at_k.push(round4(sumP / n));
          rows.map_at_k.push(round4(sumP / n));
          c++;
        }
        for (const key of Object.keys(perPooling)) perPooling[key].push(rows[key]);
      }
      for (const key of Object.keys(table)) table[key].push(perPooling[key]);
    });
    const scoresDir = path.join(dsDir, 'scores', 'class', metric.id);
    fs.mkdirSync(scoresDir, { recursive: true });
    for (let b = 0; b * block < n; b++) fs.writeFileSync(path.join(scoresDir, `${b}.u8`), u8.subarray(b * block * perQuery, Math.min(n, (b + 1) * block) * perQuery));
    fs.writeFileSync(path.join(dsDir, 'summary', 'class', `${metric.id}.json`), JSON.stringify({ dataset: id, metric: metric.id, poolings, ...table }));
  }
  return { dir: outDir, manifest, dataset: id };
}
