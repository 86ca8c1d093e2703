// What a file claims to be, read from its first bytes before anything is decoded: the format and
// the pixel size from the header. This lets the page refuse a decompression bomb (a few kB that
// declare 30000×30000 pixels) before the browser allocates gigabytes, and give a precise message
// for a file that is not an image at all. Pure functions on bytes; unit-tested.

export interface ImageHeader {
  format: 'jpeg' | 'png' | 'gif' | 'webp' | 'bmp';
  width: number;
  height: number;
}

/** Same limit as the engine (convnet_search/images.py DEFAULT_MAX_PIXELS). */
export const MAX_PIXELS = 40_000_000;
/** Bytes read for sniffing: enough for JPEG headers behind large EXIF/ICC segments. */
export const SNIFF_BYTES = 256 * 1024;

const u16be = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;
const u16le = (b: Uint8Array, o: number) => b[o]! | (b[o + 1]! << 8);
const u32be = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
const i32le = (b: Uint8Array, o: number) => b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);
const ascii = (b: Uint8Array, o: number, n: number) => String.fromCharCode(...b.subarray(o, o + n));

/** Format and size from the header, or null when the bytes are not a supported image format. */
export function sniffImage(b: Uint8Array): ImageHeader | null {
  if (b.length >= 24 && b[0] === 0x89 && ascii(b, 1, 3) === 'PNG' && ascii(b, 12, 4) === 'IHDR') {
    return { format: 'png', width: u32be(b, 16), height: u32be(b, 20) };
  }
  if (b.length >= 10 && (ascii(b, 0, 6) === 'GIF87a' || ascii(b, 0, 6) === 'GIF89a')) {
    return { format: 'gif', width: u16le(b, 6), height: u16le(b, 8) };
  }
  if (b.length >= 26 && ascii(b, 0, 2) === 'BM') {
    return { format: 'bmp', width: Math.abs(i32le(b, 18)), height: Math.abs(i32le(b, 22)) };
  }
  if (b.length >= 30 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') {
    const chunk = ascii(b, 12, 4);
    if (chunk === 'VP8X') return { format: 'webp', width: 1 + (b[24]! | (b[25]! << 8) | (b[26]! << 16)), height: 1 + (b[27]! | (b[28]! << 8) | (b[29]! << 16)) };
    if (chunk === 'VP8 ') return { format: 'webp', width: u16le(b, 26) & 0x3fff, height: u16le(b, 28) & 0x3fff };
    if (chunk === 'VP8L') {
      const bits = (b[21]! | (b[22]! << 8) | (b[23]! << 16) | (b[24]! << 24)) >>> 0;
      return { format: 'webp', width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
    }
    return null;
  }
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return sniffJpeg(b);
  return null;
}

function sniffJpeg(b: Uint8Array): ImageHeader | null {
  let o = 2;
  while (o + 9 < b.length) {
    if (b[o] !== 0xff) return null;
    const marker = b[o + 1]!;
    if (marker === 0xff) {
      o++; // fill byte
      continue;
    }
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      o += 2;
      continue;
    }
    const len = u16be(b, o + 2);
    // SOF0…SOF15 except DHT (C4), JPG (C8), DAC (CC) carry the frame size.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { format: 'jpeg', height: u16be(b, o + 5), width: u16be(b, o + 7) };
    }
    if (marker === 0xda || marker === 0xd9) return null; // scan data before any frame header
    o += 2 + len;
  }
  // A JPEG signature whose frame header lies beyond the sniffed bytes: size unknown, let the
  // decoder decide (width/height 0 mean "unknown").
  return { format: 'jpeg', width: 0, height: 0 };
}

/**
 * Whether the file's own structure says it ends early. Browsers decode what they have and paint
 * the missing rest grey, so a cut-off file would otherwise be searched as if it were whole (the
 * engine rejects it: convnet_search/images.py). Checked: JPEG ends with its EOI marker (trailing
 * padding allowed), PNG with its IEND chunk. `tail` is the file's last bytes.
 */
export function truncation(format: ImageHeader['format'], tail: Uint8Array): string | null {
  if (format === 'jpeg') {
    let end = tail.length;
    while (end > 0 && (tail[end - 1] === 0x00 || tail[end - 1] === 0x0a || tail[end - 1] === 0x0d || tail[end - 1] === 0x20)) end--;
    // Entropy-coded data never holds FF D9 (FF is stuffed as FF 00), so an EOI after the last
    // start-of-scan is the real end; phone cameras may append trailers after it. An EXIF
    // thumbnail's EOI comes before the main image's SOS and does not count.
    let sos = -1;
    for (let i = end - 2; i >= 0; i--) if (tail[i] === 0xff && tail[i + 1] === 0xda) { sos = i; break; }
    for (let i = Math.max(0, sos); i + 1 < end; i++) if (tail[i] === 0xff && tail[i + 1] === 0xd9) return null;
    return 'the JPEG data ends before its end-of-image marker (the file is truncated)';
  }
  if (format === 'png') {
    for (let i = tail.length - 8; i >= 0; i--) if (ascii(tail, i, 4) === 'IEND') return null;
    return 'the PNG data ends before its IEND chunk (the file is truncated)';
  }
  return null;
}

/**
 * Size of a w×h image shrunk to a longest side ≤ maxSide (never enlarged): the query preview. (The
 * network's input takes the engine's path instead: downscale.ts, then bilinear.)
 */
export function scaledSize(w: number, h: number, maxSide: number): [number, number] {
  const s = Math.min(1, maxSide / Math.max(w, h));
  return [Math.max(1, Math.round(w * s)), Math.max(1, Math.round(h * s))];
}

/** Does the start of a text file hold an <svg element (after any XML prolog, comments, doctype)? */
function isSvg(head: Uint8Array): boolean {
  const start = new TextDecoder('utf-8', { fatal: false }).decode(head.subarray(0, 1024));
  return /<svg[\s>]/i.test(start);
}

/** One message a person can act on, for a file that cannot be searched. */
export function describeProblem(name: string, size: number, head: Uint8Array, tail: Uint8Array): string | null {
  const label = `“${name}”`;
  if (size === 0) return `${label} is empty (0 bytes).`;
  const hdr = sniffImage(head);
  if (!hdr) {
    const text = head.length > 0 && head.subarray(0, 512).every((c) => c === 9 || c === 10 || c === 13 || (c >= 32 && c < 127) || c >= 128);
    // An SVG is text too, but "a text file" would puzzle whoever picked a drawing: say what it is.
    if (text && isSvg(head)) {
      return `${label} is an SVG (vector) drawing, which cannot be searched: export it as PNG or JPEG first (supported formats are JPEG, PNG, GIF, WebP and BMP).`;
    }
    return text
      ? `${label} is not an image (it looks like a text file): supported formats are JPEG, PNG, GIF, WebP and BMP.`
      : `${label} is not an image in a supported format (JPEG, PNG, GIF, WebP or BMP).`;
  }
  if (hdr.width > 0 && hdr.height > 0 && hdr.width * hdr.height > MAX_PIXELS) {
    return `${label} is too large: ${hdr.width}×${hdr.height} pixels (limit ${MAX_PIXELS.toLocaleString('en')} pixels).`;
  }
  const t = truncation(hdr.format, tail);
  return t ? `${label} cannot be used: ${t}.` : null;
}
