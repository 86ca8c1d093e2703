// Result thumbnails for private search, loaded before the first search.
//
// Why: an uploaded image never leaves the page, but its results are dataset images. If their
// thumbnails were fetched when the results are shown, the host's log would list the uploaded
// image's nearest neighbours. So every thumbnail of the searched dataset is fetched up front
// (the same requests whatever is uploaded: the bundle's thumbnail packs, see ThumbStore) and kept
// in memory; the result list of an upload shows only those, as blob: URLs. Large datasets would
// cost too much to fetch unasked: the panel says what the host can see and offers to load them
// all first (see index.ts).

/**
 * Estimated bytes per thumbnail: a pack_level JPEG (96-px cell, quality 85, docs/bundle.md
 * "Thumbnails") of a photo is ≈ 2–5 KB; 6 KB keeps the estimate an upper bound for photo datasets.
 */
export const THUMB_BYTES_ESTIMATE = 6_000;
/** Up to this many estimated bytes the thumbnails are loaded without asking (≈ 1,300 images). */
export const AUTO_PRELOAD_BYTES = 8_000_000;
/** Parallel pack requests (browsers allow ~6 per host over HTTP/1.1). */
const CONCURRENCY = 6;

export type ThumbPolicy = 'preload' | 'ask';

/** Load every thumbnail before the first search, or ask first (too many bytes to fetch unasked). */
export function thumbPolicy(count: number, budget = AUTO_PRELOAD_BYTES): ThumbPolicy {
  return count * THUMB_BYTES_ESTIMATE <= budget ? 'preload' : 'ask';
}

export type Fetcher = (url: string) => Promise<Response>;

export interface ThumbSet {
  /** An in-memory (blob:) URL of image `id`'s JPEG; '' if its pack failed to load (never a server URL). */
  url(id: number): string;
  bytes: number;
  /** Images whose pack failed to load (they show empty). */
  failed: number;
}

/** The JPEGs of one pack, by the pack's offsets table (docs/bundle.md "Packs"). */
export function packImages(buf: ArrayBuffer, count: number): { offsets: Uint32Array; buf: ArrayBuffer } {
  const head = 4 * (count + 1);
  if (buf.byteLength < head) throw new Error(`${buf.byteLength} bytes, shorter than the offsets table of ${count} images`);
  const offsets = new Uint32Array(buf.slice(0, head));
  if (offsets[0] !== head || offsets[count] !== buf.byteLength) throw new Error(`not a pack of ${count} images (table ${offsets[0]}…${offsets[count]}, file ${buf.byteLength} bytes)`);
  for (let j = 0; j < count; j++) if (offsets[j]! > offsets[j + 1]!) throw new Error(`image ${j}: offsets ${offsets[j]} > ${offsets[j + 1]}`);
  return { offsets, buf };
}

/**
 * Fetches all thumbnails of a dataset once, as the bundle's packs (the gallery's pack_level
 * JPEGs, one file per sheet of `perPack` images: N / 256 requests, any N), and keeps them in
 * memory; an image's blob: URL is made when it is first shown. A second call for the same dataset
 * returns the same promise. A failed load is forgotten, so a retry can succeed.
 */
export class ThumbStore {
  private readonly sets = new Map<string, Promise<ThumbSet>>();
  private readonly done = new Map<string, ThumbSet>();

  constructor(
    private readonly packUrl: (dataset: string, sheet: number) => string,
    private readonly perPack: number,
    private readonly fetcher: Fetcher = (u) => fetch(u),
    private readonly toUrl: (b: Blob) => string = (b) => URL.createObjectURL(b),
  ) {}

  /** The loaded set, or null while it is missing or loading. */
  get(dataset: string): ThumbSet | null {
    return this.done.get(dataset) ?? null;
  }

  isLoading(dataset: string): boolean {
    return this.sets.has(dataset) && !this.done.has(dataset);
  }

  /** onProgress(images loaded so far, count). */
  load(dataset: string, count: number, onProgress?: (loaded: number, count: number) => void): Promise<ThumbSet> {
    let p = this.sets.get(dataset);
    if (!p) {
      p = this.fetchAll(dataset, count, onProgress);
      this.sets.set(dataset, p);
      p.then((s) => this.done.set(dataset, s), () => this.sets.delete(dataset));
    }
    return p;
  }

  private async fetchAll(dataset: string, count: number, onProgress?: (loaded: number, count: number) => void): Promise<ThumbSet> {
    const per = this.perPack;
    const sheets = Math.ceil(count / per);
    const packs = new Array<ReturnType<typeof packImages> | null>(sheets).fill(null);
    let next = 0;
    let loaded = 0;
    let bytes = 0;
    let failed = 0;
    const worker = async () => {
      while (next < sheets) {
        const sheet = next++;
        const inPack = Math.min(per, count - sheet * per);
        try {
          const res = await this.fetcher(this.packUrl(dataset, sheet));
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          const buf = await res.arrayBuffer();
          packs[sheet] = packImages(buf, inPack);
          bytes += buf.byteLength;
        } catch {
          failed += inPack; // shown as empty tiles: fetching them later would reveal they were results
        }
        loaded += inPack;
        onProgress?.(loaded, count);
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, sheets) }, worker));
    if (count > 0 && failed === count) throw new Error(`none of the ${count} thumbnails of “${dataset}” could be loaded`);
    const urls = new Map<number, string>();
    const url = (id: number): string => {
      const pack = Number.isInteger(id) && id >= 0 && id < count ? packs[Math.floor(id / per)] : null;
      if (!pack) return '';
      let u = urls.get(id);
      if (u === undefined) {
        const j = id % per;
        u = this.toUrl(new Blob([pack.buf.slice(pack.offsets[j]!, pack.offsets[j + 1]!)], { type: 'image/jpeg' }));
        urls.set(id, u);
      }
      return u;
    };
    return { url, bytes, failed };
  }
}
