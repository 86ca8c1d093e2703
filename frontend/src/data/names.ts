// File names by image id, fetched a names page at a time (docs/bundle.md "Labels and file names"):
// the first screen downloads the names it shows, not all N of them (3.4 MB at N = 100,000).
import type { FileNames } from './types';

export class PagedNames implements FileNames {
  /** Pages whose names have arrived, for synchronous get(). */
  private readonly loaded = new Map<number, string[]>();

  constructor(
    readonly size: number,
    readonly page: number,
    /** Fetches, checks and caches page p (DataProvider.namesPage): called at most once per page here. */
    private readonly fetchPage: (p: number) => Promise<string[]>,
  ) {}

  get(id: number): string | undefined {
    return this.loaded.get(Math.floor(id / this.page))?.[id % this.page];
  }

  async name(id: number): Promise<string> {
    if (!Number.isInteger(id) || id < 0 || id >= this.size) throw new RangeError(`image ${id} out of range 0…${this.size - 1}`);
    const p = Math.floor(id / this.page);
    let names = this.loaded.get(p);
    if (!names) {
      names = await this.fetchPage(p);
      this.loaded.set(p, names);
    }
    return names[id % this.page]!;
  }
}

/** What a view shows for image `id` until its name has arrived (never "undefined"). */
export function namePlaceholder(id: number): string {
  return `image #${id}`;
}

/**
 * Calls `show` with image `id`'s name: at once if its page is loaded, else first with the
 * placeholder and again when the page arrives (a failed page leaves the placeholder).
 */
export function withName(names: FileNames, id: number, show: (name: string) => void): void {
  const now = names.get(id);
  if (now !== undefined) {
    show(now);
    return;
  }
  show(namePlaceholder(id));
  names.name(id).then(show, () => undefined);
}

/**
 * `names` without fetching: only names whose page is already loaded. For an uploaded image's
 * results, where a names request would tell the host which dataset images match the upload
 * (the private search fetches nothing after an upload; docs/live-search.md).
 */
export function loadedOnly(names: FileNames): FileNames {
  return {
    get: (id) => names.get(id),
    name: (id) => {
      const n = names.get(id);
      return n === undefined ? Promise.reject(new Error(`name of image ${id} not loaded (not fetched for a private search)`)) : Promise.resolve(n);
    },
  };
}
