#!/usr/bin/env node
// Run a converted TF.js graph model in Node with pure @tensorflow/tfjs + the wasm backend (the
// backend the browser prefers) and write the pooled features it returns.
//
//   node scripts/tfjs-embed.mjs MODEL_DIR IMAGES.npy [MORE.npy …] OUT_DIR [--outputs a:Identity_3:0,b:Identity:0]
//
// IMAGES.npy: uint8 or float32 [B, h, w, 3] RGB 0…255; several files (e.g. one per image of
// different sizes) are embedded in order as one batch. If (h, w) differs from the model input,
// each image is resized exactly as the browser does it: tf.image.resizeBilinear(img, size,
// alignCorners=false, halfPixelCenters=true), the twin of Python's
// tf.image.resize(img, size, 'bilinear', antialias=False).
// Outputs: which graph tensors to fetch, as layer:tensor pairs; default: model.json's signature.
// Writes OUT_DIR/<layer>.f32 (float32 [B, dim], little-endian) and prints a JSON summary.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

function fail(msg) {
  console.error(`tfjs-embed: ${msg}`);
  process.exit(2);
}

/** Minimal .npy reader: C-order, little-endian float32 or uint8. */
export function readNpy(path) {
  const buf = readFileSync(path);
  if (buf.subarray(0, 6).toString('latin1') !== '\x93NUMPY') fail(`${path}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.subarray(start, start + headerLen).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) fail(`${path}: unreadable .npy header ${header}`);
  if (fortran === 'True') fail(`${path}: Fortran-order arrays are not supported`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const off = start + headerLen;
  const bytes = buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + buf.length);
  let data;
  if (descr === '<f4') data = new Float32Array(bytes);
  else if (descr === '|u1' || descr === '<u1') data = new Uint8Array(bytes);
  else fail(`${path}: dtype ${descr} not supported (use float32 or uint8)`);
  const expected = shape.reduce((a, b) => a * b, 1);
  if (data.length !== expected) fail(`${path}: ${data.length} values for shape [${shape}]`);
  return { shape, data, dtype: descr === '<f4' ? 'float32' : 'int32' };
}

/** file:// cannot be fetched by plain tfjs in Node: hand it the artifacts ourselves. */
export function fileHandler(modelDir) {
  return {
    load: async () => {
      const modelJson = JSON.parse(readFileSync(join(modelDir, 'model.json'), 'utf8'));
      return tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
        const specs = [];
        const parts = [];
        for (const group of manifest) {
          for (const p of group.paths) parts.push(readFileSync(join(modelDir, p)));
          specs.push(...group.weights);
        }
        const all = Buffer.concat(parts);
        return [specs, all.buffer.slice(all.byteOffset, all.byteOffset + all.length)];
      });
    },
  };
}

async function main() {
  const args = process.argv.slice(2);
  const pos = args.filter((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1] === '--outputs'));
  if (pos.length < 3) fail('usage: tfjs-embed.mjs MODEL_DIR IMAGES.npy [MORE.npy …] OUT_DIR [--outputs layer:tensor,…]');
  const [modelDir, ...rest] = pos.map((p) => resolve(p));
  const outDir = rest.pop();
  const oi = args.indexOf('--outputs');

  await tf.setBackend('wasm');
  await tf.ready();
  const model = await tf.loadGraphModel(fileHandler(modelDir));
  const sig = JSON.parse(readFileSync(join(modelDir, 'model.json'), 'utf8')).signature;
  let outputs;
  if (oi >= 0) {
    outputs = args[oi + 1].split(',').map((pair) => {
      const i = pair.indexOf(':');
      return { layer: pair.slice(0, i), output: pair.slice(i + 1) };
    });
  } else {
    outputs = Object.entries(sig.outputs).map(([layer, v]) => ({ layer, output: v.name }));
  }
  const inDims = Object.values(sig.inputs)[0].tensorShape.dim.map((d) => Number(d.size));
  const size = [inDims[1], inDims[2]];

  const feats = outputs.map(() => []);
  const baseline = tf.memory().numTensors;
  const times = [];
  let b = 0;
  for (const npyPath of rest) {
    const { shape, data, dtype } = readNpy(npyPath);
    if (shape.length !== 4 || shape[3] !== 3) fail(`${npyPath}: expected [B, h, w, 3], got [${shape}]`);
    const [n, h, w] = shape;
    const per = h * w * 3;
    for (let i = 0; i < n; i++, b++) {
      const t0 = performance.now();
      const slice = data.subarray(i * per, (i + 1) * per);
      const ys = tf.tidy(() => {
        let x = tf.tensor(dtype === 'int32' ? Int32Array.from(slice) : slice, [1, h, w, 3], dtype).toFloat();
        // The browser's resize (src/live/worker.ts): bilinear, half-pixel centres, no antialias.
        if (h !== size[0] || w !== size[1]) x = tf.image.resizeBilinear(x, size, false, true);
        const out = model.execute(x, outputs.map((o) => o.output));
        return Array.isArray(out) ? out : [out];
      });
      const values = await Promise.all(ys.map((y) => y.data()));
      tf.dispose(ys);
      values.forEach((v, j) => feats[j].push(Float32Array.from(v)));
      times.push(performance.now() - t0);
    }
  }
  mkdirSync(outDir, { recursive: true });
  const written = outputs.map((o, j) => {
    const dim = feats[j][0]?.length ?? 0;
    const all = new Float32Array(b * dim);
    feats[j].forEach((v, i) => all.set(v, i * dim));
    const file = join(outDir, `${o.layer}.f32`);
    writeFileSync(file, Buffer.from(all.buffer));
    return { layer: o.layer, output: o.output, dim, file };
  });
  const sorted = [...times].sort((x, y) => x - y);
  console.log(JSON.stringify({
    backend: tf.getBackend(),
    images: b,
    input_size: size,
    median_ms: sorted[Math.floor(sorted.length / 2)] ?? null,
    leaked_tensors: tf.memory().numTensors - baseline,
    outputs: written,
  }));
}

main().catch((e) => fail(e?.stack ?? String(e)));
