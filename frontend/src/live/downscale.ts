// Step 1 of the one preprocessing path (docs/live-search.md "Large images"), twin of
// convnet_search/preprocess.py area_downscale: an image larger than 2× the network input on either
// side is shrunk by the smallest integer factor k that brings both sides ≤ 2× the input, rounded up
// to even when a side is over 3,136 px; each output pixel is the mean of a k×k block (edge blocks may be smaller and
// average what they hold), rounded half up to uint8 with exact integer arithmetic, so it is
// bit-identical to the engine's on the same decoded pixels. (Canvas drawImage smoothing is not: its
// filter is up to each browser.) The engine decodes such a large JPEG at 1/2 by DCT scaling first
// (pixels within 2–3 levels of these means); a browser cannot, so it decodes in full and averages
// k×k here. Pure functions; unit-tested.

export type Bytes = Uint8Array | Uint8ClampedArray;

/** Same rules as preprocess.MAX_PRE_SCALE and preprocess.LARGE_SIDE. */
export const MAX_PRE_SCALE = 2;
export const LARGE_SIDE = 3136;

/** Smallest k ≥ 1 with ceil(H/k) ≤ 2h and ceil(W/k) ≤ 2w, rounded up to even when a side is over LARGE_SIDE (preprocess.area_factor). */
export function areaFactor(height: number, width: number, size: readonly [number, number]): number {
  const [h, w] = size;
  const k = Math.max(1, Math.ceil(height / (MAX_PRE_SCALE * h)), Math.ceil(width / (MAX_PRE_SCALE * w)));
  return k > 1 && Math.max(height, width) > LARGE_SIDE ? k + (k % 2) : k;
}

/** Integer "over" onto white, rounded, as convnet_search/images.py composites alpha. */
export const overWhite = (c: number, a: number): number => (a === 255 ? c : Math.floor((c * a + 255 * (255 - a) + 127) / 255));

/**
 * One output row of the box downscale: `rgba` holds `rows` (1…k) full input rows of `width`
 * RGBA pixels; alpha is composited on white first (the engine decodes to RGB before step 1).
 * Writes ceil(width/k) RGB pixels, as floats 0…255, into `out` from `offset`.
 */
export function boxRow(rgba: Bytes, width: number, rows: number, k: number, out: Float32Array, offset: number): void {
  const ow = Math.ceil(width / k);
  const sums = new Uint32Array(ow * 3);
  for (let y = 0; y < rows; y++) {
    for (let x = 0, i = y * width * 4, j = 0, inBlock = 0; x < width; x++, i += 4) {
      const a = rgba[i + 3]!;
      sums[j] = sums[j]! + overWhite(rgba[i]!, a);
      sums[j + 1] = sums[j + 1]! + overWhite(rgba[i + 1]!, a);
      sums[j + 2] = sums[j + 2]! + overWhite(rgba[i + 2]!, a);
      if (++inBlock === k) {
        inBlock = 0;
        j += 3;
      }
    }
  }
  for (let bx = 0; bx < ow; bx++) {
    const n = rows * (Math.min(width, (bx + 1) * k) - bx * k);
    // Exact: sums < 2^32, so 2·sum + n and the quotient are exact in doubles; floor = half up.
    for (let c = 0; c < 3; c++) out[offset + bx * 3 + c] = Math.floor((2 * sums[bx * 3 + c]! + n) / (2 * n));
  }
}

/**
 * Step 1 on an image of width×height RGBA pixels delivered by `read(y0, rows)` (rows y0…y0+rows−1,
 * e.g. a canvas's getImageData): reads strips of whole k-row blocks (≥ 64 rows), so the worker
 * never holds a second full-size copy of a 40 Mpx photo. k = 1 is a plain RGB conversion (alpha
 * on white), the path of every image no larger than 2× the input. Returns RGB floats 0…255.
 */
export function downscaleRows(width: number, height: number, k: number, read: (y0: number, rows: number) => Bytes): { rgb: Float32Array; width: number; height: number } {
  const ow = Math.ceil(width / k);
  const oh = Math.ceil(height / k);
  const rgb = new Float32Array(ow * oh * 3);
  const stripRows = k * Math.max(1, Math.floor(64 / k));
  for (let y0 = 0; y0 < height; y0 += stripRows) {
    const rows = Math.min(stripRows, height - y0);
    const strip = read(y0, rows);
    for (let r = 0; r < rows; r += k) {
      const n = Math.min(k, rows - r);
      boxRow(strip.subarray(r * width * 4, (r + n) * width * 4), width, n, k, rgb, ((y0 + r) / k) * ow * 3);
    }
  }
  return { rgb, width: ow, height: oh };
}

/** The same on an RGBA array in memory. */
export const boxDownscale = (rgba: Bytes, width: number, height: number, k: number) =>
  downscaleRows(width, height, k, (y0, rows) => rgba.subarray(y0 * width * 4, (y0 + rows) * width * 4));
