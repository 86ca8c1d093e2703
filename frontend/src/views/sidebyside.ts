// Side by side: the current query under 2–4 configurations in columns (thumbnails, distances,
// ✓ / ✗ marks) and how many results each pair of columns shares (overlap@k). The columns live in
// the URL (?col=model|layer|pooling|metric, repeated). Own lazy chunk.
import './judgements.css';
import { h, clear, status } from '../dom';
import { overlap } from '../data/judgements';
import type { DatasetIndex, Manifest, Neighbor } from '../data/types';
import type { Ctx, UploadQuery, ViewModule } from '../context';
import { loadedOnly } from '../data/names';
import { Latest } from '../context';
import { colKey, columnsOf, MAX_COLS, type Column } from '../state';
import { metricInfo, metricLabel } from './config';
import { renderResults } from './results';
import { thumbImg } from './thumb';
import { judgeButtons } from './judge';

/** "MobileNet · conv_pw_13_relu · avg · cosine" */
export function columnLabel(m: Manifest, c: Column): string {
  const model = m.models.find((x) => x.id === c.model)?.name ?? c.model;
  return `${model} · ${c.layer} · ${c.pooling} · ${metricLabel(metricInfo(m, c.metric))}`;
}

function select(label: string, options: [string, string][], value: string, onChange: (v: string) => void): HTMLElement {
  const sel = h('select', { attrs: { 'aria-label': label } }, options.map(([v, t]) => h('option', { text: t, attrs: { value: v } })));
  sel.value = value;
  sel.addEventListener('change', () => onChange(sel.value));
  return sel;
}

/** Same relative position in the new model's layers: what one wants when comparing models. */
function sameDepth(m: Manifest, c: Column, model: string): string {
  const from = m.models.find((x) => x.id === c.model)!.layers;
  const to = m.models.find((x) => x.id === model)!.layers;
  const i = from.findIndex((l) => l.name === c.layer);
  return to[Math.round((Math.max(0, i) / Math.max(1, from.length - 1)) * (to.length - 1))]!.name;
}

interface ColumnResult {
  results?: Neighbor[];
  thumb?: (id: number) => string;
  /** Why a column has no results (an upload under a configuration the browser model lacks). */
  problem?: string;
}

/** An upload's columns, one browser search after another (the worker runs them in order). */
async function searchColumns(up: UploadQuery, cols: Column[]): Promise<ColumnResult[]> {
  const out: ColumnResult[] = [];
  for (const c of cols) {
    if (c.model !== up.model) {
      out.push({ problem: 'The in-browser model cannot search this model: an uploaded image can only be compared in its layers.' });
      continue;
    }
    out.push(await up.run(c.layer, c.pooling, c.metric).then(
      (r) => ({ results: r.results, ...(r.thumb ? { thumb: r.thumb } : {}) }),
      (e: unknown) => ({ problem: `Not available for your image: ${e instanceof Error ? e.message : String(e)}` }),
    ));
  }
  return out;
}

/** An upload's default columns: the browser model's first and last layer (current pooling if it has it). */
function uploadDefaults(m: Manifest, pooling: string, metric: string): Column[] | null {
  const bs = m.browser_search;
  if (!bs) return null;
  const p = bs.outputs.some((o) => o.pooling === pooling) ? pooling : bs.outputs[0]!.pooling;
  const layers = bs.outputs.filter((o) => o.pooling === p).map((o) => o.layer);
  if (layers.length < 2) return null;
  return [layers[0]!, layers[layers.length - 1]!].map((layer) => ({ model: bs.model, layer, pooling: p, metric }));
}

export class SideBySideView implements ViewModule {
  readonly root = h('section', { class: 'view view-side', attrs: { 'aria-label': 'Side by side' } });
  private readonly latest = new Latest();

  update(ctx: Ctx): void {
    const fresh = this.latest.next();
    const { state, data } = ctx;
    const cols = columnsOf(state, ctx.manifest);
    if (ctx.upload) {
      const up = ctx.upload;
      const ucols = state.cols ? cols : uploadDefaults(ctx.manifest, state.pooling, state.metric) ?? cols;
      void Promise.all([data.index(state.dataset), searchColumns(up, ucols)]).then(
        ([idx, r]) => fresh() && this.render(ctx, idx, null, ucols, r),
        (e: unknown) => fresh() && this.fail(e),
      );
      return;
    }
    if (state.q === null) {
      clear(this.root);
      this.root.append(status('Pick a query image in the Search view first.', 'empty'));
      return;
    }
    const q = state.q;
    const rows = Promise.all(cols.map((c) => data.neighborRow(state.dataset, c.model, c.layer, c.pooling, c.metric, q)));
    Promise.all([data.index(state.dataset), rows]).then(
      ([idx, r]) => fresh() && this.render(ctx, idx, q, cols, r.map((results) => ({ results }))),
      (e: unknown) => fresh() && this.fail(e),
    );
  }

  private fail(e: unknown): void {
    clear(this.root);
    this.root.append(status(`Could not load data: ${e instanceof Error ? e.message : String(e)}`, 'error'));
  }

  /** q: the dataset query, or null for the uploaded image (ctx.upload). */
  private render(ctx: Ctx, idx: DatasetIndex, q: number | null, cols: Column[], rows: ColumnResult[]): void {
    const { state, data } = ctx;
    const set = (next: Column[]) => ctx.navigate({ cols: next.map(colKey) });
    let img: HTMLImageElement;
    if (q === null) img = h('img', { class: 'query-img side-query-img', attrs: { src: ctx.upload?.imageUrl ?? '', alt: 'Your uploaded image' } });
    else {
      img = thumbImg(data, state.dataset, q, 'Query image', 'query-img side-query-img');
      void idx.names.name(q).then((n) => (img.alt = `Query image ${n}`), () => undefined);
    }
    clear(this.root);
    this.root.append(
      h('div', { class: 'side-head' }, [
        img,
        h('div', {}, [
          h('h2', { text: q === null ? 'Your image, side by side (searched in your browser)' : 'The same query, side by side' }),
          q === null ? h('p', { class: 'hint', text: 'Columns run in the browser model’s layers only; the results’ names and pictures are not fetched (the requests would tell the host what your image matched). Marks need a dataset query.' }) : '',
          h('p', { class: 'hint', text: q === null ? 'Change a column’s layer, pooling or metric to see what changes.' : 'Change a column’s model, layer, pooling or metric to see what changes. Mark results ✓ similar or ✗ not similar: the marks stay in this browser and feed “Your judgements”.' }),
          cols.length < MAX_COLS ? h('button', { class: 'toggle side-add', text: '+ Add a column', attrs: { type: 'button' }, on: { click: () => set([...cols, cols[cols.length - 1]!]) } }) : '',
        ]),
      ]),
      this.overlapTable(ctx.manifest, cols, rows),
      h('div', { class: `side-cols side-cols-${cols.length}` }, cols.map((_c, i) => this.column(ctx, idx, q, cols, i, rows[i]!, set))),
    );
  }

  private overlapTable(m: Manifest, cols: Column[], rows: ColumnResult[]): HTMLElement {
    const k = rows.find((r) => r.results)?.results!.length ?? 0;
    const pairs: HTMLElement[] = [];
    for (let a = 0; a < cols.length; a++) for (let b = a + 1; b < cols.length; b++) {
      const ra = rows[a]!.results, rb = rows[b]!.results;
      if (!ra || !rb) continue;
      const n = overlap(ra.map((x) => x.id), rb.map((x) => x.id));
      pairs.push(h('li', { class: 'overlap', attrs: { 'data-pair': `${a + 1}-${b + 1}`, 'data-overlap': n, title: `${columnLabel(m, cols[a]!)} and ${columnLabel(m, cols[b]!)}` } }, [
        `Columns ${a + 1} & ${b + 1}: `, h('strong', { text: `${n} of ${k}` }), ' results shared',
      ]));
    }
    return h('section', { class: 'side-overlap', attrs: { 'aria-label': `Overlap@${k}` } }, [h('h3', { text: `Overlap@${k}` }), h('ul', {}, pairs)]);
  }

  private column(ctx: Ctx, idx: DatasetIndex, q: number | null, cols: Column[], i: number, res: ColumnResult, set: (c: Column[]) => void): HTMLElement {
    const { manifest: m, state, data } = ctx;
    const c = cols[i]!;
    const change = (patch: Partial<Column>) => set(cols.map((x, j) => (j === i ? { ...x, ...patch } : x)));
    const model = m.models.find((x) => x.id === c.model)!;
    const store = ctx.judgements;
    const controls = h('div', { class: 'side-controls' }, [
      select(`Column ${i + 1} model`, m.models.map((x) => [x.id, x.name]), c.model, (v) => change({ model: v, layer: sameDepth(m, c, v) })),
      select(`Column ${i + 1} layer`, model.layers.map((l, j) => [l.name, `${j + 1}. ${l.name}`]), c.layer, (v) => change({ layer: v })),
      select(`Column ${i + 1} pooling`, m.poolings.map((x) => [x.id, x.label]), c.pooling, (v) => change({ pooling: v })),
      select(`Column ${i + 1} metric`, m.metrics.map((x) => [x.id, metricLabel(x)]), c.metric, (v) => change({ metric: v })),
      cols.length > 2 ? h('button', { class: 'link-btn side-remove', text: 'Remove', attrs: { type: 'button', 'aria-label': `Remove column ${i + 1}` }, on: { click: () => set(cols.filter((_, j) => j !== i)) } }) : '',
    ]);
    const head = h('h3', { text: `${i + 1}. ${columnLabel(m, c)}` });
    const attrs = { 'data-col': colKey(c), 'aria-label': `Column ${i + 1}: ${columnLabel(m, c)}` };
    if (!res.results) return h('section', { class: 'side-col side-col-off', attrs }, [head, controls, status(res.problem ?? 'not available', 'empty')]);
    // An upload: no names fetched, thumbnails from memory (as in the Search view).
    const up = q === null ? res.thumb : undefined;
    const grid = renderResults({
      neighbors: res.results, names: q === null ? loadedOnly(idx.names) : idx.names, labels: idx.labels, classes: data.dataset(state.dataset).classes,
      // "✕ other class" marks only for class folders (a top folder is no label).
      queryLabel: q === null || data.dataset(state.dataset).labels !== 'folders' ? null : (idx.labels[q] ?? -1),
      metricLabel: metricLabel(metricInfo(m, c.metric)), thumb: up ?? (() => ''),
      thumbEl: q === null && up ? undefined : (id, alt) => thumbImg(data, state.dataset, id, alt),
      onPick: (id) => ctx.navigate({ q: id }),
      extra: store && q !== null ? (id) => judgeButtons({ store, dataset: state.dataset, names: idx.names, query: q }, id) : undefined,
    });
    grid.classList.add('side-results');
    return h('section', { class: 'side-col', attrs }, [head, controls, grid]);
  }
}
