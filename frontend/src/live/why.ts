// Worker side of "why similar?": run the graph model on two images, read one layer's spatial
// output for each, and compute the similarity maps (similarity.ts). The uploaded image is the
// worker's own copy of its pixels (never re-sent, never fetched); dataset images arrive as
// bitmaps of the thumbnails the page shows.
import * as tf from '@tensorflow/tfjs';
import { whySimilar, type SpatialMap } from './similarity';
import type { WhyImage, WhyReply, WhyRequest } from './protocol';

/** RGB pixels 0…255, [h, w, 3] row-major, as the search embeds them. */
export interface RgbPixels {
  rgb: Float32Array;
  width: number;
  height: number;
}

/** A bitmap's pixels, alpha composited on white (like the engine's decode). Closes the bitmap. */
export function bitmapPixels(bmp: ImageBitmap): RgbPixels {
  const { width, height } = bmp;
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new Error('no 2D canvas in this worker');
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, width, height);
  ctx.drawImage(bmp, 0, 0);
  bmp.close();
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const rgb = new Float32Array(width * height * 3);
  for (let p = 0, q = 0; p < rgba.length; p += 4, q += 3) {
    rgb[q] = rgba[p]!;
    rgb[q + 1] = rgba[p + 1]!;
    rgb[q + 2] = rgba[p + 2]!;
  }
  return { rgb, width, height };
}

/** The layer's spatial map of one image: same resize as the search (bilinear, half-pixel centres). */
async function spatialMap(model: tf.GraphModel, inputSize: [number, number], px: RgbPixels, output: string): Promise<SpatialMap> {
  const y = tf.tidy(() => {
    const img = tf.tensor4d(px.rgb, [1, px.height, px.width, 3], 'float32');
    const x = px.height === inputSize[0] && px.width === inputSize[1] ? img : tf.image.resizeBilinear(img, inputSize, false, true);
    return model.execute(x, output) as tf.Tensor;
  });
  try {
    if (y.shape.length !== 4) throw new Error(`output ${output} has shape [${y.shape.join(', ')}], expected [1, h, w, C]`);
    const [, h, w, c] = y.shape as [number, number, number, number];
    return { data: Float32Array.from(await y.data<'float32'>()), h, w, c };
  } finally {
    y.dispose();
  }
}

export async function whyMaps(model: tf.GraphModel, inputSize: [number, number], req: WhyRequest, lastUpload: RgbPixels | null): Promise<Omit<WhyReply, 'type' | 'id'>> {
  const t0 = performance.now();
  const pixels = (img: WhyImage): RgbPixels => {
    if (img.kind === 'bitmap') return bitmapPixels(img.bitmap);
    if (!lastUpload) throw new Error('no uploaded image in this session');
    return lastUpload;
  };
  const q = pixels(req.query);
  const r = pixels(req.result);
  const fq = await spatialMap(model, inputSize, q, req.output);
  const fr = await spatialMap(model, inputSize, r, req.output);
  const maps = whySimilar(fq, fr);
  return { h: fq.h, w: fq.w, query: maps.query, result: maps.result, querySize: [q.width, q.height], resultSize: [r.width, r.height], ms: performance.now() - t0 };
}
