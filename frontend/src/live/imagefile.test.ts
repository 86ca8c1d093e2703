import { describe, expect, test } from 'vitest';
import { describeProblem, scaledSize, sniffImage, truncation } from './imagefile';

const bytes = (...parts: (number[] | string)[]) =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === 'string' ? Array.from(p, (c) => c.charCodeAt(0)) : p)));

const png = (w: number, h: number) =>
  bytes([0x89], 'PNG', [13, 10, 26, 10, 0, 0, 0, 13], 'IHDR', [w >>> 24, (w >> 16) & 255, (w >> 8) & 255, w & 255, h >>> 24, (h >> 16) & 255, (h >> 8) & 255, h & 255], [8, 2, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0], 'IEND', [0xae, 0x42, 0x60, 0x82]);

// SOI, APP0 (len 4), SOF0 (len 11: precision, h=300, w=500, 1 component), SOS, data, EOI
const jpeg = bytes([0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0, 0xff, 0xc0, 0, 11, 8, 1, 44, 1, 244, 1, 1, 17, 0, 0xff, 0xda, 0, 8, 1, 1, 0, 0, 63, 0, 0x12, 0xff, 0x00, 0x34, 0xff, 0xd9]);

describe('sniffImage', () => {
  test('reads PNG, JPEG, GIF, BMP and WebP sizes from the header', () => {
    expect(sniffImage(png(640, 480))).toEqual({ format: 'png', width: 640, height: 480 });
    expect(sniffImage(jpeg)).toEqual({ format: 'jpeg', width: 500, height: 300 });
    expect(sniffImage(bytes('GIF89a', [0x20, 0x03, 0x58, 0x02]))).toEqual({ format: 'gif', width: 800, height: 600 });
    const bmp = new Uint8Array(30);
    bmp.set(bytes('BM'));
    new DataView(bmp.buffer).setInt32(18, 33, true);
    new DataView(bmp.buffer).setInt32(22, -17, true); // top-down BMP: negative height
    expect(sniffImage(bmp)).toEqual({ format: 'bmp', width: 33, height: 17 });
    const webp = new Uint8Array(30);
    webp.set(bytes('RIFF', [0, 0, 0, 0], 'WEBPVP8X'));
    webp.set([99, 0, 0, 49, 0, 0], 24); // 100 × 50, minus one, 24-bit
    expect(sniffImage(webp)).toEqual({ format: 'webp', width: 100, height: 50 });
  });

  test('text and random bytes are not images', () => {
    expect(sniffImage(bytes('hello, this is a text file\n'))).toBeNull();
    expect(sniffImage(new Uint8Array(0))).toBeNull();
  });
});

describe('truncation', () => {
  test('complete JPEG and PNG pass; cut-off ones are named', () => {
    expect(truncation('jpeg', jpeg)).toBeNull();
    expect(truncation('jpeg', bytes(Array.from(jpeg), [0, 0, 0]))).toBeNull(); // padding after EOI
    expect(truncation('jpeg', jpeg.subarray(0, jpeg.length - 4))).toMatch(/truncated/);
    expect(truncation('png', png(2, 2))).toBeNull();
    expect(truncation('png', png(2, 2).subarray(0, 30))).toMatch(/IEND/);
  });

  test("an EXIF thumbnail's end marker before the main scan does not hide truncation", () => {
    const thumb = [0xff, 0xd8, 0xff, 0xda, 0, 2, 1, 2, 0xff, 0xd9];
    const cut = bytes([0xff, 0xd8, 0xff, 0xe1, 0, 12], thumb, [0xff, 0xda, 0, 2, 5, 6, 7]);
    expect(truncation('jpeg', cut)).toMatch(/truncated/);
  });
});

describe('describeProblem', () => {
  test('empty, text, bomb, truncated and fine files', () => {
    expect(describeProblem('a.jpg', 0, new Uint8Array(), new Uint8Array())).toMatch(/“a.jpg” is empty/);
    const text = bytes('just some notes\nline two\n');
    expect(describeProblem('notes.jpg', text.length, text, text)).toMatch(/“notes.jpg” is not an image \(it looks like a text file\)/);
    const heic = bytes([0, 0, 0, 24], 'ftypheic', [0, 0, 0, 0, 0xff, 0xfe, 0x80]);
    expect(describeProblem('photo.heic', heic.length, heic, heic)).toBe('“photo.heic” is not an image in a supported format (JPEG, PNG, GIF, WebP or BMP).');
    const bomb = png(30000, 30000);
    expect(describeProblem('bomb.png', bomb.length, bomb, bomb)).toMatch(/too large: 30000×30000/);
    const cut = jpeg.subarray(0, 30);
    expect(describeProblem('cut.jpg', cut.length, cut, cut)).toMatch(/“cut.jpg” cannot be used: .*truncated/);
    expect(describeProblem('ok.jpg', jpeg.length, jpeg, jpeg)).toBeNull();
  });

  test('an SVG is named as a drawing to export, not "a text file" (issue 19 row 15)', () => {
    const svg = bytes('<?xml version="1.0"?>\n<!-- logo -->\n<svg xmlns="http://www.w3.org/2000/svg" width="10"></svg>\n');
    const msg = describeProblem('logo.svg', svg.length, svg, svg);
    expect(msg).toMatch(/“logo.svg” is an SVG \(vector\) drawing, which cannot be searched: export it as PNG or JPEG first/);
    expect(msg).not.toMatch(/text file/);
  });
});

test('scaledSize keeps the aspect ratio and never upscales', () => {
  expect(scaledSize(4000, 3000, 1024)).toEqual([1024, 768]);
  expect(scaledSize(300, 5000, 1024)).toEqual([61, 1024]);
  expect(scaledSize(64, 64, 1024)).toEqual([64, 64]);
});
