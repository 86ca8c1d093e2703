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

const BLANK = 'data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7';

/**
 * An <img> of image `id` alone (DataProvider.thumbnailImage: a few KB by Range from the pack),
 * for a query, its results and tooltips, where a whole sheet per image would cost ~0.5 MB each.
 */
export function thumbImg(data: DataProvider, dataset: string, id: number, alt: string, className = 'thumb'): HTMLImageElement {
  const img = placeholder(alt, className);
  load(img, data, dataset, id);
  return img;
}

/**
 * thumbImg for grids of many scattered images (the Model Explorer's 64 × 3 top images): the JPEG
 * is fetched only once the element comes within `margin` of the viewport.
 */
export function lazyThumbImg(data: DataProvider, dataset: string, id: number, alt: string, className = 'thumb', margin = '300px'): HTMLImageElement {
  const img = placeholder(alt, className);
  if (typeof IntersectionObserver === 'undefined') {
    load(img, data, dataset, id);
    return img;
  }
  const io = new IntersectionObserver((entries) => {
    if (!entries.some((e) => e.isIntersecting)) return;
    io.disconnect();
    load(img, data, dataset, id);
  }, { rootMargin: margin });
  io.observe(img);
  return img;
}

function placeholder(alt: string, className: string): HTMLImageElement {
  // A transparent 1×1 GIF until the JPEG arrives: a replaced element from the start, so CSS gives it
  // its final box (an <img> without src would be laid out as its alt text, then jump).
  return h('img', { class: className, attrs: { alt, decoding: 'async', width: 128, height: 128, src: BLANK } });
}

function load(img: HTMLImageElement, data: DataProvider, dataset: string, id: number): void {
  data.thumbnailImage(dataset, id).then(
    (src) => { img.src = src; },
    () => img.classList.add('thumb-failed'),  // the rest of the view stays usable
  );
}

/** `img` if it shows its picture (not thumbImg's placeholder while loading, nor a failed one), else null. */
export function shownThumb(img: HTMLImageElement | null): HTMLImageElement | null {
  return img && img.getAttribute('src') !== BLANK && img.src !== '' && !img.classList.contains('thumb-failed') ? img : null;
}
