// Search view: the query and its top-k results with score, the private-search panel, the gallery.
import { h, clear, status, gridKeys } from '../dom';
import { searchScore, rankWeight } from '../data/score';
import { loadedOnly, namePlaceholder, withName } from '../data/names';
import type { DatasetIndex, DatasetInfo, Neighbor } from '../data/types';
import type { Ctx, ViewModule } from '../context';
import { Latest } from '../context';
import { metricInfo, metricLabel } from './config';
import { renderResults } from './results';
import { WhyDialog } from './why';
import { shownThumb, thumbEl, thumbImg } from './thumb';
import { VirtualGallery } from './gallery';
import { judgeButtons } from './judge';

export interface UploadResults {
  imageUrl: string;
  results: Neighbor[];
  info: string;
  /** Thumbnail per result id for this upload (in-memory blob: URLs, so showing them fetches nothing). */
  thumb?: (id: number) => string;
}

export class SearchView implements ViewModule {
  readonly root: HTMLElement;
  readonly liveEl: HTMLElement;
  private readonly query = h('div', { class: 'query-panel', attrs: { 'aria-live': 'polite' } });
  private readonly results = h('div', { class: 'results' });
  private readonly galleryView = new VirtualGallery();
  private readonly gallery = this.galleryView.root;
  private readonly galleryHead = h('div', { class: 'gallery-head' });
  private readonly galleryPos = h('span', { class: 'gal-pos hint', attrs: { 'aria-live': 'off' } });
  private readonly latest = new Latest();
  private readonly latestScore = new Latest();
  /** "Why similar?" (views/why.ts); its runner comes from the in-browser search once mounted. */
  readonly why = new WhyDialog();
  private upload: UploadResults | null = null;
  private galleryKey = '';
  private ctx: Ctx | null = null;
  /** First time a result list is on screen (performance measurement for the e2e tests). */
  private marked = false;

  constructor() {
    this.liveEl = h('div', { attrs: { id: 'live-search' } });
    const live = h('section', { class: 'live-panel', attrs: { 'aria-labelledby': 'live-title' } }, [
      h('h2', { text: 'Search with your own image', attrs: { id: 'live-title' } }),
      h('p', { class: 'hint', text: 'Runs in your browser: the image never leaves this page.' }),
      this.liveEl,
    ]);
    gridKeys(this.results, 'button.result-btn');
    gridKeys(this.gallery, 'button.gal-item');
    this.root = h('section', { class: 'view view-search', attrs: { 'aria-label': 'Search' } }, [
      h('div', { class: 'search-top' }, [this.query, this.results]),
      live,
      h('section', { class: 'gallery', attrs: { 'aria-label': 'Dataset images' } }, [this.galleryHead, this.gallery]),
      this.why.root,
    ]);
  }

  /** Shows results computed for an uploaded image, exactly like a dataset query's (no class). */
  showUpload(r: UploadResults): void {
    this.upload = r;
    if (this.ctx) this.update(this.ctx);
  }

  /** The uploaded image whose results are shown, if any. */
  get uploaded(): UploadResults | null {
    return this.upload;
  }

  clearUpload(): void {
    this.upload = null;
  }

  update(ctx: Ctx): void {
    this.ctx = ctx;
    const fresh = this.latest.next();
    const { data, state } = ctx;
    if (!this.results.querySelector('.results-grid, .results-skeleton')) this.skeleton(ctx.data.dataset(state.dataset).k);
    // Old results stay in place (no layout jump), dimmed, until the new ones arrive.
    this.results.setAttribute('aria-busy', 'true');
    const idxP = data.index(state.dataset);
    void idxP.then(
      (idx) => fresh() && this.renderGallery(ctx, idx),
      (e: unknown) => fresh() && this.fail(this.gallery, e),
    );
    if (this.upload) {
      void idxP.then((idx) => fresh() && this.renderUpload(ctx, idx, this.upload!), (e: unknown) => fresh() && this.fail(this.results, e));
      return;
    }
    if (state.q === null) {
      clear(this.query);
      this.query.append(h('p', { class: 'hint', text: 'Pick an image below to see its nearest neighbours.' }));
      clear(this.results);
      this.results.removeAttribute('aria-busy');
      return;
    }
    const q = state.q;
    // Only query q's row: two Range requests of ≈ 100 bytes (DataProvider.neighborRow).
    const rowP = data.neighborRow(state.dataset, state.model, state.layer, state.pooling, state.metric, q);
    Promise.all([idxP, rowP]).then(
      ([idx, row]) => fresh() && this.renderQuery(ctx, idx, q, row),
      (e: unknown) => {
        if (!fresh()) return;
        clear(this.query);  // not the previous query's image and score beside this query's error
        this.fail(this.results, e);
      },
    );
  }

  /** Placeholder grid with the final layout, so the page does not jump when results arrive. */
  private skeleton(k: number): void {
    clear(this.results);
    const item = () => h('li', { class: 'result-ph', attrs: { 'aria-hidden': 'true' } }, [
      h('span', { class: 'thumb-ph' }),
      h('div', { class: 'result-meta' }, [h('span', { class: 'rank', text: '\u00a0' })]),
      h('span', { class: 'bar' }),
      h('span', { class: 'result-class', text: '\u00a0' }),
    ]);
    this.results.append(
      h('h2', { text: 'Loading results…' }),
      status('Fetching neighbours…'),
      h('ol', { class: 'results-skeleton' }, Array.from({ length: k }, item)),
    );
  }

  private fail(el: HTMLElement, e: unknown): void {
    clear(el);
    el.removeAttribute('aria-busy');
    el.append(status(`Could not load data: ${e instanceof Error ? e.message : String(e)}`, 'error'));
  }

  private renderQuery(ctx: Ctx, idx: DatasetIndex, q: number, neighbors: Neighbor[]): void {
    const { state, data } = ctx;
    const ds = data.dataset(state.dataset);
    const qLabel = idx.labels[q] ?? -1;
    const cls = ds.classes[qLabel] ?? '?';
    const top = Math.min(ds.score.top, neighbors.length);
    clear(this.query);
    const img = thumbImg(data, state.dataset, q, '', 'query-img');
    const file = h('p', { class: 'query-file' });
    withName(idx.names, q, (name) => {
      img.alt = `Query image ${name} (${cls})`;
      file.textContent = name;
    });
    const score = h('div', { class: 'score-slot' });
    this.query.append(
      h('h2', { text: 'Query' }),
      img,
      file,
      h('p', { class: 'query-class' }, [ds.groups === 'class folders' ? 'Class: ' : 'Folder: ', h('strong', { text: cls })]),
      score,
    );
    const fld = ds.fields.find((f) => f.id === state.field);
    if (!fld) {
      // No labels: no score to show (not "0 of 15"); one sentence says why.
      score.append(h('p', { class: 'hint no-labels', text: `No search score: ${ds.name} has no labels, so nothing says which results are right. The Compare view shows label-free guidance instead.` }));
    } else {
      const fresh = this.latestScore.next();
      data.fieldLabels(state.dataset, fld.id).then((values) => {
        if (!fresh()) return;
        const v = values[q] ?? 0;
        if (v === 0) {
          score.append(h('p', { class: 'hint skipped-query', text: `No search score: this image has no value in the field "${fld.name}" (one of the ${fld.skipped} images its scores skip).` }));
          return;
        }
        const name = fld.values[v - 1] ?? '?';
        const sc = searchScore(v, neighbors.map((n) => values[n.id] ?? 0), ds.score.top);
        score.append(this.scoreBox(sc.score, sc.same, top, `${fld.name}: ${name}`, sc.matches));
      }, (e: unknown) => fresh() && this.fail(score, e));
    }
    this.showResults(ctx, idx, neighbors, qLabel);
  }

  private scoreBox(score: number, same: number, top: number, cls: string, matches: boolean[]): HTMLElement {
    const weights = matches.slice(0, top).map((ok, i) => (ok ? rankWeight(i, top) : 0));
    const num = weights.reduce((a, b) => a + b, 0);
    const den = Array.from({ length: top }, (_, i) => rankWeight(i, top)).reduce((a, b) => a + b, 0);
    return h('div', { class: 'score-box' }, [
      h('p', { class: 'score-value' }, ['Search score ', h('strong', { class: 'score-num', text: score.toFixed(2) })]),
      h('p', { class: 'score-same', text: `${same} of ${top} results have the same ${cls.includes(': ') ? cls.replace(/: (.*)$/, ' (“$1”)') : `class (“${cls}”)`}.` }),
      h('details', { class: 'score-why' }, [
        h('summary', { text: 'How is this computed?' }),
        h('p', {
          text:
            `Each result counts with a weight that falls with its rank: result 1 weighs ${top}/${top}, result 2 weighs ${top - 1}/${top}, … result ${top} weighs 1/${top}. ` +
            `The score is the sum of the weights of same-class results divided by the sum of all weights: ${num.toFixed(2)} / ${den.toFixed(2)} = ${score.toFixed(2)}. ` +
            `So a wrong result near the top costs more than one near the bottom; 1.00 means all ${top} are in the query's class.`,
        }),
      ]),
    ]);
  }

  private showResults(ctx: Ctx, idx: DatasetIndex, neighbors: Neighbor[], qLabel: number | null, thumb?: (id: number) => string): void {
    const { manifest: m, state, data } = ctx;
    const model = m.models.find((x) => x.id === state.model);
    const metric = metricLabel(metricInfo(m, state.metric));
    const grid = renderResults({
      neighbors,
      // An upload's results never fetch names: the requests would reveal what the upload matched.
      names: qLabel === null ? loadedOnly(idx.names) : idx.names,  // qLabel null: an uploaded image
      labels: idx.labels,
      classes: data.dataset(state.dataset).classes,
      // "✕ other class" marks only for class folders: a top folder (labels none/file) is no label.
      queryLabel: data.dataset(state.dataset).labels === 'folders' ? qLabel : null,
      metricLabel: metric,
      thumb: thumb ?? (() => ''),
      thumbEl: thumb ? undefined : (id, alt) => thumbImg(data, state.dataset, id, alt),
      // An uploaded image has no file name in the dataset to key a judgement by.
      extra: qLabel === null || !ctx.judgements || state.q === null ? undefined
        : ((store, q) => (id: number) => judgeButtons({ store, dataset: state.dataset, names: idx.names, query: q }, id))(ctx.judgements, state.q),
      onPick: (id) => {
        this.upload = null;
        ctx.navigate({ q: id });
      },
      onWhy: (id, shown) => {
        // The picture on the page is reused (its pixels, no fetch) once loaded; until then (or if
        // it failed) the image from its pack (cached: the request the page already made).
        const img = shownThumb(shown.querySelector('img'));
        const upload = this.upload;
        const qImg = shownThumb(this.query.querySelector<HTMLImageElement>('img.query-img'));
        const query = upload
          ? { label: 'your image', src: upload.imageUrl, img: qImg, upload: true }
          : { label: idx.names.get(state.q ?? 0) ?? namePlaceholder(state.q ?? 0), src: qImg?.src ?? data.thumbnailImage(state.dataset, state.q ?? 0), img: qImg };
        const pick = () => {
          this.why.root.close();
          this.upload = null;
          ctx.navigate({ q: id });
        };
        const src = img?.src ?? (thumb ? thumb(id) : data.thumbnailImage(state.dataset, id));
        this.why.open(m, state.model, state.layer, query, { label: idx.names.get(id) ?? namePlaceholder(id), src, img, onPick: pick });
      },
    });
    clear(this.results);
    this.results.removeAttribute('aria-busy');
    this.results.append(
      h('h2', { text: `Top ${neighbors.length} by ${metric} distance` }),
      h('p', { class: 'hint', text: `${model?.name ?? state.model} · layer ${state.layer}. Bars shrink with distance (scaled to this query: the farthest shown gets 1/5). ✕ marks another class.` }),
      smallDatasetNote(m.k, data.dataset(state.dataset)) ?? '',
      grid,
    );
    if (!this.marked) {
      this.marked = true;
      performance.mark('first-result');
    }
  }

  private renderUpload(ctx: Ctx, idx: DatasetIndex, r: UploadResults): void {
    clear(this.query);
    this.query.append(
      h('h2', { text: 'Query: your image' }),
      h('img', { class: 'query-img', attrs: { src: r.imageUrl, alt: 'Your uploaded image', width: 128, height: 128 } }),
      h('p', { class: 'query-file', text: r.info }),
      h('button', { class: 'link-btn', text: 'Back to the dataset query', attrs: { type: 'button' }, on: { click: () => { this.upload = null; ctx.navigate({}); } } }),
    );
    this.showResults(ctx, idx, r.results, null, r.thumb);
  }

  private renderGallery(ctx: Ctx, idx: DatasetIndex): void {
    const { state, data } = ctx;
    const key = `${state.dataset}|${state.gallery}`;
    if (key !== this.galleryKey) {
      this.galleryKey = key;
      this.buildGalleryHead(ctx, idx);
      const ds = data.dataset(state.dataset);
      this.galleryView.show({
        size: ds.size, labels: idx.labels, classes: ds.classes, byClass: state.gallery === 'class',
        onView: (first, last) => {
          this.galleryPos.textContent = `images ${(first + 1).toLocaleString('en')}–${(last + 1).toLocaleString('en')} of ${ds.size.toLocaleString('en')}`;
        },
        tile: (id) => {
          const cls = ds.classes[idx.labels[id] ?? -1] ?? '?';
          const pic = thumbEl(data, state.dataset, id, '');
          const item = h('button', { class: 'gal-item', attrs: { type: 'button', 'data-id': id }, on: { click: () => { this.upload = null; ctx.navigate({ q: id }); } } }, [pic]);
          // Tiles are drawn a screen at a time: their names cost the few names pages (32 names each) of their ids.
          withName(idx.names, id, (file) => {
            item.title = `${file} (${cls})`;
            item.setAttribute('aria-label', `Search with ${file}, class ${cls}`);
            pic.setAttribute('aria-label', `${file} (${cls})`);
          });
          return item;
        },
      });
    }
    this.galleryView.select(this.upload ? null : state.q);
  }

  private buildGalleryHead(ctx: Ctx, idx: DatasetIndex): void {
    const { state, data } = ctx;
    const ds = data.dataset(state.dataset);
    const mode = state.gallery;
    const toggle = (m: 'all' | 'class', text: string) =>
      h('button', { class: 'toggle', text, attrs: { type: 'button', 'aria-pressed': String(mode === m) }, on: { click: () => ctx.navigate({ gallery: m }) } });
    const counts = new Array<number>(ds.classes.length).fill(0);
    for (let i = 0; i < idx.labels.length; i++) counts[idx.labels[i]!] = (counts[idx.labels[i]!] ?? 0) + 1;
    const jump = h('select', { class: 'gal-jump', attrs: { 'aria-label': 'Jump to the first image of a class' }, on: { change: () => {
      const c = Number(jump.value);
      if (jump.value !== '') this.galleryView.jumpToClass(c);
      jump.value = '';
    } } }, [
      h('option', { text: 'Jump to class…', attrs: { value: '' } }),
      ...ds.classes.map((name, c) => h('option', { text: `${name} (${counts[c]})`, attrs: { value: c, disabled: counts[c] === 0 } })),
    ]);
    clear(this.galleryHead);
    this.galleryHead.append(
      h('h2', { text: `${ds.name}: ${ds.size.toLocaleString('en')} images` }),
      this.galleryPos,
      h('div', { class: 'toggles', attrs: { role: 'group', 'aria-label': 'Gallery layout' } }, [toggle('all', 'All'), toggle('class', 'By category'), jump]),
    );
    if (ds.size === 0) this.galleryHead.append(status('This dataset has no images.', 'empty'));
  }
}

/** A folder of N ≤ k images has only N − 1 results per query; say so instead of looking broken. */
export function smallDatasetNote(requestedK: number, ds: DatasetInfo): HTMLElement | null {
  if (ds.k >= requestedK) return null;
  return h('p', { class: 'hint small-dataset', text: `${ds.name} has ${ds.size} images, so each query has ${ds.k} results (k=${requestedK} requested) and the search score uses the top ${ds.score.top}.` });
}
