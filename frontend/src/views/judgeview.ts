// "Your judgements": every configuration of the bundle ranked by agreement with the user's own
// ✓ / ✗ marks (data/judgements.ts: condensed-list AP', seeded bootstrap interval), whether more
// marks could change the top, what to judge next, and export / import of the marks as a file.
// Rows are fetched lazily: only the judged queries' ids, one Range request per configuration and
// query (DataProvider.neighborIds), kept for the session. Own lazy chunk.
import './judgements.css';
import { h, clear, status } from '../dom';
import { planFetch, rankConfigurations, suggest, type JudgedByQuery, type Ranking, type Rows } from '../data/judgements';
import { parseFile, resolveIds, toFile, type JudgementStore } from '../data/judgestore';
import type { DatasetIndex, Manifest } from '../data/types';
import type { Ctx, ViewModule } from '../context';
import { Latest } from '../context';
import { colKey, type Column } from '../state';
import { idBytes } from '../data/atlas';
import { columnLabel } from './sidebyside';
import { thumbImg } from './thumb';
import { judgeButtons } from './judge';

/** Every configuration, in manifest order: model, layer, pooling, metric. */
export function allColumns(m: Manifest): Column[] {
  const out: Column[] = [];
  for (const model of m.models) for (const l of model.layers) for (const p of m.poolings) for (const x of m.metrics) out.push({ model: model.id, layer: l.name, pooling: p.id, metric: x.id });
  return out;
}

/**
 * The explorer's per-view budget is 20 KB of data; the rows get 12 KB of it, the rest is for the
 * names pages of the suggested images (≤ 16 names) and the labels.
 */
const ROW_BUDGET = 12_000;

/** All configurations, the current pooling and metric first (what a partial ranking covers first). */
function priorityColumns(m: Manifest, pooling: string, metric: string): Column[] {
  const all = allColumns(m);
  const now = (c: Column) => (c.pooling === pooling && c.metric === metric ? 0 : 1);
  return all.map((c, i) => [c, i] as const).sort((a, b) => now(a[0]) - now(b[0]) || a[1] - b[1]).map(([c]) => c);
}

/** Runs `jobs` with at most `width` in flight (thousands of tiny Range requests). */
async function pool(jobs: (() => Promise<void>)[], width: number): Promise<void> {
  let next = 0;
  const worker = async () => { while (next < jobs.length) await jobs[next++]!(); };
  await Promise.all(Array.from({ length: Math.min(width, jobs.length) }, worker));
}

const pct = (x: number) => `${Math.round(x * 100)}%`;

export class JudgeView implements ViewModule {
  readonly root = h('section', { class: 'view view-judge', attrs: { 'aria-label': 'Your judgements' } });
  private readonly head = h('div', { class: 'judge-head' });
  private readonly body = h('div', { class: 'judge-body', attrs: { 'aria-live': 'polite' } });
  /** The bundle's offline ranking (precompute --judgements), when it has one. */
  private readonly offlineBox = h('div', { class: 'judge-offline' });
  private readonly latest = new Latest();
  private ctx: Ctx | null = null;
  private unsubscribe: (() => void) | null = null;
  private note = '';
  /** Rows fetched this session ("dataset|config#query"): the budget counts only new ones. */
  private readonly have = new Set<string>();
  /** The user asked for every configuration once ("rank all"): no budget for that refresh. */
  private allOnce = false;

  constructor() {
    this.root.append(this.head, this.offlineBox, this.body);
  }

  update(ctx: Ctx): void {
    this.ctx = ctx;
    const store = ctx.judgements;
    if (!store) return;
    // Re-rank when a mark changes while this view is shown (a suggestion judged here).
    this.unsubscribe ??= store.onChange(() => this.ctx?.state.view === 'judge' && this.refresh());
    this.refresh();
  }

  private refresh(): void {
    const ctx = this.ctx!;
    const store = ctx.judgements!;
    const fresh = this.latest.next();
    this.renderHead(ctx, store);
    void this.renderOffline(ctx, fresh);
    const js = store.all(ctx.state.dataset);
    clear(this.body);
    if (!js.length) {
      this.body.append(status('No judgements for this dataset yet: mark results ✓ similar or ✗ not similar in the Search or Side-by-side view.', 'empty'));
      return;
    }
    this.body.setAttribute('aria-busy', 'true');
    void this.rank(ctx, js, fresh).catch((e: unknown) => {
      if (!fresh()) return;
      clear(this.body);
      this.body.append(status(`Could not rank: ${e instanceof Error ? e.message : String(e)}`, 'error'));
    });
  }

  private async rank(ctx: Ctx, js: ReturnType<JudgementStore['all']>, fresh: () => boolean): Promise<void> {
    const { data, state, manifest: m } = ctx;
    const idx = await data.index(state.dataset);
    const ids = await resolveIds(js, idx.names, idx.size);
    const judged: JudgedByQuery = new Map();
    ids.forEach((p, i) => {
      if (!p) return;
      if (!judged.has(p[0])) judged.set(p[0], new Map());
      judged.get(p[0])!.set(p[1], js[i]!.similar);
    });
    const missing = ids.filter((p) => !p).length;
    const queries = [...judged.keys()].sort((a, b) => a - b);
    const d = data.dataset(state.dataset);
    const byKey = new Map(priorityColumns(m, state.pooling, state.metric).map((c) => [colKey(c), c]));
    const tag = (key: string, q: number) => `${state.dataset}|${key}#${q}`;
    const have = new Set([...byKey.keys()].flatMap((key) => queries.filter((q) => this.have.has(tag(key, q))).map((q) => `${key}#${q}`)));
    const plan = planFetch([...byKey.keys()], queries, have, d.k * idBytes(d.id_dtype), this.allOnce ? Infinity : ROW_BUDGET);
    this.allOnce = false;
    const progress = status(`Fetching ${plan.fetch.length} neighbour lists of ${queries.length} judged quer${queries.length === 1 ? 'y' : 'ies'}…`);
    this.body.append(progress);
    let done = 0;
    await pool(plan.fetch.map(([key, q]) => async () => {
      const c = byKey.get(key)!;
      await data.neighborIds(state.dataset, c.model, c.layer, c.pooling, c.metric, q);
      this.have.add(tag(key, q));
      if (++done % 200 === 0 && fresh()) progress.textContent = `Fetched ${done} of ${plan.fetch.length} lists…`;
    }), 6);
    if (!fresh()) return;
    // Every row is in the provider's cache now: these reads cost no request.
    const rows = new Map<string, Rows>();
    for (const key of plan.ranked) {
      const c = byKey.get(key)!;
      rows.set(key, new Map(await Promise.all(queries.map(async (q) => [q, await data.neighborIds(state.dataset, c.model, c.layer, c.pooling, c.metric, q)] as const))));
    }
    if (!fresh()) return;
    const ranking = rankConfigurations(rows, judged);
    clear(this.body);
    this.body.removeAttribute('aria-busy');
    this.body.dataset.configs = String(ranking.ranked.length);
    this.body.dataset.total = String(byKey.size);
    this.body.append(
      missing ? status(`${missing} judgement(s) name images that are not in this dataset any more; they are ignored.`, 'empty') : '',
      plan.restBytes ? this.partial(ranking.ranked.length, byKey.size, plan.restBytes) : '',
      this.verdict(m, ranking, ranking.ranked.length < byKey.size),
      this.suggestions(ctx, idx, rows, judged),
      this.table(ctx, ranking, judged, byKey.size),
    );
  }

  /** The ranking `precompute --judgements` stored in the bundle: all configurations, ranked offline
   * from the file the user exported (one small JSON file, fetched only when the dataset has one). */
  private async renderOffline(ctx: Ctx, fresh: () => boolean): Promise<void> {
    clear(this.offlineBox);
    const info = ctx.data.dataset(ctx.state.dataset).judgements;
    if (!info) return;
    let j;
    try {
      j = await ctx.data.offlineJudgements(ctx.state.dataset);
    } catch (e) {
      if (fresh()) this.offlineBox.append(status(`Could not read the offline ranking: ${e instanceof Error ? e.message : String(e)}`, 'error'));
      return;
    }
    if (!j || !fresh()) return;
    const m = ctx.manifest;
    const rows = j.top.slice(0, 10).map((x, i) => {
      const c = keyToCol(x.config);
      return h('tr', { class: 'judge-offline-row', attrs: { 'data-config': x.config } }, [
        h('td', { text: String(i + 1) }),
        h('td', {}, [h('button', { class: 'link-btn', text: columnLabel(m, c), attrs: { type: 'button', title: 'Search with this configuration' }, on: { click: () => ctx.navigate({ ...c, view: 'search' }) } })]),
        h('td', { class: 'num', text: x.score.toFixed(3) }),
        h('td', { class: 'ci-text', text: `${x.lo.toFixed(2)}–${x.hi.toFixed(2)}` }),
        h('td', { class: 'num', text: String(x.n_judged) }),
      ]);
    });
    this.offlineBox.append(h('section', { class: 'judge-offline-ranking', attrs: { 'aria-label': 'Offline ranking' } }, [
      h('h3', { text: `Ranked offline over all ${j.configurations} configurations` }),
      h('p', { class: 'hint', text: `Computed when the bundle was built (convnet-search precompute --judgements ${j.source}) from ${j.judgements} judgements on ${j.judged_queries} quer${j.judged_queries === 1 ? 'y' : 'ies'} (${j.scored_queries} with a ✓); the leader leads in ${pct(j.leader_share)} of resamples. Your marks in this browser are ranked below.` }),
      h('table', { class: 'judge-table' }, [
        h('thead', {}, [h('tr', {}, ['#', 'Configuration', 'Agreement (AP′)', '95% interval', 'Judged results in its lists'].map((t) => h('th', { text: t, attrs: { scope: 'col' } })))]),
        h('tbody', {}, rows),
      ]),
    ]));
  }

  /** Not every configuration fits the per-view byte budget: say so, and offer the rest. */
  private partial(ranked: number, total: number, bytes: number): HTMLElement {
    return h('div', { class: 'judge-partial', attrs: { role: 'status' } }, [
      h('p', { text: `Ranked ${ranked} of ${total} configurations (the current pooling and metric first): the other ${total - ranked} need ${(bytes / 1000).toFixed(1)} KB more of neighbour lists, and a view fetches at most ${ROW_BUDGET / 1000} KB of them at a time.` }),
      h('button', { class: 'toggle judge-all', text: `Fetch them and rank all ${total}`, attrs: { type: 'button' }, on: { click: () => { this.allOnce = true; this.refresh(); } } }),
    ]);
  }

  private renderHead(ctx: Ctx, store: JudgementStore): void {
    const mine = store.all(ctx.state.dataset);
    const yes = mine.filter((j) => j.similar).length;
    const file = h('input', { class: 'judge-file', attrs: { type: 'file', accept: '.json,application/json', 'aria-label': 'Import judgements from a file' } });
    file.addEventListener('change', () => void this.importFile(store, file));
    clear(this.head);
    this.head.append(
      h('h2', { text: 'Your judgements' }),
      h('p', { class: 'judge-count', text: `${mine.length} judgements in this dataset (${yes} ✓ similar, ${mine.length - yes} ✗ not similar); ${store.all().length} in all datasets.` }),
      h('p', { class: 'hint', text: 'Your marks stay in this browser (IndexedDB); marking sends nothing. Ranking fetches the neighbour lists of the queries you judged (k ids per configuration): the host can see which images you judged, never how.' }),
      store.problem ? status(store.problem, 'error') : '',
      h('div', { class: 'toggles' }, [
        h('button', { class: 'toggle judge-export', text: 'Export (JSON)', attrs: { type: 'button' }, on: { click: () => exportFile(store) } }),
        h('label', { class: 'toggle judge-import' }, ['Import… ', file]),
      ]),
      this.note ? h('p', { class: 'judge-note', text: this.note, attrs: { role: 'status' } }) : '',
    );
  }

  private async importFile(store: JudgementStore, input: HTMLInputElement): Promise<void> {
    const f = input.files?.[0];
    if (!f) return;
    try {
      const n = await store.importAll(parseFile(await f.text()));
      this.note = `Imported ${n} judgements from ${f.name}.`;
    } catch (e) {
      this.note = `Could not import ${f.name}: ${e instanceof Error ? e.message : String(e)}`;
    }
    this.refresh();
  }

  private verdict(m: Manifest, r: Ranking, partial: boolean): HTMLElement {
    if (!r.ranked.length) return status('No configuration ranked yet within this view’s byte budget: use “Fetch them and rank all”.', 'empty');
    if (!r.queries.length) return status('Mark at least one result ✓ similar: a query with only ✗ marks cannot rank anything yet.', 'empty');
    const [a, b] = r.ranked;
    const label = (x: string) => columnLabel(m, keyToCol(x));
    const settled = r.leaderShare >= 0.95;
    const among = partial ? `Among the ${r.ranked.length} configurations ranked so far, ` : '';
    const sentence = (settled
      ? `#1 ${label(a!.config)} leads in ${pct(r.leaderShare)} of resamples of your ${r.queries.length} judged queries: more judgements are unlikely to change the top, though they would narrow the intervals.`
      : `More judgements could change the top: #1 ${label(a!.config)} leads in only ${pct(r.leaderShare)} of resamples of your ${r.queries.length} judged quer${r.queries.length === 1 ? 'y' : 'ies'}` +
        (b ? ` (95% intervals: #1 ${a!.lo.toFixed(2)}–${a!.hi.toFixed(2)}, #2 ${b.lo.toFixed(2)}–${b.hi.toFixed(2)}).` : '.'));
    const text = among ? among + sentence[0]!.toLowerCase() + sentence.slice(1) : sentence;
    return h('p', { class: `judge-verdict ${settled ? 'settled' : 'open'}`, text, attrs: { 'data-leader-share': r.leaderShare } });
  }

  private suggestions(ctx: Ctx, idx: DatasetIndex, rows: Map<string, Rows>, judged: JudgedByQuery): HTMLElement {
    const pairs = suggest(rows, judged);
    const { data, state } = ctx;
    const store = ctx.judgements!;
    if (!pairs.length) return h('p', { class: 'hint', text: 'Nothing to suggest: every result in these configurations\' lists for your judged queries is judged.' });
    return h('section', { class: 'judge-suggest', attrs: { 'aria-label': 'Judge these next' } }, [
      h('h3', { text: 'Judge these next' }),
      h('p', { class: 'hint', text: 'The unjudged results the configurations rank highest, pooled over all of them (not just the leaders), so that every configuration is judged on the same results.' }),
      h('ol', { class: 'suggest-list' }, pairs.map(([q, id]) => h('li', { class: 'suggest', attrs: { 'data-q': q, 'data-r': id } }, [
        thumbImg(data, state.dataset, q, `query ${q}`, 'thumb suggest-q'), h('span', { text: '→' }), thumbImg(data, state.dataset, id, `result ${id}`, 'thumb suggest-r'),
        judgeButtons({ store, dataset: state.dataset, names: idx.names, query: q }, id),
      ]))),
    ]);
  }

  private table(ctx: Ctx, r: Ranking, judged: JudgedByQuery, configs: number): HTMLElement {
    const m = ctx.manifest;
    const total = [...judged.values()].reduce((s, x) => s + x.size, 0);
    const head = h('tr', {}, ['#', 'Configuration', 'Agreement (AP′)', '95% interval', 'Judged results in its lists'].map((t) => h('th', { text: t, attrs: { scope: 'col' } })));
    const body = r.ranked.map((x, i) => {
      const c = keyToCol(x.config);
      const bar = h('span', { class: 'ci-bar' });
      bar.style.marginLeft = `${(x.lo * 100).toFixed(1)}%`;
      bar.style.width = `${Math.max(0.5, (x.hi - x.lo) * 100).toFixed(1)}%`;
      return h('tr', { class: 'judge-row', attrs: { 'data-config': x.config } }, [
        h('td', { text: String(i + 1) }),
        h('td', {}, [h('button', { class: 'link-btn', text: columnLabel(m, c), attrs: { type: 'button', title: 'Search with this configuration' }, on: { click: () => ctx.navigate({ ...c, view: 'search' }) } })]),
        h('td', { class: 'num', text: x.score.toFixed(3) }),
        h('td', { class: 'ci' }, [h('span', { class: 'ci-text', text: `${x.lo.toFixed(2)}–${x.hi.toFixed(2)}` }), h('span', { class: 'ci-track' }, [bar])]),
        h('td', { class: 'num', text: `${x.nJudged} of ${total}` }),
      ]);
    });
    return h('table', { class: 'judge-table' }, [
      h('caption', { text: `${r.ranked.length === configs ? 'All' : `${r.ranked.length} of the`} ${configs} configurations, ranked by agreement with your marks over ${r.queries.length} judged quer${r.queries.length === 1 ? 'y' : 'ies'} (unjudged results are left out, not counted wrong).` }),
      h('thead', {}, [head]), h('tbody', {}, body),
    ]);
  }
}

function keyToCol(key: string): Column {
  const [model, layer, pooling, metric] = key.split('|');
  return { model: model!, layer: layer!, pooling: pooling!, metric: metric! };
}

/** A download made in the page (an object URL): no request leaves the browser. */
function exportFile(store: JudgementStore): void {
  const url = URL.createObjectURL(new Blob([toFile(store.all())], { type: 'application/json' }));
  const a = h('a', { attrs: { href: url, download: 'convnet-search-judgements.json' } });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
