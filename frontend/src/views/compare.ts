// Compare view: this query's search score per layer, per pooling and per model (from its row of the
// scores/<field>/<metric>/<block>.u8 file), and the dataset-wide model × layer leaderboard heatmap plus the
// best configuration per pooling (from summary/<field>/<metric>.json), against the chosen label field.
// A dataset without labels gets the label-free guidance instead (guidance/<metric>.json): no empty
// table, no NaN, no "0 of 15".
import { thumbImg } from './thumb';
import { h, clear, status } from '../dom';
import { bestCell, configIndex, heatColor, heatTextLight, layerCounts, storedScore } from '../data/score';
import { withName } from '../data/names';
import type { DatasetIndex, Guidance, Manifest, StatName, Summary } from '../data/types';
import type { Ctx, ViewModule } from '../context';
import { Latest } from '../context';
import { NO_VALUE } from '../data/score';
import { metricInfo, metricLabel, poolingInfo } from './config';

const STATS: [StatName, string][] = [
  ['search_score', 'Search score'],
  ['precision_at_k', 'Precision@k'],
  ['map_at_k', 'mAP@k'],
];

function barRow(label: string, value: number, current: boolean, onClick: () => void, title: string): HTMLElement {
  const fill = h('span', { class: 'bar-fill' });
  fill.style.width = `${Math.max(0, Math.min(1, value)) * 100}%`;
  return h('li', { class: `score-row${current ? ' current' : ''}` }, [
    h('button', { class: 'score-row-btn', attrs: { type: 'button', title, 'aria-current': current ? 'true' : false }, on: { click: onClick } }, [
      h('span', { class: 'score-label', text: label }),
      h('span', { class: 'bar' }, [fill]),
      h('span', { class: 'score-val', text: value.toFixed(2) }),
    ]),
  ]);
}

export class CompareView implements ViewModule {
  readonly root: HTMLElement;
  private readonly query = h('section', { class: 'cmp-query', attrs: { 'aria-label': 'This query' } });
  private readonly board = h('section', { class: 'cmp-board', attrs: { 'aria-label': 'Leaderboard' } });
  private readonly latest = new Latest();
  private stat: StatName = 'search_score';

  constructor() {
    this.root = h('section', { class: 'view view-compare', attrs: { 'aria-label': 'Compare' } }, [this.query, this.board]);
  }

  update(ctx: Ctx): void {
    const fresh = this.latest.next();
    const { data, state } = ctx;
    if (!this.query.firstChild) this.query.append(status('Loading scores…'));
    if (!this.board.firstChild) this.board.append(status('Loading leaderboard…'));
    if (!state.field) {
      this.renderNoLabels(ctx);
      data.guidance(state.dataset, state.metric).then(
        (g) => fresh() && this.renderGuidance(ctx, g),
        (e: unknown) => fresh() && this.fail(this.board, e),
      );
      return;
    }
    const rowP = state.q === null ? Promise.resolve(null) : data.queryScores(state.dataset, state.metric, state.q, state.field);
    Promise.all([rowP, data.index(state.dataset)]).then(
      ([row, idx]) => fresh() && this.renderQuery(ctx, row, idx),
      (e: unknown) => fresh() && this.fail(this.query, e),
    );
    data.summary(state.dataset, state.metric, state.field).then(
      (s) => fresh() && this.renderBoard(ctx, s),
      (e: unknown) => fresh() && this.fail(this.board, e),
    );
  }

  private fail(el: HTMLElement, e: unknown): void {
    clear(el);
    el.append(status(`Could not load data: ${e instanceof Error ? e.message : String(e)}`, 'error'));
  }

  /** The query panel of a dataset without label fields: why there are no scores, what there is. */
  private renderNoLabels(ctx: Ctx): void {
    clear(this.query);
    const ds = ctx.data.dataset(ctx.state.dataset);
    this.query.append(
      h('h2', { text: 'No labels: label-free guidance' }),
      h('p', { class: 'hint no-labels', text: `${ds.name} has no labels (it was read with labels "${ds.labels}"), so no search score can say which results are right; the guidance here comes from the neighbour lists alone.` }),
      h('p', { class: 'hint', text: 'To score configurations, run precompute with --labels folders (a first-level folder is the class) or --labels FILE (a CSV/TSV with a path column and one column per label field).' }),
    );
  }

  private renderGuidance(ctx: Ctx, g: Guidance): void {
    const { manifest: m, state } = ctx;
    clear(this.board);
    const pPos = Math.max(0, m.poolings.findIndex((p) => p.id === state.pooling));
    const table = (t: (number | null)[][][]) => (t[pPos] ?? []).map((row) => row.map((v) => (v === null ? undefined : v))) as number[][];
    const pick = (model: string, layer: string) => ctx.navigate({ model, layer });
    const metric = metricLabel(metricInfo(m, state.metric));
    this.board.append(
      h('h2', { text: `Guidance: ${metric}, ${poolingInfo(m, state.pooling).label} pooling` }),
      h('h3', { text: `Agreement: mean overlap@${g.k} with every other configuration` }),
      h('p', { class: 'hint', text: 'Share of a configuration\'s results that the other configurations also return, averaged over images. Higher: closer to the consensus (it does not say which idea of "similar" they share). ★ marks the highest. On two labelled photo sets it followed the label score only moderately (Spearman 0.48 and 0.60) and its top pick was not among the 3 best.' }),
      heatmap(m, table(g.agreement), state.model, state.layer, pick, 'agreement'),
      h('h3', { text: `Hubness: skewness of how often each image is among the top ${g.k}` }),
      h('p', { class: 'hint', text: 'High hubness: a few images turn up in almost everyone\'s results. ★ marks the lowest. Measured on two labelled photo sets, lower hubness did not mean better search (the first layers have the least and search worst), so read a very high value as a warning, not this table as a ranking.' }),
      heatmap(m, table(g.hubness), state.model, state.layer, pick, 'hubness', true),
    );
  }

  private fieldSelect(ctx: Ctx): HTMLElement {
    const ds = ctx.data.dataset(ctx.state.dataset);
    const select = h('select', { attrs: { id: 'sel-field', 'aria-label': 'Label field' } },
      ds.fields.map((f) => h('option', { text: f.name, attrs: { value: f.id } })));
    (select as HTMLSelectElement).value = ctx.state.field;
    select.addEventListener('change', () => ctx.navigate({ field: (select as HTMLSelectElement).value }));
    return select;
  }

  private renderQuery(ctx: Ctx, row: Uint8Array | null, idx: DatasetIndex): void {
    const { manifest: m, state, data } = ctx;
    clear(this.query);
    const metric = metricLabel(metricInfo(m, state.metric));
    const fld = data.dataset(state.dataset).fields.find((f) => f.id === state.field);
    this.query.append(h('h2', { text: `This query under ${metric}` }));
    if (state.q === null || row === null) {
      this.query.append(h('p', { class: 'hint', text: 'Pick a query image in the Search view to compare configurations on it.' }));
      return;
    }
    if (row.some((v) => v === NO_VALUE)) {
      this.query.append(h('p', { class: 'hint skipped-query', text: `This image has no value in the field "${fld?.name ?? state.field}", so it has no score for it: it is one of the ${fld?.skipped ?? '?'} queries this field's scores skip (they average over the other ${fld?.queries ?? '?'}). Pick another image or field.` }));
      return;
    }
    const q = state.q;
    const ds = data.dataset(state.dataset);
    const counts = layerCounts(m);
    const configs = data.configCount();
    const pPos = Math.max(0, m.poolings.findIndex((p) => p.id === state.pooling));
    const score = (mi: number, li: number, pi = pPos) => storedScore(row, configs, pi, configIndex(counts, mi, li), ds.score.scale);
    const mPos = m.models.findIndex((x) => x.id === state.model);
    const model = m.models[mPos]!;
    const lPos = Math.max(0, model.layers.findIndex((l) => l.name === state.layer));
    const pooling = poolingInfo(m, state.pooling).label;
    const qImg = thumbImg(data, state.dataset, q, '', 'cmp-thumb');
    const qHint = h('p', { class: 'hint' });
    withName(idx.names, q, (file) => {
      qImg.alt = `Query image ${file}`;
      qHint.textContent = `Search score of ${file} under each configuration (1.00 = all ${ds.score.top} results share its ${fld?.name ?? 'class'}). Click a row to use it.`;
    });
    this.query.append(
      h('div', { class: 'cmp-head' }, [qImg, qHint]),
      h('h3', { text: `Per layer of ${model.name} (${pooling} pooling)` }),
      h('ol', { class: 'score-list' }, model.layers.map((l, li) =>
        barRow(`${l.name} (#${l.index})`, score(mPos, li), l.name === state.layer, () => ctx.navigate({ layer: l.name }), `Use layer ${l.name}`),
      )),
      h('h3', { text: `Per pooling (${model.name} · ${model.layers[lPos]!.name})` }),
      h('ol', { class: 'score-list score-list-pooling' }, m.poolings.map((p, pi) =>
        barRow(p.label, score(mPos, lPos, pi), p.id === state.pooling, () => ctx.navigate({ pooling: p.id }), `Use ${p.label} pooling`),
      )),
      h('h3', { text: `Per model (its best layer for this query, ${pooling} pooling)` }),
      h('ol', { class: 'score-list' }, m.models.map((mod, mi) => {
        let best = 0;
        mod.layers.forEach((_, li) => { if (score(mi, li) > score(mi, best)) best = li; });
        const layer = mod.layers[best]!;
        return barRow(`${mod.name} · ${layer.name}`, score(mi, best), mod.id === state.model, () => ctx.navigate({ model: mod.id, layer: layer.name }), `Use ${mod.name}, layer ${layer.name}`);
      })),
    );
  }

  private renderBoard(ctx: Ctx, summary: Summary): void {
    const { manifest: m, state } = ctx;
    const pPos = summary.poolings.indexOf(state.pooling);
    const table = summary[this.stat]?.[pPos];
    clear(this.board);
    const metric = metricLabel(metricInfo(m, state.metric));
    const select = h('select', { attrs: { id: 'sel-stat', 'aria-label': 'Statistic' } }, STATS.map(([v, t]) => h('option', { text: t, attrs: { value: v } })));
    select.value = this.stat;
    select.addEventListener('change', () => {
      this.stat = select.value as StatName;
      this.renderBoard(ctx, summary);
    });
    const fld = ctx.data.dataset(state.dataset).fields.find((f) => f.id === state.field);
    const counted = fld && fld.skipped > 0 ? ` (the ${fld.queries} images with a value in it; ${fld.skipped} without one are skipped)` : '';
    this.board.append(
      h('h2', { text: `Leaderboard: whole dataset, ${metric}, ${poolingInfo(m, state.pooling).label} pooling` }),
      h('p', { class: 'hint' }, ['Label field: ', this.fieldSelect(ctx), ` — same ${fld?.name ?? 'class'} counts as similar.`]),
      h('p', { class: 'hint' }, [`Mean over all images${counted} of `, select, '. Darker is better; ★ marks the best configuration. Click a cell to use it.']),
    );
    if (!table) {
      this.board.append(status(`summary/${state.metric}.json has no ${this.stat} for pooling ${state.pooling}`, 'error'));
      return;
    }
    this.board.append(heatmap(m, table, state.model, state.layer, (model, layer) => ctx.navigate({ model, layer })));
    const values = table.flat().filter(Number.isFinite);
    this.board.append(h('p', { class: 'hint', text: `Columns are each model's chosen layers, shallow → deep (hover a cell for its name). Colour runs from the lowest (${Math.min(...values).toFixed(2)}) to the highest (${Math.max(...values).toFixed(2)}) value in the table.` }));
    this.board.append(h('h3', { text: 'Best configuration per pooling' }), poolingBoard(m, summary, this.stat, state.pooling, (pooling, model, layer) => ctx.navigate({ pooling, model, layer })));
  }
}

/** For each pooling: its best (model, layer) under `stat`, as bars; the pooling comparison of the leaderboard. */
export function poolingBoard(m: Manifest, summary: Summary, stat: StatName, current: string, pick: (pooling: string, model: string, layer: string) => void): HTMLElement {
  return h('ol', { class: 'score-list score-list-pooling-board' }, summary.poolings.map((pid, pi) => {
    const best = bestCell(summary[stat]?.[pi] ?? []);
    const label = poolingInfo(m, pid).label;
    if (best === null) return h('li', { text: `${label}: no values` });
    const model = m.models[best.model]!;
    const layer = model.layers[best.layer]!;
    return barRow(`${label}: ${model.name} · ${layer.name}`, best.value, pid === current, () => pick(pid, model.id, layer.name), `Use ${label} pooling with ${model.name}, layer ${layer.name}`);
  }));
}

/** Model × layer table as coloured buttons; `lowerIsBetter` (hubness) darkens and stars the lowest. */
export function heatmap(m: Manifest, table: number[][], curModel: string, curLayer: string, pick: (model: string, layer: string) => void, kind = 'score', lowerIsBetter = false): HTMLElement {
  const sign = lowerIsBetter ? -1 : 1;
  const best = bestCell(table.map((row) => row.map((v) => (v === undefined ? NaN : sign * v))));
  const values = table.flat().filter(Number.isFinite);
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const norm = (v: number) => (hi > lo ? (lowerIsBetter ? (hi - v) / (hi - lo) : (v - lo) / (hi - lo)) : 1);
  const maxLayers = Math.max(...m.models.map((x) => x.layers.length));
  const head = h('tr', {}, [h('th', { text: 'Model \\ layer', attrs: { scope: 'col' } }), ...Array.from({ length: maxLayers }, (_, i) => h('th', { text: String(i + 1), attrs: { scope: 'col' } }))]);
  const rows = m.models.map((model, mi) =>
    h('tr', {}, [
      h('th', { text: model.name, attrs: { scope: 'row' } }),
      ...Array.from({ length: maxLayers }, (_, li) => {
        const layer = model.layers[li];
        const v = table[mi]?.[li];
        if (!layer || v === undefined) return h('td', { class: 'heat-empty' });
        const isBest = best !== null && best.model === mi && best.layer === li;
        const isCur = model.id === curModel && layer.name === curLayer;
        const btn = h('button', {
          class: `heat-cell${isBest ? ' best' : ''}${isCur ? ' current' : ''}${heatTextLight(norm(v)) ? ' light' : ''}`,
          text: `${isBest ? '★ ' : ''}${v.toFixed(2)}`,
          attrs: { type: 'button', title: `${model.name} · ${layer.name} (#${layer.index}, ${layer.type}): ${v.toFixed(3)}`, 'aria-label': `${model.name}, layer ${layer.name}: ${v.toFixed(3)}${isBest ? ', best' : ''}`, 'aria-current': isCur ? 'true' : false, 'data-model': model.id, 'data-layer': layer.name },
          on: { click: () => pick(model.id, layer.name) },
        });
        btn.style.backgroundColor = heatColor(norm(v));
        return h('td', {}, [btn]);
      }),
    ]),
  );
  return h('div', { class: 'heat-wrap' }, [h('table', { class: 'heatmap', attrs: { 'data-kind': kind } }, [h('thead', {}, [head]), h('tbody', {}, rows)])]);
}
