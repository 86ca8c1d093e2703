// "Why similar?" for one search result: similarity maps over the result and over the query
// (live/similarity.ts: each region's feature vector against the other image's average-pooled
// vector), computed in the search worker with the bundle's TF.js model. Other models and layers
// are not exported to the browser and have no precomputed maps: the dialog says so.
import { h, clear, status } from '../dom';
import type { Manifest } from '../data/types';
import type { WhyImage, WhyReply, WhyRequest } from '../live/protocol';
import { heatCanvas, heatFigure, heatLegend, overlayToggle, placeOverContent, thumbContent, type Box } from './heatmap';

export type WhyRunner = (req: Omit<WhyRequest, 'type' | 'id'>) => Promise<WhyReply>;

/** The browser model's spatial output for (model, layer), or why there is none. */
export function whyAvailability(m: Manifest, model: string, layer: string): { output: string } | { reason: string } {
  const bs = m.browser_search;
  const name = (id: string) => m.models.find((x) => x.id === id)?.name ?? id;
  if (!bs) return { reason: `“Why similar?” is computed live by the in-browser model, and this bundle has none (no precomputed maps either).` };
  if (bs.model !== model) {
    return { reason: `“Why similar?” is computed live by the in-browser model, ${name(bs.model)}; ${name(model)} is not exported to the browser and its similarity maps are not precomputed. Choose ${name(bs.model)} as the model to see them.` };
  }
  const out = (bs.spatial_outputs ?? []).find((o) => o.layer === layer);
  if (!bs.spatial_outputs?.length) return { reason: 'This bundle’s in-browser model was exported without its spatial maps (an older bundle): rebuild it to see similarity maps.' };
  if (!out) return { reason: `Layer ${layer} is not an output of the in-browser model; similarity maps exist for ${bs.spatial_outputs.map((o) => o.layer).join(', ')}.` };
  return { output: out.output };
}

/** A shown image: the <img> element on the page (its pixels are reused: nothing is fetched). */
export interface WhySide {
  label: string;
  /** Its URL (or the promise of one, e.g. DataProvider.thumbnailImage), used when img is null. */
  src: string | Promise<string>;
  /** The picture on the page, only if it is loaded (views/thumb.ts shownThumb). */
  img: HTMLImageElement | null;
  /** The uploaded image: its pixels are in the search worker. */
  upload?: boolean;
  /** Clicking the picture (result only): search with it. */
  onPick?: () => void;
}

/** A side's pixels for the model: a thumbnail without its cell's letterbox (the search saw the picture alone). */
async function bitmapOf(side: WhySide, background: string): Promise<{ image: WhyImage; box?: Box; cell?: [number, number] }> {
  if (side.upload) return { image: { kind: 'upload' } };
  let img = side.img;
  if (!img) {
    img = new Image();
    img.src = await side.src;
  }
  if (!img.complete || img.naturalWidth === 0) await img.decode();
  const box = await thumbContent(img, background);
  // Pixels as stored (no colour management), like the engine's decode.
  const bitmap = await createImageBitmap(img, box.x, box.y, box.w, box.h, { premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
  return { image: { kind: 'bitmap', bitmap }, box, cell: [img.naturalWidth, img.naturalHeight] };
}

const range = (a: Float32Array) => `${Math.min(...a).toFixed(2)}…${Math.max(...a).toFixed(2)}`;

/** One colour scale for both maps: their joint min … max (cosines of ReLU features often all lie
 * in 0.6…1, where a fixed 0…1 scale would paint everything the same colour). */
export function jointRange(a: ArrayLike<number>, b: ArrayLike<number>): { lo: number; hi: number } {
  let lo = Infinity;
  let hi = -Infinity;
  for (const m of [a, b]) for (let i = 0; i < m.length; i++) {
    lo = Math.min(lo, m[i]!);
    hi = Math.max(hi, m[i]!);
  }
  if (!(hi > lo)) return { lo: Number.isFinite(lo) ? lo - 0.5 : 0, hi: Number.isFinite(hi) ? hi + 0.5 : 1 };
  return { lo, hi };
}

/** A side as shown: its URL, and where its picture is inside its thumbnail cell. */
type Shown = WhySide & { src: string; box?: Box; cell?: [number, number] };

export class WhyDialog {
  readonly root: HTMLDialogElement;
  private readonly body = h('div', { class: 'why-body' });
  private readonly title = h('h2', { attrs: { id: 'why-title' } });
  private runner: WhyRunner | null = null;
  private failure: string | null = null;
  private waiting: { resolve: (r: WhyRunner) => void; reject: (e: Error) => void }[] = [];
  private token = 0;

  constructor() {
    // autofocus: the modal's first focus goes to Close, not to the result picture.
    const close = h('button', { class: 'why-close', text: 'Close', attrs: { type: 'button', autofocus: true }, on: { click: () => this.root.close() } });
    this.root = h('dialog', { class: 'why', attrs: { 'aria-labelledby': 'why-title' } }, [h('div', { class: 'why-head' }, [this.title, close]), this.body]);
  }

  /** Called once the in-browser search is mounted (it owns the worker and the model). */
  setRunner(run: WhyRunner): void {
    this.runner = run;
    for (const w of this.waiting.splice(0)) w.resolve(run);
  }

  /** The in-browser search could not be mounted: say why instead of waiting for it. */
  setFailed(reason: string): void {
    this.failure = reason;
    for (const w of this.waiting.splice(0)) w.reject(new Error(reason));
  }

  private runnerReady(): Promise<WhyRunner> {
    if (this.runner) return Promise.resolve(this.runner);
    if (this.failure !== null) return Promise.reject(new Error(this.failure));
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  open(m: Manifest, model: string, layer: string, query: WhySide, result: WhySide): void {
    const token = ++this.token;
    this.title.textContent = `Why is ${result.label} similar to ${query.upload ? 'your image' : `the query ${query.label}`}?`;
    clear(this.body);
    if (!this.root.open) this.root.showModal();
    const avail = whyAvailability(m, model, layer);
    if ('reason' in avail) {
      this.root.dataset.state = 'unavailable';
      this.body.append(h('p', { class: 'why-unavailable', text: avail.reason }));
      return;
    }
    const bs = m.browser_search!;
    const modelName = m.models.find((x) => x.id === bs.model)?.name ?? bs.model;
    this.root.dataset.state = 'computing';
    this.body.append(status(`Computing the similarity maps in your browser (${modelName}, layer ${layer})…`));
    void (async () => {
      try {
        const bg = m.thumbnails.background;
        const [q, r, qSrc, rSrc] = await Promise.all([bitmapOf(query, bg), bitmapOf(result, bg), query.img?.src ?? query.src, result.img?.src ?? result.src]);
        const run = await this.runnerReady();
        const reply = await run({ layer, output: avail.output, query: q.image, result: r.image });
        if (token !== this.token) return;
        this.show(m, layer, modelName, { ...query, src: qSrc, ...q }, { ...result, src: rSrc, ...r }, reply);
      } catch (e) {
        if (token !== this.token) return;
        this.root.dataset.state = 'failed';
        clear(this.body);
        this.body.append(status(`Could not compute the similarity maps: ${e instanceof Error ? e.message : String(e)}`, 'error'));
      }
    })();
  }

  private show(m: Manifest, layer: string, modelName: string, query: Shown, result: Shown, r: WhyReply): void {
    clear(this.body);
    const opts = { ...jointRange(r.query, r.result), alpha: 0.55, size: 200 };
    const px = ([w, hh]: [number, number]) => `${w}×${hh}`;
    // Each map over the picture it was computed from (a thumbnail's letterbox left uncovered).
    const overlay = (map: Float32Array, side: Shown) => {
      const c = heatCanvas(map, r.h, r.w, opts);
      if (side.box && side.cell) placeOverContent(c, side.box, side.cell[0], side.cell[1]);
      return c;
    };
    const figs = h('div', { class: 'why-figs' }, [
      heatFigure(result.src, result.label, overlay(r.result, result), [h('strong', { text: 'Result' }), ` ${result.label}: where it looks like the query (${range(r.result)})`], result.onPick),
      heatFigure(query.src, query.label, overlay(r.query, query), [h('strong', { text: 'Query' }), ` ${query.label}: where it looks like the result (${range(r.query)})`]),
    ]);
    const from = query.upload
      ? `Your image is mapped from its downscaled pixels (${px(r.querySize)}), inside this page: it is not sent anywhere. The result is mapped from its thumbnail (${px(r.resultSize)}).`
      : `Both maps are computed from the thumbnails (${px(r.resultSize)} and ${px(r.querySize)} px), not the full images the search used, so they can differ a little from what the search saw.`;
    this.body.append(
      figs,
      heatLegend(opts.lo.toFixed(2), opts.hi.toFixed(2), 'cosine similarity (both images on one scale):'),
      overlayToggle(figs),
      h('p', { class: 'hint', text: `Each ${r.h}×${r.w} cell of layer ${layer} is a region of the image; its colour is the cosine between that region’s feature vector and the other image’s average-pooled vector. Bright regions are what makes the two images close at this layer.` }),
      h('p', { class: 'hint', text: `Computed in your browser with ${modelName} (TF.js) in ${Math.round(r.ms)} ms. ${from}` }),
      m.models.find((x) => x.id === m.browser_search?.model)?.weights === 'random'
        ? h('p', { class: 'notice', text: 'This model has random (untrained) weights: the maps follow colour and texture, not meaning.' })
        : '',
    );
    this.root.dataset.state = 'ready';
  }
}
