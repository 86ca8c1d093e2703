// App shell: loads the manifest, keeps the state in the URL, shows one view at a time.
import './style.css';
import type { BundleChangedError } from './data/errors';
import { DataProvider } from './data/provider';
import type { Manifest } from './data/types';
import { h, clear, status } from './dom';
import { applyPatch, parseState, stateToSearch, VIEWS, type AppState, type View } from './state';
import type { Ctx, UploadQuery, ViewModule } from './context';
import type { SideRunner } from './live/index';
import { ConfigBar, progressSentence, weightsSentence } from './views/config';
import { SearchView } from './views/search';
import { MapView } from './views/map';
import { CompareView } from './views/compare';
import { AboutView } from './views/about';
import { JudgementStore } from './data/judgestore';
import { repaintJudgements } from './views/judge';

const TAB_LABELS: Record<View, string> = { search: 'Search', side: 'Side by side', map: 'Map (UMAP)', compare: 'Compare', judge: 'Your judgements', explorer: 'Model Explorer', curate: 'Curate', about: 'About / FAQ' };

function manifestUrl(): string {
  return new URLSearchParams(location.search).get('data') ?? 'data/manifest.json';
}

/**
 * One short sentence, and the engine's raw detail (exception texts, URLs, seeds) behind a
 * "details" disclosure: useful to whoever built the bundle, noise to everyone else.
 */
export function weightsBanner(m: Manifest): HTMLElement | null {
  const sentence = weightsSentence(m);
  if (sentence === null) return null;
  return h('div', { class: 'banner', attrs: { role: 'note' } }, [
    h('span', { class: 'banner-text', text: sentence }),
    m.weights_detail
      ? h('details', { class: 'banner-details' }, [h('summary', { text: 'details' }), h('p', { text: m.weights_detail })])
      : '',
  ]);
}

/**
 * What the page shows once the bundle on the server turned out to have changed under it
 * (DataProvider.onBundleChanged): one message and a Reload button, in place of the views, whose
 * data can no longer be loaded or trusted.
 */
export function bundleChangedNotice(e: BundleChangedError): HTMLElement {
  return h('div', { class: 'banner banner-changed', attrs: { role: 'alert', 'data-bundle-changed': '' } }, [
    h('p', { class: 'banner-text', text: 'The data changed on the server since this page was loaded (the bundle was rebuilt), so this page can no longer show it. Reload to see the new data.' }),
    h('button', { class: 'reload-btn', text: 'Reload', attrs: { type: 'button', title: `Reload the page (${e.manifestUrl})` }, on: { click: () => location.reload() } }),
  ]);
}

/**
 * A bundle published while the run goes on: how many models are ready, which are coming, and
 * that a reload shows them (the engine swaps each new bundle in whole).
 */
export function progressBanner(m: Manifest): HTMLElement | null {
  const sentence = progressSentence(m);
  if (sentence === null) return null;
  return h('div', { class: 'banner banner-progress', attrs: { role: 'status' } }, [h('span', { class: 'banner-text', text: sentence })]);
}

/**
 * A view whose code loads on first display (its own chunk): the Model Explorer is not part of the
 * first screen's download.
 */
class LazyView implements ViewModule {
  readonly root = h('section', { class: 'view view-lazy' });
  private view: ViewModule | null = null;
  private loading = false;
  private ctx: Ctx | null = null;

  constructor(private readonly load: () => Promise<ViewModule>) {}

  update(ctx: Ctx): void {
    this.ctx = ctx;
    if (this.view) return this.view.update(ctx);
    if (this.loading) return;
    this.loading = true;
    this.root.append(status('Loading this view…'));
    this.load().then(
      (v) => {
        this.view = v;
        this.root.replaceWith(v.root);
        v.update(this.ctx!);
      },
      (e: unknown) => {
        this.loading = false;
        clear(this.root);
        this.root.append(status(`Could not load this view: ${e instanceof Error ? e.message : String(e)}`, 'error'));
      },
    );
  }
}

class App {
  private state!: AppState;
  private readonly views: Record<View, ViewModule>;
  private readonly search = new SearchView();
  private readonly config = new ConfigBar();
  private readonly tabs: Record<View, HTMLButtonElement>;
  private liveMounted = false;
  /** The bundle changed under the page: the views are gone, nothing renders any more. */
  private stale = false;
  private sideRunner: SideRunner | null = null;
  private judgements: JudgementStore | null = null;

  constructor(
    private readonly data: DataProvider,
    private readonly root: HTMLElement,
    judgements: Promise<JudgementStore>,
  ) {
    // IndexedDB opens beside the first screen, not before it: marks appear once it is open.
    void judgements.then((store) => {
      this.judgements = store;
      store.onChange(() => repaintJudgements(document, store));
      if (this.state) this.render();
    });
    this.views = {
      search: this.search,
      side: new LazyView(() => import('./views/sidebyside').then((x) => new x.SideBySideView())),
      judge: new LazyView(() => import('./views/judgeview').then((x) => new x.JudgeView())),
      map: new MapView(),
      compare: new CompareView(),
      explorer: new LazyView(() => import('./views/modelexplorer').then((x) => new x.ModelExplorerView())),
      curate: new LazyView(() => import('./views/curate').then((x) => new x.CurateView())),
      about: new AboutView(),
    };
    this.tabs = Object.fromEntries(VIEWS.map((v) => [v, this.tab(v)])) as Record<View, HTMLButtonElement>;
  }

  private tab(v: View): HTMLButtonElement {
    return h('button', { class: 'tab', text: TAB_LABELS[v], attrs: { type: 'button', role: 'tab', id: `tab-${v}`, 'aria-controls': `panel-${v}`, 'data-view': v }, on: { click: () => this.navigate({ view: v }) } });
  }

  start(): void {
    const m = this.data.manifest;
    this.state = parseState(new URLSearchParams(location.search), m);
    const tablist = h('nav', { class: 'tabs', attrs: { role: 'tablist', 'aria-label': 'Views' } }, VIEWS.map((v) => this.tabs[v]));
    tablist.addEventListener('keydown', (e) => this.tabKeys(e));
    const panels = VIEWS.map((v) => {
      const p = h('div', { class: 'panel', attrs: { role: 'tabpanel', id: `panel-${v}`, 'aria-labelledby': `tab-${v}` } }, [this.views[v].root]);
      return p;
    });
    clear(this.root);
    const main = h('main', { attrs: { id: 'main' } }, panels);
    const weights = weightsBanner(m);
    this.root.append(
      h('header', { class: 'top' }, [h('h1', {}, [h('a', { text: 'ConvNet Search', attrs: { href: '?' + (new URLSearchParams(location.search).get('data') ? `data=${encodeURIComponent(manifestUrl())}` : '') } })]), tablist]),
      progressBanner(m) ?? '',
      weights ?? '',
      this.config.root,
      main,
    );
    // A rebuilt bundle: every view's data (and the old manifest's notes) is gone or stale; one message replaces them all.
    this.data.onBundleChanged((e) => {
      this.stale = true;
      for (const el of [tablist, weights, this.config.root]) if (el) el.hidden = true;
      main.replaceChildren(bundleChangedNotice(e));
    });
    history.replaceState(null, '', stateToSearch(this.state, new URLSearchParams(location.search)));
    window.addEventListener('popstate', () => {
      this.state = parseState(new URLSearchParams(location.search), m);
      this.search.clearUpload();
      this.render();
    });
    this.render();
  }

  private tabKeys(e: KeyboardEvent): void {
    const i = VIEWS.indexOf(this.state.view);
    const d = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
    if (!d) return;
    e.preventDefault();
    const v = VIEWS[(i + d + VIEWS.length) % VIEWS.length]!;
    this.navigate({ view: v });
    this.tabs[v].focus();
  }

  navigate(patch: Partial<AppState>, opts: { replace?: boolean } = {}): void {
    const next = applyPatch(this.state, patch, this.data.manifest);
    // Side-by-side columns are another look at the same query (an uploaded one included).
    if (Object.keys(patch).some((k) => k !== 'view' && k !== 'gallery' && k !== 'cols')) this.search.clearUpload();
    const url = stateToSearch(next, new URLSearchParams(location.search));
    if (url !== location.search) {
      if (opts.replace) history.replaceState(null, '', url);
      else history.pushState(null, '', url);
    }
    this.state = next;
    this.render();
  }

  private ctx(): Ctx {
    return { data: this.data, manifest: this.data.manifest, state: this.state, judgements: this.judgements, upload: this.uploadQuery(), navigate: (p, o) => this.navigate(p, o) };
  }

  private uploadQuery(): UploadQuery | null {
    const up = this.search.uploaded;
    const bs = this.data.manifest.browser_search;
    return up && bs && this.sideRunner ? { imageUrl: up.imageUrl, model: bs.model, run: this.sideRunner } : null;
  }

  private render(): void {
    if (this.stale) return;
    const ctx = this.ctx();
    this.config.update(ctx);
    for (const v of VIEWS) {
      const on = v === this.state.view;
      this.tabs[v].setAttribute('aria-selected', String(on));
      this.tabs[v].tabIndex = on ? 0 : -1;
      document.getElementById(`panel-${v}`)!.hidden = !on;
    }
    document.body.dataset.view = this.state.view;
    this.views[this.state.view].update(ctx);
    if (this.state.view === 'search') this.mountLive();
  }

  /** The private search (TF.js) is loaded only when the bundle offers it and the search view is shown. */
  private mountLive(): void {
    const bs = this.data.manifest.browser_search;
    if (this.liveMounted) return;
    this.liveMounted = true;
    if (!bs) {
      this.search.liveEl.append(h('p', { class: 'hint', text: 'This bundle has no in-browser search model.' }));
      return;
    }
    // The page's CSP (a <meta> tag) does not reach the search worker: a model on another origin
    // is refused here, before the worker or TF.js is even loaded (and again in the worker).
    try {
      this.data.resolve(bs.model_url);
    } catch (e) {
      this.search.liveEl.append(status(`In-browser search is off: browser_search.model_url in ${e instanceof Error ? e.message : String(e)}`, 'error'));
      this.search.why.setFailed('the in-browser model is off (its URL is refused)');
      return;
    }
    import('./live/index').then(
      ({ mountLiveSearch }) =>
        mountLiveSearch(this.search.liveEl, {
          manifest: this.data.manifest,
          resolve: (p) => this.data.resolve(p),
          getDataset: () => this.state.dataset,
          getMetric: () => this.state.metric,
          getPooling: () => this.state.pooling,
          showUploadResults: (r) => {
            if (this.state.view !== 'search') this.navigate({ view: 'search' });
            this.search.showUpload(r);
          },
          provideWhy: (run) => this.search.why.setRunner(run),
          provideSide: (run) => (this.sideRunner = run),
        }),
      (e: unknown) => {
        this.search.liveEl.append(status(`Could not load the in-browser search: ${String(e)}`, 'error'));
        this.search.why.setFailed(`the in-browser search could not be loaded (${String(e)})`);
      },
    );
  }
}

async function boot(): Promise<void> {
  const root = document.getElementById('app')!;
  try {
    const judgements = JudgementStore.open();
    const data = await DataProvider.open(manifestUrl());
    new App(data, root, judgements).start();
  } catch (e) {
    clear(root);
    root.append(
      h('h1', { text: 'ConvNet Search' }),
      status(`Could not open the data bundle: ${e instanceof Error ? e.message : String(e)}`, 'error'),
      h('p', { text: 'Run “make precompute” to build it into frontend/public/data, or pass ?data=<url of manifest.json>.' }),
    );
  }
}

void boot();
