// Thumbnail packs for the tests (thumbs.test.ts, session.test.ts).
/** A pack as docs/bundle.md "Packs" lays it out: offsets[count + 1], then the JPEGs. */
export function makePack(images: Uint8Array[]): ArrayBuffer {
  const head = 4 * (images.length + 1);
  const total = head + images.reduce((s, b) => s + b.length, 0);
  const buf = new ArrayBuffer(total);
  const offsets = new Uint32Array(buf, 0, images.length + 1);
  let at = head;
  images.forEach((b, j) => {
    offsets[j] = at;
    new Uint8Array(buf, at, b.length).set(b);
    at += b.length;
  });
  offsets[images.length] = at;
  return buf;
}

