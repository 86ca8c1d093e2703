import { expect, test } from 'vitest';
import { areaFactor, boxDownscale, boxRow, overWhite } from './downscale';

const SIZE = [224, 224] as const;

/** Brute force: every output pixel is the mean of its (possibly clipped) k×k block, half up. */
function reference(rgba: Uint8Array, w: number, h: number, k: number): number[] {
  const out: number[] = [];
  for (let by = 0; by < Math.ceil(h / k); by++) {
    for (let bx = 0; bx < Math.ceil(w / k); bx++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        let n = 0;
        for (let y = by * k; y < Math.min(h, by * k + k); y++) {
          for (let x = bx * k; x < Math.min(w, bx * k + k); x++) {
            const i = (y * w + x) * 4;
            s += overWhite(rgba[i + c]!, rgba[i + 3]!);
            n++;
          }
        }
        out.push(Math.round(s / n)); // Math.round is half up for non-negative numbers
      }
    }
  }
  return out;
}

function pseudoRandom(w: number, h: number, seed: number, opaque = true): Uint8Array {
  const a = new Uint8Array(w * h * 4);
  let s = seed;
  for (let i = 0; i < a.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    a[i] = (s >>> 16) & 255;
    if (opaque && i % 4 === 3) a[i] = 255;
  }
  return a;
}

test('areaFactor: the smallest k bringing both sides to ≤ 2× the input, even over 3,136 px, as in preprocess.area_factor', () => {
  expect(areaFactor(3000, 4000, SIZE)).toBe(10);
  expect(areaFactor(2400, 3200, SIZE)).toBe(8);
  expect(areaFactor(4000, 6000, SIZE)).toBe(14);
  expect(areaFactor(10, 3137, SIZE)).toBe(8);
  expect(areaFactor(10, 3136, SIZE)).toBe(7);
  expect(areaFactor(448, 448, SIZE)).toBe(1);
  expect(areaFactor(64, 64, SIZE)).toBe(1);
  expect(areaFactor(449, 10, SIZE)).toBe(2);
  expect(areaFactor(10, 897, SIZE)).toBe(3);
  expect(areaFactor(5000, 700, SIZE)).toBe(12);
  expect(areaFactor(3000, 4000, [299, 299])).toBe(8);
  for (let h = 1; h < 3000; h += 37) {
    for (let w = 1; w < 5000; w += 53) {
      const k = areaFactor(h, w, SIZE);
      expect(Math.ceil(h / k) <= 448 && Math.ceil(w / k) <= 448 && k >= 1).toBe(true);
      const large = Math.max(h, w) > 3136;
      if (large) expect(k % 2).toBe(0);
      // the smallest such k (over 3,136 px: the smallest even one)
      const below = large ? k - 2 : k - 1;
      if (below >= 1) expect(Math.ceil(h / below) > 448 || Math.ceil(w / below) > 448).toBe(true);
    }
  }
});

test('boxDownscale equals the brute-force block mean, edge blocks included, alpha on white', () => {
  for (const [w, h, k, opaque] of [[31, 17, 3, true], [40, 40, 4, true], [23, 9, 5, false], [7, 3, 2, false], [50, 200, 7, false], [9, 130, 1, false]] as const) {
    const rgba = pseudoRandom(w, h, w * h, opaque);
    const got = boxDownscale(rgba, w, h, k);
    expect([got.width, got.height]).toEqual([Math.ceil(w / k), Math.ceil(h / k)]);
    expect(Array.from(got.rgb)).toEqual(reference(rgba, w, h, k));
  }
});

test('rounding is half up and exact', () => {
  // One 2×2 block per pixel: {0,0,0,1} → 0.25 → 0; {0,1,0,1} → 0.5 → 1; {1,1,1,2} → 1.25 → 1.
  const px = (v: number) => [v, v, v, 255];
  const rgba = new Uint8Array([...px(0), ...px(0), ...px(0), ...px(1), ...px(1), ...px(1), ...px(0), ...px(1), ...px(0), ...px(1), ...px(1), ...px(2)]);
  const out = new Float32Array(9);
  boxRow(rgba, 6, 2, 2, out, 0);
  expect(Array.from(out)).toEqual([0, 0, 0, 1, 1, 1, 1, 1, 1]);
});

test('bit-identical to the engine (numbers from convnet_search/preprocess.area_downscale)', () => {
  // Python: H, W = 1001, 1337; a[y, x, c] = (x·7919 + y·104729 + c·31 + (x·y) % 97) % 256.
  const [w, h] = [1337, 1001];
  const rgba = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) rgba[(y * w + x) * 4 + c] = (x * 7919 + y * 104729 + c * 31 + ((x * y) % 97)) % 256;
      rgba[(y * w + x) * 4 + 3] = 255;
    }
  }
  const k = areaFactor(h, w, SIZE);
  const { rgb, width, height } = boxDownscale(rgba, w, h, k);
  expect([height, width]).toEqual([334, 446]);
  let sum = 0;
  let weighted = 0;
  rgb.forEach((v, i) => {
    sum += v;
    weighted += (v * i) % 1000003;
  });
  expect(sum).toBe(56980180);
  expect(weighted).toBe(222529219638);
  const at = (y: number, x: number) => Array.from(rgb.subarray((y * width + x) * 3, (y * width + x) * 3 + 3));
  expect(at(0, 0)).toEqual([94, 68, 71]);
  expect(at(333, 445)).toEqual([84, 51, 82]);
  expect(at(100, 200)).toEqual([174, 205, 179]);
});
