import type { DataProvider } from './data/provider';
import type { Manifest } from './data/types';
import type { AppState } from './state';
import type { JudgementStore } from './data/judgestore';

/** What every view gets: the data, the current state, and a way to change it. */
export interface Ctx {
  data: DataProvider;
  manifest: Manifest;
  state: AppState;
  /** The user's ✓ / ✗ marks (IndexedDB); null until opened. */
  judgements: JudgementStore | null;
  /** The uploaded image shown in the Search view (private search), or null. */
  upload: UploadQuery | null;
  navigate(patch: Partial<AppState>, opts?: { replace?: boolean }): void;
}

export interface ViewModule {
  readonly root: HTMLElement;
  /** Called when the view is shown or the state changed while it is shown. */
  update(ctx: Ctx): void;
}

/** Drops results of async work started for a state that is no longer current. */
export class Latest {
  private token = 0;
  next(): () => boolean {
    const t = ++this.token;
    return () => t === this.token;
  }
}

/** An uploaded image and a way to search it again under another configuration (in the browser). */
export interface UploadQuery {
  imageUrl: string;
  /** Model whose layers the browser model covers (manifest browser_search.model). */
  model: string;
  run(layer: string, pooling: string, metric: string): Promise<{ results: { id: number; distance: number }[]; thumb?: (id: number) => string }>;
}
