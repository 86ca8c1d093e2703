import { describe, expect, it } from 'vitest';
import { applyPatch, colKey, columnsOf, parseState, stateToSearch } from './state';
import type { Manifest } from './data/types';

const layer = (name: string, depth: number) => ({ name, index: 1, type: 'ReLU', output_shape: [1, 1, 2], dims: { avg: 2 }, params_cumulative: 1, depth });
const m = {
  poolings: [{ id: 'avg', label: 'A', description: '' }, { id: 'gem', label: 'G', description: '' }],
  metrics: [{ id: 'euclidean', label: 'E', p: null, description: '' }, { id: 'cosine', label: 'C', p: null, description: '' }],
  datasets: [{ id: 'a', size: 10, fields: [] }, { id: 'b', size: 5, fields: [{ id: 'colour' }, { id: 'season' }] }],
  models: [
    { id: 'm1', layers: [layer('x1', 0.2), layer('x2', 0.6), layer('x3', 1)] },
    { id: 'm2', layers: [layer('y1', 0.3), layer('y2', 0.9)] },
  ],
} as unknown as Manifest;

describe('URL state', () => {
  it('defaults to a useful first screen: first dataset and model, deepest layer, cosine, image 0', () => {
    expect(parseState(new URLSearchParams(''), m)).toEqual({ view: 'search', dataset: 'a', model: 'm1', layer: 'x3', metric: 'cosine', pooling: 'avg', q: 0, gallery: 'all', field: '', colour: 'folder', cols: null });
  });
  it('round-trips through the query string and keeps ?data=', () => {
    const s = { view: 'map', dataset: 'b', model: 'm2', layer: 'y1', metric: 'euclidean', pooling: 'gem', q: 4, gallery: 'class', field: 'season', colour: 'colour', cols: ['m2|y1|gem|cosine', 'm1|x1|avg|euclidean'] } as const;
    const search = stateToSearch({ ...s, cols: [...s.cols] }, new URLSearchParams('data=http://x/m.json'));
    expect(search).toContain('data=http%3A%2F%2Fx%2Fm.json');
    expect(parseState(new URLSearchParams(search), m)).toEqual({ ...s, cols: [...s.cols] });
  });
  it('replaces invalid values with defaults', () => {
    const s = parseState(new URLSearchParams('view=nope&dataset=zz&model=m2&layer=x1&metric=bad&q=99'), m);
    expect(s).toMatchObject({ view: 'search', dataset: 'a', model: 'm2', layer: 'y2', metric: 'cosine', q: 0 });
    expect(parseState(new URLSearchParams('q=none'), m).q).toBeNull();
  });
  it("opens on the dataset's best configuration with trained weights when the bundle names one", () => {
    const best = { model: 'm2', layer: 'y1', pooling: 'gem', metric: 'euclidean', search_score: 0.9 };
    const withBest = { ...m, datasets: [{ id: 'a', size: 10, best }, { id: 'b', size: 5, best: null }] } as unknown as Manifest;
    expect(parseState(new URLSearchParams(''), withBest)).toMatchObject({ dataset: 'a', model: 'm2', layer: 'y1', pooling: 'gem', metric: 'euclidean' });
    // another dataset without one, or a deep link to another model: the usual defaults
    expect(parseState(new URLSearchParams('dataset=b'), withBest)).toMatchObject({ model: 'm1', layer: 'x3', pooling: 'avg', metric: 'cosine' });
    expect(parseState(new URLSearchParams('model=m1'), withBest)).toMatchObject({ model: 'm1', layer: 'x3', pooling: 'avg', metric: 'cosine' });
    // the URL's own choices win over the best configuration's
    expect(parseState(new URLSearchParams('metric=cosine&layer=y2'), withBest)).toMatchObject({ model: 'm2', layer: 'y2', pooling: 'gem', metric: 'cosine' });
    // a best entry naming what this manifest lacks is ignored
    const stale = { ...m, datasets: [{ id: 'a', size: 10, best: { ...best, layer: 'gone' } }] } as unknown as Manifest;
    expect(parseState(new URLSearchParams(''), stale)).toMatchObject({ model: 'm1', layer: 'x3' });
  });
  it('switching model keeps the relative depth; switching dataset resets the query', () => {
    const s = parseState(new URLSearchParams('layer=x1&q=7'), m);
    expect(applyPatch(s, { model: 'm2' }, m).layer).toBe('y1');
    expect(applyPatch(s, { dataset: 'b' }, m).q).toBe(0);
    expect(applyPatch(s, { metric: 'euclidean' }, m).q).toBe(7);
  });
  it('a dataset without label fields has no field and colours by folder; one with fields keeps a valid one', () => {
    const s = parseState(new URLSearchParams('field=season&colour=season'), m);
    expect(s).toMatchObject({ field: '', colour: 'folder' });
    const b = applyPatch(s, { dataset: 'b' }, m);
    expect(b).toMatchObject({ field: 'colour', colour: 'folder' });
    expect(applyPatch(b, { dataset: 'a' }, m)).toMatchObject({ field: '', colour: 'folder' });
    expect(parseState(new URLSearchParams('dataset=b&field=season&colour=nope'), m)).toMatchObject({ field: 'season', colour: 'season' });
  });
  it('side-by-side columns: 2–4 valid ones from the URL, else an early and the last layer', () => {
    const s = parseState(new URLSearchParams('col=m1|x1|avg|cosine&col=m2|y2|gem|euclidean&col=m9|x|avg|cosine'), m);
    expect(s.cols).toEqual(['m1|x1|avg|cosine', 'm2|y2|gem|euclidean']);
    expect(columnsOf(s, m).map(colKey)).toEqual(s.cols);
    expect(parseState(new URLSearchParams('col=m1|x1|avg|cosine'), m).cols).toBeNull();  // one column is not a comparison
    const five = Array.from({ length: 5 }, () => 'col=m1|x2|avg|cosine').join('&');
    expect(parseState(new URLSearchParams(five), m).cols).toHaveLength(4);
    const d = parseState(new URLSearchParams('model=m1&pooling=gem&metric=euclidean'), m);
    expect(columnsOf(d, m).map(colKey)).toEqual(['m1|x2|gem|euclidean', 'm1|x3|gem|euclidean']);
    expect(parseState(new URLSearchParams(stateToSearch({ ...d, cols: ['m1|x1|avg|cosine', 'm1|x3|avg|cosine'] }, new URLSearchParams())), m).cols).toEqual(['m1|x1|avg|cosine', 'm1|x3|avg|cosine']);
  });
});
