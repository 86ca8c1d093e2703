// A thumbnail element drawn from a sprite sheet (CSS background), the replacement for
// <img src=thumbnailUrl(...)>: the browser fetches each sheet once, however many cells it shows.
import { h } from '../dom';
import type { DataProvider } from '../data/provider';
import { thumbCss } from '../data/thumbs';

/** A role="img" span showing image `id`; size it with CSS (it keeps a 1:1 aspect ratio). */
export function thumbEl(data: DataProvider, dataset: string, id: number, alt: string, className = 'thumb', level?: string): HTMLElement {
  const el = h('span', { class: `sprite ${className}`, attrs: { role: 'img', 'aria-label': alt } });
  Object.assign(el.style, thumbCss(data.thumbnail(dataset, id, level)));
  return el;
}
