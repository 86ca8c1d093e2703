// Result thumbnails for private search, loaded before the first search.
//
// Why: an uploaded image never leaves the page, but its results are dataset images. If their
// thumbnails were fetched when the results are shown, the host's log would list the uploaded
// image's nearest neighbours. So every thumbnail of the searched dataset is fetched up front
// (the same requests whatever is uploaded) and kept as in-memory blob: URLs; the result list of an
// upload shows only those. Large datasets would cost too much to fetch unasked: the panel says
// what the host can see and offers to load them all first (see index.ts).

/**
 * Estimated bytes per thumbnail: a 128-px JPEG at quality 85 (images.thumbnail_jpeg) of a photo
 * is 3–6 KB; the upper end keeps the estimate honest for photo datasets.
 */
export const THUMB_BYTES_ESTIMATE = 6_000;
/** Up to this many estimated bytes the thumbnails are loaded without asking (≈ 1,300 images). */
export const AUTO_PRELOAD_BYTES = 8_000_000;
/** Parallel thumbnail requests (browsers allow ~6 per host over HTTP/1.1). */
const CONCURRENCY = 6;

export type ThumbPolicy = 'preload' | 'ask';

/** Load every thumbnail before the first search, or ask first (too many bytes to fetch unasked). */
export function thumbPolicy(count: number, budget = AUTO_PRELOAD_BYTES): ThumbPolicy {
  return count * THUMB_BYTES_ESTIMATE <= budget ? 'preload' : 'ask';
}

export type Fetcher = (url: string) => Promise<Response>;

export interface ThumbSet {
  /** blob: URL per image id; '' for a thumbnail that failed to load (never its server URL). */
  urls: string[];
  bytes: number;
  failed: number;
}

/**
 * Fetches all thumbnails of a dataset once; a second call for the same dataset returns the same
 * promise. A failed load is forgotten, so a retry can succeed.
 */
export class ThumbStore {
  private readonly sets = new Map<string, Promise<ThumbSet>>();
  private readonly done = new Map<string, ThumbSet>();

  constructor(
    private readonly urlFor: (dataset: string, id: number) => string,
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
    const urls = new Array<string>(count).fill('');
    let next = 0;
    let loaded = 0;
    let bytes = 0;
    let failed = 0;
    const worker = async () => {
      while (next < count) {
        const id = next++;
        try {
          const res = await this.fetcher(this.urlFor(dataset, id));
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          const blob = await res.blob();
          bytes += blob.size;
          urls[id] = this.toUrl(blob);
        } catch {
          failed++; // shown as an empty tile: fetching it later would reveal it was a result
        }
        loaded++;
        onProgress?.(loaded, count);
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, count) }, worker));
    if (count > 0 && failed === count) throw new Error(`none of the ${count} thumbnails of “${dataset}” could be loaded`);
    return { urls, bytes, failed };
  }
}
