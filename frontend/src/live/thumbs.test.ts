import { describe, expect, it } from 'vitest';
import { AUTO_PRELOAD_BYTES, THUMB_BYTES_ESTIMATE, ThumbStore, packImages, thumbPolicy } from './thumbs';
import { makePack } from './packs.fixture';

const PER = 4; // images per pack (grid² in a bundle)
const packUrl = (d: string, sheet: number) => `https://host/data/datasets/${d}/thumbs/large/${sheet}.jpgs`;

/** Image id's bytes: id + 1 bytes all equal to id & 255 (so a wrong slice shows). */
const jpeg = (id: number) => new Uint8Array(id + 1).fill(id & 255);

function fakeFetch(count: number, fail: Set<number> = new Set()) {
  const calls: string[] = [];
  const fetcher = async (u: string) => {
    calls.push(u);
    const sheet = Number(/(\d+)\.jpgs$/.exec(u)![1]);
    if (fail.has(sheet)) return new Response('no', { status: 404 });
    const ids = Array.from({ length: Math.min(PER, count - sheet * PER) }, (_, j) => sheet * PER + j);
    return new Response(makePack(ids.map(jpeg)));
  };
  const blobs: Blob[] = [];
  const toUrl = (b: Blob) => `blob:thumb-${blobs.push(b) - 1}`;
  return { calls, fetcher, toUrl, blobs };
}

const bytesOf = async (b: Blob) => new Uint8Array(await b.arrayBuffer());

describe('thumbPolicy', () => {
  it('loads small sets unasked and asks for large ones, by estimated bytes', () => {
    const limit = Math.floor(AUTO_PRELOAD_BYTES / THUMB_BYTES_ESTIMATE);
    expect(thumbPolicy(40)).toBe('preload');
    expect(thumbPolicy(limit)).toBe('preload');
    expect(thumbPolicy(limit + 1)).toBe('ask');
    expect(thumbPolicy(100, 100 * THUMB_BYTES_ESTIMATE - 1)).toBe('ask');
  });
});

describe('packImages', () => {
  it('reads the offsets table and refuses a file that is not a pack of that many images', () => {
    const buf = makePack([jpeg(0), jpeg(1), jpeg(2)]);
    expect(Array.from(packImages(buf, 3).offsets)).toEqual([16, 17, 19, 22]);
    expect(() => packImages(buf, 2)).toThrow(/not a pack of 2 images/);
    expect(() => packImages(buf.slice(0, 21), 3)).toThrow(/not a pack of 3 images/);
    expect(() => packImages(new ArrayBuffer(4), 3)).toThrow(/shorter than the offsets table/);
  });
});

describe('ThumbStore', () => {
  it('fetches every pack of the dataset once, whatever is searched later, and serves each image from memory', async () => {
    const f = fakeFetch(10);
    const store = new ThumbStore(packUrl, PER, f.fetcher, f.toUrl);
    expect(store.get('d')).toBeNull();
    const seen: number[] = [];
    const p = store.load('d', 10, (done) => seen.push(done));
    expect(store.isLoading('d')).toBe(true);
    const again = store.load('d', 10); // joins the same load: no second round of requests
    const set = await p;
    expect(await again).toBe(set);
    expect(f.calls.sort()).toEqual([0, 1, 2].map((s) => packUrl('d', s))); // ⌈10 / 4⌉ packs, not 10 files
    expect(set.failed).toBe(0);
    expect(seen.at(-1)).toBe(10);
    expect(store.get('d')).toBe(set);
    expect(store.isLoading('d')).toBe(false);
    expect(f.blobs).toHaveLength(0); // blob: URLs are made when an image is shown
    for (const id of [9, 0, 5]) {
      const u = set.url(id);
      expect(u).toMatch(/^blob:/);
      const blob = f.blobs[Number(u.split('-')[1])]!;
      expect(blob.type).toBe('image/jpeg');
      expect(await bytesOf(blob)).toEqual(jpeg(id));
    }
    expect(set.url(5)).toBe(set.url(5)); // one blob: URL per image
    expect(f.blobs).toHaveLength(3);
    expect([set.url(10), set.url(-1)]).toEqual(['', '']);
    expect(f.calls).toHaveLength(3); // showing images fetched nothing
  });

  it('the images of a failed pack are empty URLs, never a server URL (that request would reveal a result)', async () => {
    const f = fakeFetch(10, new Set([1]));
    const set = await new ThumbStore(packUrl, PER, f.fetcher, f.toUrl).load('d', 10);
    expect(set.failed).toBe(4);
    expect([4, 5, 6, 7].map((id) => set.url(id))).toEqual(['', '', '', '']);
    expect(set.url(8)).toMatch(/^blob:/);
  });

  it('a pack whose table does not match its images counts as failed', async () => {
    const fetcher = async () => new Response(makePack([jpeg(0)])); // 1 image where 4 are due
    const set = await new ThumbStore(packUrl, PER, fetcher, () => 'blob:x').load('d', 8).catch((e: Error) => e);
    expect(set).toBeInstanceOf(Error);
    expect((set as Error).message).toMatch(/none of the 8 thumbnails of “d”/);
  });

  it('when nothing loads the promise rejects and a retry starts over', async () => {
    let down = true;
    const f = fakeFetch(3);
    const fetcher = async (u: string) => (down ? Promise.reject(new Error('offline')) : f.fetcher(u));
    const store = new ThumbStore(packUrl, PER, fetcher, () => 'blob:x');
    await expect(store.load('d', 3)).rejects.toThrow(/none of the 3 thumbnails of “d”/);
    expect(store.get('d')).toBeNull();
    down = false;
    expect((await store.load('d', 3)).failed).toBe(0);
  });
});
