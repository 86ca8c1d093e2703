// Placeholder until the in-browser private search lands here (owned by the live-search engineer).
import type { Manifest } from '../data/types';

export interface LiveSearchHost {
  manifest: Manifest;
  resolve(path: string): string;
  getDataset(): string;
  getMetric(): string;
  showUploadResults(r: { imageUrl: string; results: { id: number; distance: number }[]; info: string }): void;
}

export function mountLiveSearch(el: HTMLElement, host: LiveSearchHost): void {
  void host;
  const p = document.createElement('p');
  p.className = 'hint';
  p.textContent = 'In-browser search is not available in this build yet.';
  el.append(p);
}
