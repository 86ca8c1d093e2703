// One query's ranked results: thumbnail, rank, raw distance, a per-query scaled bar, other-class mark.
// Shared by dataset queries and uploaded-image queries (which have no class, hence no marks).
import { h } from '../dom';
import { barFractions, formatDistance } from '../data/score';
import { withName } from '../data/names';
import type { FileNames, Neighbor } from '../data/types';

export interface ResultsInput {
  neighbors: Neighbor[];
  /** File names: each result shows a placeholder until its names page has arrived. */
  names: FileNames;
  labels: ArrayLike<number>;
  classes: readonly string[];
  /** Class of the query, or null for an uploaded image. */
  queryLabel: number | null;
  metricLabel: string;
  thumb(id: number): string;
  /** Sprite-sheet thumbnail element (views/thumb.ts); when given, used instead of thumb(). */
  thumbEl?: (id: number, alt: string) => HTMLElement;
  onPick(id: number): void;
  /** "Why similar?" for a result: its id and the button showing its picture. */
  onWhy?(id: number, shown: HTMLElement): void;
  /** Extra controls under a result (the ✓ / ✗ judgement buttons). */
  extra?(id: number): HTMLElement | null;
}

export function resultItem(inp: ResultsInput, n: Neighbor, rank: number, frac: number): HTMLElement {
  const label = inp.labels[n.id];
  const cls = label === undefined ? '?' : (inp.classes[label] ?? String(label));
  const other = inp.queryLabel !== null && label !== inp.queryLabel;
  const fill = h('span', { class: 'bar-fill' });
  fill.style.width = `${(frac * 100).toFixed(1)}%`;
  const dist = formatDistance(n.distance);
  const btn = h(
    'button',
    {
      class: 'result-btn',
      attrs: {
        type: 'button',
        'data-id': n.id,
      },
      on: { click: () => inp.onPick(n.id) },
    },
    [inp.thumbEl ? inp.thumbEl(n.id, '') : h('img', { class: 'thumb', attrs: { src: inp.thumb(n.id), alt: '', width: 128, height: 128, decoding: 'async' } })],
  );
  const pic = btn.firstElementChild!;
  withName(inp.names, n.id, (file) => {
    btn.title = `${file} (${cls}) — ${inp.metricLabel} distance ${dist}. Click to search with it.`;
    btn.setAttribute('aria-label', `Result ${rank}: ${file}, class ${cls}${other ? ' (other class)' : ''}, distance ${dist}`);
    pic.setAttribute(pic instanceof HTMLImageElement ? 'alt' : 'aria-label', `${file} (${cls})`);
  });
  const onWhy = inp.onWhy;
  return h('li', { class: `result${other ? ' result-other' : ''}`, attrs: { 'data-rank': rank } }, [
    btn,
    h('div', { class: 'result-meta' }, [
      h('span', { class: 'rank', text: `#${rank}` }),
      h('span', { class: 'dist', text: dist, attrs: { title: `${inp.metricLabel} distance (smaller is more similar)` } }),
    ]),
    h('span', { class: 'bar', attrs: { role: 'img', 'aria-label': `similarity bar ${Math.round(frac * 100)}% of the nearest` } }, [fill]),
    h('span', { class: 'result-class', text: cls }),
    other ? h('span', { class: 'other-mark', text: '✕ other class', attrs: { title: 'Not in the query image’s class' } }) : null,
    inp.extra?.(n.id) ?? null,
    onWhy ? h('button', { class: 'why-btn link-btn', text: 'Why similar?', attrs: { type: 'button', 'aria-label': `Why is result ${rank} similar?` }, on: { click: () => onWhy(n.id, btn) } }) : null,
  ]);
}

export function renderResults(inp: ResultsInput): HTMLElement {
  const fracs = barFractions(inp.neighbors.map((n) => n.distance));
  return h('ol', { class: 'results-grid' }, inp.neighbors.map((n, i) => resultItem(inp, n, i + 1, fracs[i] ?? 0)));
}
