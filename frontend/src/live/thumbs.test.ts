import { describe, expect, it } from 'vitest';
import { AUTO_PRELOAD_BYTES, THUMB_BYTES_ESTIMATE, ThumbStore, thumbPolicy } from './thumbs';

const url = (d: string, id: number) => `https://host/data/datasets/${d}/thumbs/${id}.jpg`;

function fakeFetch(fail: Set<number> = new Set()) {
  const calls: string[] = [];
  const fetcher = async (u: string) => {
    calls.push(u);
    const id = Number(/(\d+)\.jpg$/.exec(u)![1]);
    if (fail.has(id)) return new Response('no', { status: 404 });
    return new Response(new Uint8Array(id + 1)); // id + 1 bytes
  };
  let n = 0;
  const toUrl = () => `blob:thumb-${n++}`;
  return { calls, fetcher, toUrl };
}

describe('thumbPolicy', () => {
  it('loads small sets unasked and asks for large ones, by estimated bytes', () => {
    const limit = Math.floor(AUTO_PRELOAD_BYTES / THUMB_BYTES_ESTIMATE);
    expect(thumbPolicy(40)).toBe('preload');
    expect(thumbPolicy(limit)).toBe('preload');
    expect(thumbPolicy(limit + 1)).toBe('ask');
    expect(thumbPolicy(100, 100 * THUMB_BYTES_ESTIMATE - 1)).toBe('ask');
  });
});

describe('ThumbStore', () => {
  it('fetches every thumbnail of the dataset once, whatever is searched later, and keeps blob URLs', async () => {
    const f = fakeFetch();
    const store = new ThumbStore(url, f.fetcher, f.toUrl);
    expect(store.get('d')).toBeNull();
    const seen: number[] = [];
    const p = store.load('d', 20, (done) => seen.push(done));
    expect(store.isLoading('d')).toBe(true);
    const again = store.load('d', 20); // joins the same load: no second round of requests
    const set = await p;
    expect(await again).toBe(set);
    expect(f.calls.sort()).toEqual(Array.from({ length: 20 }, (_, i) => url('d', i)).sort());
    expect(set.urls).toHaveLength(20);
    expect(set.urls.every((u) => u.startsWith('blob:'))).toBe(true);
    expect(set.bytes).toBe((20 * 21) / 2);
    expect(set.failed).toBe(0);
    expect(seen.at(-1)).toBe(20);
    expect(store.get('d')).toBe(set);
    expect(store.isLoading('d')).toBe(false);
  });

  it('a failed thumbnail becomes an empty URL, never its server URL (that request would reveal a result)', async () => {
    const f = fakeFetch(new Set([3]));
    const set = await new ThumbStore(url, f.fetcher, f.toUrl).load('d', 5);
    expect(set.urls[3]).toBe('');
    expect(set.failed).toBe(1);
    expect(set.urls.filter((u) => u.startsWith('blob:'))).toHaveLength(4);
  });

  it('when nothing loads the promise rejects and a retry starts over', async () => {
    let down = true;
    const fetcher = async (u: string) => (down ? Promise.reject(new Error('offline')) : new Response(u));
    const store = new ThumbStore(url, fetcher, () => 'blob:x');
    await expect(store.load('d', 3)).rejects.toThrow(/none of the 3 thumbnails of “d”/);
    expect(store.get('d')).toBeNull();
    down = false;
    expect((await store.load('d', 3)).failed).toBe(0);
  });
});
