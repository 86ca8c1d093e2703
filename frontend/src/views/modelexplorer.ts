// Model Explorer: what the channels of one layer respond to. The channel grid in selectivity order,
// each cell with its feature visualization (a tile of featviz/{model}/{layer}.jpg) and its top
// images. A layer switch fetches atlas/index.json and atlas/rows/0.bin only (the first screen's
// channels, ≈ 2 KB); "Show more" fetches the next rows file; a click opens the channel's top images
// with their activation maps (atlas/maps/{block}.bin, fetched only then); a click on an image makes
// it the search query. Images come one by one from the thumbnail packs (views/thumb.ts thumbImg),
// as search results do: a channel's top images are scattered over the dataset; the grid's only
// once near the viewport. Model and layer are the app's state (the configuration bar), shared with
// every view.
import './modelexplorer.css';
import { h, clear, status } from '../dom';
import type { Ctx, ViewModule } from '../context';
import { Latest } from '../context';
import { blockChannels, channelMap, pageRanks, rowIds, type AtlasIndex, type AtlasRows } from '../data/atlas';
import { withName } from '../data/names';
import type { DatasetIndex, LayerInfo, ModelInfo } from '../data/types';
import { heatCanvas, heatFigure, heatLegend, overlayToggle, placeOverContent, thumbContent } from './heatmap';
import { lazyThumbImg, thumbImg } from './thumb';

const CELL_THUMBS = 3;

/** What the grid is drawing: one layer's atlas and the rows files loaded so far. */
interface Shown {
  model: ModelInfo;
  layer: LayerInfo;
  idx: AtlasIndex;
  dsIndex: DatasetIndex;
  vizUrl: string | null;
  pages: AtlasRows[];
}

/** Where tile i of a featviz grid is, as CSS background size/position (the JPEG is a row-major grid). */
export function featvizTileStyle(i: number, tiles: number): { size: string; position: string } {
  const cols = Math.min(4, tiles);
  const rows = Math.ceil(tiles / cols);
  const col = i % cols;
  const row = Math.floor(i / cols);
  const pct = (k: number, n: number) => (n > 1 ? Number(((k / (n - 1)) * 100).toFixed(4)) : 0);
  return { size: `${cols * 100}% ${rows * 100}%`, position: `${pct(col, cols)}% ${pct(row, rows)}%` };
}

function vizTile(url: string, i: number, tiles: number, cls: string): HTMLElement {
  const el = h('span', { class: cls, attrs: { role: 'img', 'aria-label': 'feature visualization' } });
  const s = featvizTileStyle(i, tiles);
  el.style.backgroundImage = `url("${url}")`;
  el.style.backgroundSize = s.size;
  el.style.backgroundPosition = s.position;
  return el;
}

const fmt = (x: number) => (Math.abs(x) >= 100 || x === 0 ? x.toFixed(0) : x.toPrecision(3));

export class ModelExplorerView implements ViewModule {
  readonly root: HTMLElement;
  private readonly head = h('div', { class: 'mx-head' });
  private readonly detail = h('section', { class: 'mx-detail', attrs: { 'aria-live': 'polite', 'aria-label': 'Selected channel' } });
  private readonly grid = h('div', { class: 'mx-grid-wrap' });
  private readonly latestGrid = new Latest();
  private readonly latestDetail = new Latest();
  private key = '';
  private channel: number | null = null;

  constructor() {
    this.root = h('section', { class: 'view view-explorer', attrs: { 'aria-label': 'Model Explorer' } }, [this.head, this.detail, this.grid]);
  }

  update(ctx: Ctx): void {
    const { state } = ctx;
    const key = `${state.dataset}|${state.model}|${state.layer}`;
    if (key === this.key) return;
    this.key = key;
    this.channel = null;
    this.latestDetail.next();
    void this.render(ctx);
  }

  private async render(ctx: Ctx): Promise<void> {
    const fresh = this.latestGrid.next();
    const { data, manifest: m, state } = ctx;
    const model = m.models.find((x) => x.id === state.model)!;
    const layer = model.layers.find((l) => l.name === state.layer)!;
    const ds = data.dataset(state.dataset);
    clear(this.head);
    clear(this.detail);
    clear(this.grid);
    this.root.dataset.state = 'loading';
    const pos = model.layers.indexOf(layer);
    this.head.append(
      h('h2', { text: `${model.name} · layer ${pos + 1} of ${model.layers.length}: ${layer.name}` }),
      h('p', { class: 'hint', text: `Output ${layer.output_shape.join('×')} (${Math.round(layer.depth * 100)}% deep). Channels sorted by selectivity: how much their average activation varies over the ${ds.size} images of “${ds.name}”. Each cell: what the channel responds to most (a synthesized picture, if the bundle has one) and the dataset images that excite it most. Click a channel to see where in those images it fires.` }),
      this.weightsNotice(model) ?? '',
    );
    const vizUrl = layer.featviz ? data.optionalPath('featviz', { model: model.id, layer: layer.name }) : null;
    if (!data.hasAtlas(state.dataset, model.id)) {
      this.root.dataset.state = 'no-atlas';
      const older = m.files.atlas_top !== undefined && (ds.atlas ?? []).includes(model.id);
      this.grid.append(status(older
        ? `This bundle’s channel atlas for ${model.name} is in an older layout this explorer does not read: rebuild the bundle to see top images and activation maps.`
        : `This bundle has no channel atlas for ${model.name} on “${ds.name}”, so there are no top images or activation maps to show.`, 'empty'));
      if (vizUrl && layer.featviz) this.grid.append(this.vizOnly(vizUrl, layer));
      return;
    }
    this.grid.append(status('Loading the channel atlas…'));
    try {
      const [idx, dsIndex] = await Promise.all([data.atlasIndex(state.dataset, model.id, layer.name), data.index(state.dataset)]);
      const first = await data.atlasRows(state.dataset, model.id, layer.name, idx, 0);
      if (!fresh()) return;
      this.root.dataset.state = 'ready';
      this.root.dataset.channels = String(idx.channels);
      const shown: Shown = { model, layer, idx, dsIndex, vizUrl, pages: [first] };
      clear(this.grid);
      const cells = h('div', { class: 'mx-grid' });
      const heading = h('h3');
      this.grid.append(heading, cells);
      this.appendPage(ctx, shown, first, cells, heading);
    } catch (e) {
      if (!fresh()) return;
      this.root.dataset.state = 'failed';
      clear(this.grid);
      this.grid.append(status(`Could not load the channel atlas: ${e instanceof Error ? e.message : String(e)}`, 'error'));
    }
  }

  private weightsNotice(model: ModelInfo): HTMLElement | null {
    if (model.weights !== 'random') return null;
    return h('p', { class: 'notice mx-random', attrs: { role: 'note' }, text: `${model.name} has random (untrained) weights here: the pictures below are noise from untrained weights. Its channels respond to colours and textures by chance, not to anything learned; use a bundle with ImageNet weights to see real features.` });
  }

  private vizOnly(url: string, layer: LayerInfo): HTMLElement {
    const fv = layer.featviz!;
    return h('div', { class: 'mx-grid' }, fv.channels.map((c, i) => h('div', { class: 'mx-cell mx-cell-static' }, [vizTile(url, i, fv.channels.length, 'mx-viz'), h('span', { class: 'mx-label', text: `channel ${c}` })])));
  }

  /** The cells of one rows file, then a "Show more" button that fetches the next one. */
  private appendPage(ctx: Ctx, s: Shown, rows: AtlasRows, cells: HTMLElement, heading: HTMLElement): void {
    const { data, state } = ctx;
    const { idx, layer, vizUrl } = s;
    const tileOf = new Map((layer.featviz?.channels ?? []).map((c, i) => [c, i]));
    const tiles = layer.featviz?.channels.length ?? 0;
    const cell = (rank: number) => {
      const i = rank - rows.first;
      const c = rows.channel[i]!;
      const t = tileOf.get(c);
      const ids = rowIds(rows, rank);
      const thumbs = Array.from({ length: Math.min(CELL_THUMBS, idx.top) }, (_, r) => lazyThumbImg(data, state.dataset, ids[r]!, '', 'mx-thumb'));
      return h('button', { class: 'mx-cell', attrs: { type: 'button', 'data-channel': c, 'data-rank': rank, 'aria-pressed': String(this.channel === c), title: `Channel ${c}: selectivity rank ${rank + 1}, variance ${fmt(rows.selectivity[i]!)}` }, on: { click: () => void this.open(ctx, s, rows, rank) } }, [
        // Only the 16 most selective channels have a visualization; the others say so.
        vizUrl && t !== undefined ? vizTile(vizUrl, t, tiles, 'mx-viz') : vizUrl ? h('span', { class: 'mx-viz mx-viz-none', text: 'not visualized' }) : '',
        h('span', { class: 'mx-thumbs' }, thumbs),
        h('span', { class: 'mx-label', text: `#${rank + 1} · ch ${c}` }),
      ]);
    };
    cells.append(...Array.from({ length: rows.count }, (_, i) => cell(rows.first + i)));
    const shown = rows.first + rows.count;
    heading.textContent = `${idx.channels} channels, most selective first (showing ${shown})`;
    this.grid.querySelector('.mx-more')?.remove();
    if (shown >= idx.channels) return;
    const next = pageRanks(idx, s.pages.length);
    const more: HTMLButtonElement = h('button', { class: 'more-btn mx-more', text: `Show ${next} more (${idx.channels - shown} left)`, attrs: { type: 'button' }, on: { click: () => void this.more(ctx, s, cells, heading, more) } });
    this.grid.append(more);
  }

  private async more(ctx: Ctx, s: Shown, cells: HTMLElement, heading: HTMLElement, button: HTMLButtonElement): Promise<void> {
    const key = this.key;
    const { data, state } = ctx;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      const rows = await data.atlasRows(state.dataset, s.model.id, s.layer.name, s.idx, s.pages.length);
      if (key !== this.key) return;
      s.pages.push(rows);
      this.appendPage(ctx, s, rows, cells, heading);
    } catch (e) {
      if (key !== this.key) return;
      button.replaceWith(status(`Could not load more channels: ${e instanceof Error ? e.message : String(e)}`, 'error'));
    }
  }

  private async open(ctx: Ctx, s: Shown, rows: AtlasRows, rank: number): Promise<void> {
    const fresh = this.latestDetail.next();
    const { data, state } = ctx;
    const { model, layer, idx, dsIndex, vizUrl } = s;
    const c = rows.channel[rank - rows.first]!;
    this.channel = c;
    for (const b of this.grid.querySelectorAll<HTMLElement>('.mx-cell')) b.setAttribute('aria-pressed', String(Number(b.dataset.channel) === c));
    const ds = data.dataset(state.dataset);
    clear(this.detail);
    this.detail.dataset.channel = String(c);
    this.detail.dataset.rank = String(rank);
    this.detail.dataset.state = 'loading';
    const t = layer.featviz?.channels.indexOf(c) ?? -1;
    this.detail.append(
      h('div', { class: 'mx-detail-head' }, [
        vizUrl && t >= 0 ? vizTile(vizUrl, t, layer.featviz!.channels.length, 'mx-viz mx-viz-big') : '',
        h('div', {}, [
          h('h3', { text: `Channel ${c} of ${layer.name}` }),
          h('p', { class: 'hint', text: `Selectivity rank ${rank + 1} of ${idx.channels} (variance ${fmt(rows.selectivity[rank - rows.first]!)}). Its ${idx.top} strongest images in “${ds.name}”, with where the channel fires in each (${idx.map_size.join('×')} map, bilinearly upsampled). Click an image to search with it.` }),
          vizUrl && t >= 0 ? h('p', { class: 'hint', text: 'Left: a synthesized picture that excites this channel as much as possible.' }) : '',
        ]),
      ]),
      status('Loading the activation maps…'),
    );
    this.detail.scrollIntoView({ block: 'nearest' });
    try {
      const b = Math.floor(rank / idx.block);
      if (blockChannels(idx, b) === 0) throw new Error(`rank ${rank} is past the atlas`);
      const block = await data.atlasMaps(state.dataset, model.id, layer.name, idx, b);
      if (!fresh()) return;
      this.detail.querySelector('.status')?.remove();
      const [mh, mw] = idx.map_size;
      const ids = rowIds(rows, rank);
      const figs = Array.from({ length: idx.top }, (_, r) => {
        const id = ids[r]!;
        const j = (rank - block.first) * idx.top + r;
        const scale = block.scales[j]!;
        const value = block.values[j]!;
        const map = channelMap(block, rank, r);
        const cls = ds.classes[dsIndex.labels[id] ?? -1] ?? '?';
        // Each map on its own scale (0 … its maximum): where the channel fires within this image.
        const canvas = heatCanvas(map, mh, mw, { lo: 0, hi: scale > 0 ? scale : 1, alpha: 0.55 });
        const img = thumbImg(data, state.dataset, id, '', 'heat-img');
        // The map covers the picture, not the thumbnail cell's letterbox around it.
        void data.thumbnailImage(state.dataset, id).then(async (src) => {
          const probe = new Image();
          probe.src = src;
          placeOverContent(canvas, await thumbContent(probe, ctx.manifest.thumbnails.background), probe.naturalWidth, probe.naturalHeight);
        }).catch(() => undefined); // no picture: thumbImg marks it failed; the map stays full-size
        const fig = heatFigure(img, '', canvas, [h('strong', { text: `${r + 1}.` }), ` ${cls} · mean ${fmt(value)}, peak ${fmt(scale)}`], () => ctx.navigate({ view: 'search', q: id }));
        // The file name comes with its names page: a placeholder until then.
        withName(dsIndex.names, id, (name) => {
          img.alt = `${name} (${cls})`;
          fig.querySelector('.heat-btn')?.setAttribute('title', `${name} (${cls}): click to search with it`);
        });
        return fig;
      });
      const grid = h('div', { class: 'mx-top' }, figs);
      this.detail.append(grid, heatLegend('0', 'peak', `activation of channel ${c} (each image on its own scale):`), overlayToggle(grid));
      this.detail.dataset.state = 'ready';
    } catch (e) {
      if (!fresh()) return;
      this.detail.dataset.state = 'failed';
      this.detail.querySelector('.status')?.remove();
      this.detail.append(status(`Could not load the activation maps: ${e instanceof Error ? e.message : String(e)}`, 'error'));
    }
  }
}
