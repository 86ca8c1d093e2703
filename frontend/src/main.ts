// App shell: loads the manifest, keeps the state in the URL, shows one view at a time.
import './style.css';
import { DataProvider } from './data/provider';
import type { Manifest } from './data/types';
import { h, clear, status } from './dom';
import { applyPatch, parseState, stateToSearch, VIEWS, type AppState, type View } from './state';
import type { Ctx, ViewModule } from './context';
import { ConfigBar, weightsSentence } from './views/config';
import { SearchView } from './views/search';
import { MapView } from './views/map';
import { CompareView } from './views/compare';
import { AboutView } from './views/about';

const TAB_LABELS: Record<View, string> = { search: 'Search', map: 'Map (UMAP)', compare: 'Compare', explorer: 'Model Explorer', curate: 'Curate', about: 'About / FAQ' };

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

  constructor(
    private readonly data: DataProvider,
    private readonly root: HTMLElement,
  ) {
    this.views = {
      search: this.search,
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
    this.root.append(
      h('header', { class: 'top' }, [h('h1', {}, [h('a', { text: 'ConvNet Search', attrs: { href: '?' + (new URLSearchParams(location.search).get('data') ? `data=${encodeURIComponent(manifestUrl())}` : '') } })]), tablist]),
      weightsBanner(m) ?? '',
      this.config.root,
      h('main', { attrs: { id: 'main' } }, panels),
    );
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
    if (Object.keys(patch).some((k) => k !== 'view' && k !== 'gallery')) this.search.clearUpload();
    const url = stateToSearch(next, new URLSearchParams(location.search));
    if (url !== location.search) {
      if (opts.replace) history.replaceState(null, '', url);
      else history.pushState(null, '', url);
    }
    this.state = next;
    this.render();
  }

  private ctx(): Ctx {
    return { data: this.data, manifest: this.data.manifest, state: this.state, navigate: (p, o) => this.navigate(p, o) };
  }

  private render(): void {
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
    const data = await DataProvider.open(manifestUrl());
    new App(data, root).start();
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
