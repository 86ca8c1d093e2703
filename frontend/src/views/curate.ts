// Curate view (own lazy chunk): near-duplicate groups, outliers and likely label mistakes of the
// configuration in the bar, from the bundle's curation lists (docs/bundle.md "Curation"). Reports
// only: which copy to keep is left to the user, and nothing is deleted. Each list is virtualized
// (fixed-height rows, only those in view in the DOM, thumbnails fetched one by one when shown),
// so a view switch costs two small JSON files whatever N is.
import { h, clear, status } from '../dom';
import type { Ctx, ViewModule } from '../context';
import { Latest } from '../context';
import type { CurateConfig, CurateLabels } from '../data/curate';
import type { Labels } from '../data/types';
import { thumbImg } from './thumb';
import './curate.css';

export type CurateTab = 'duplicates' | 'outliers' | 'labels';
const TABS: [CurateTab, string][] = [['duplicates', 'Near duplicates'], ['outliers', 'Outliers'], ['labels', 'Likely label mistakes']];
export const ROW_H = 112;
const OVERSCAN = 3;
const GROUP_SHOWN = 8;

/** The pooling that also groups mirrored (flipped) copies: grid3's cells with each left one averaged
 * with its mirror (docs/models.md; bench/README.md "curate": grid3 found 0.40 of caltech10's flipped
 * copies, it all of them). */
export const MIRROR_POOLING = 'mgrid3';

/** What the duplicates list suggests about the pooling: switch to the mirror grid when the bundle
 * has it, say how to get it when not, nothing when it is the one shown (pure, unit-tested). */
export function mirrorHint(poolings: readonly string[], current: string): 'switch' | 'precompute' | null {
  if (current === MIRROR_POOLING) return null;
  return poolings.includes(MIRROR_POOLING) ? 'switch' : 'precompute';
}

/** Rows [first, last) to render for a box scrolled to `top` of height `height` (pure, unit-tested). */
export function visibleRows(count: number, rowH: number, top: number, height: number, overscan = OVERSCAN): [number, number] {
  const first = Math.min(count, Math.max(0, Math.floor(top / rowH) - overscan));
  const last = Math.min(count, Math.ceil((top + height) / rowH) + overscan);
  return [first, Math.max(first, last)];
}

/** A scroll box of `count` fixed-height rows; only those in view (plus a margin) exist in the DOM. */
export class VirtualList {
  readonly root = h('div', { class: 'cur-scroll', attrs: { tabindex: -1 } });
  private readonly space = h('div', { class: 'cur-space' });
  private count = 0;
  private row: (i: number) => HTMLElement = () => h('div');
  private readonly shown = new Map<number, HTMLElement>();
  private frame = 0;

  constructor() {
    this.root.append(this.space);
    this.root.addEventListener('scroll', () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(this.root);
  }

  show(count: number, row: (i: number) => HTMLElement): void {
    this.count = count;
    this.row = row;
    for (const el of this.shown.values()) el.remove();
    this.shown.clear();
    this.space.style.height = `${count * ROW_H}px`;
    this.root.scrollTop = 0;
    this.draw();
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  private draw(): void {
    const [first, last] = visibleRows(this.count, ROW_H, this.root.scrollTop, this.root.clientHeight || 600);
    for (const [i, el] of this.shown) {
      if (i < first || i >= last) {
        el.remove();
        this.shown.delete(i);
      }
    }
    for (let i = first; i < last; i++) {
      if (this.shown.has(i)) continue;
      const el = this.row(i);
      el.classList.add('cur-row');
      el.style.top = `${i * ROW_H}px`;
      el.style.height = `${ROW_H - 6}px`;
      this.shown.set(i, el);
      this.space.append(el);
    }
  }
}

function fmt(x: number): string {
  return x === 0 ? '0' : Math.abs(x) < 1e-3 || Math.abs(x) >= 1e4 ? x.toExponential(2) : x.toPrecision(3);
}

export class CurateView implements ViewModule {
  readonly root = h('section', { class: 'view view-curate', attrs: { 'aria-label': 'Curate' } });
  private readonly tabsEl = h('div', { class: 'cur-tabs', attrs: { role: 'group', 'aria-label': 'Curation lists' } });
  private readonly info = h('p', { class: 'hint cur-info' });
  private readonly fieldPick = h('select', { class: 'cur-field', attrs: { 'aria-label': 'Label field' } });
  private readonly list = new VirtualList();
  private readonly latest = new Latest();
  private tab: CurateTab = 'duplicates';
  private field = 'class';
  private labels: Labels | null = null;
  private ctx: Ctx | null = null;

  constructor() {
    this.root.append(
      h('h2', { text: 'Curate this collection' }),
      h('p', { class: 'hint', text: 'From the neighbours of the configuration above: images that are near copies of each other, images unlike any other, and images that are likely mislabelled. Nothing is changed: decide what to keep, then click an image to search with it.' }),
      this.tabsEl, this.info, this.list.root,
    );
    this.fieldPick.addEventListener('change', () => {
      this.field = this.fieldPick.value;
      if (this.ctx) this.update(this.ctx);
    });
  }

  update(ctx: Ctx): void {
    this.ctx = ctx;
    this.drawTabs();
    const s = ctx.state;
    const ok = this.latest.next();
    if (!ctx.manifest.files.curate || !ctx.manifest.files.curate_labels) {
      this.info.replaceChildren(status('This bundle has no curation lists: precompute it again with a version that has the curate stage.'));
      this.list.show(0, () => h('div'));
      return;
    }
    this.info.replaceChildren(status('Loading…'));
    this.root.dataset.state = 'loading';
    this.root.dataset.tab = this.tab;
    const want = this.tab === 'labels'
      ? ctx.data.curateLabels(s.dataset).then((lab) => () => this.showLabels(ctx, lab))
      : ctx.data.curate(s.dataset, s.model, s.layer, s.pooling, s.metric).then((cfg) => () => (this.tab === 'duplicates' ? this.showDuplicates(ctx, cfg) : this.showOutliers(ctx, cfg)));
    Promise.all([want, ctx.data.index(s.dataset)]).then(
      ([draw, idx]) => {
        if (!ok()) return;
        this.labels = idx.labels;
        draw();
        this.root.dataset.state = 'ready';
      },
      (e: unknown) => {
        if (!ok()) return;
        this.info.replaceChildren(status(e instanceof Error ? e.message : String(e), 'error'));
        this.root.dataset.state = 'error';
      },
    );
  }

  private drawTabs(): void {
    clear(this.tabsEl);
    for (const [id, label] of TABS) {
      this.tabsEl.append(h('button', {
        class: 'cur-tab', text: label,
        attrs: { type: 'button', 'aria-pressed': String(id === this.tab), 'data-tab': id },
        on: { click: () => { this.tab = id; if (this.ctx) this.update(this.ctx); } },
      }));
    }
  }

  private thumb(ctx: Ctx, id: number, label: string): HTMLElement {
    const b = h('button', {
      class: 'cur-thumb', attrs: { type: 'button', title: `Search with image ${id}`, 'data-id': id },
      on: { click: () => ctx.navigate({ view: 'search', q: id }) },
    }, [thumbImg(ctx.data, ctx.state.dataset, id, label, 'thumb cur-img')]);
    return b;
  }

  private className(ctx: Ctx, id: number): string {
    return ctx.data.dataset(ctx.state.dataset).classes[this.labels?.[id] ?? -1] ?? '';
  }

  private showDuplicates(ctx: Ctx, c: CurateConfig): void {
    const capped = c.groups_total > c.groups.length ? ` (the ${c.groups.length} most certain shown; convnet-search curate lists all)` : '';
    this.info.replaceChildren(`${c.groups_total} group${c.groups_total === 1 ? '' : 's'} of near duplicates${capped}: pairs of images that are each other's nearest neighbour and at most ${fmt(c.threshold)} × as far apart as the next neighbour, a ratio measured on this configuration's own neighbour distances. Keep which? Your choice: nothing is deleted. `, this.mirrorNote(ctx));
    this.list.show(c.groups.length, (g) => {
      const m = c.groups[g]!;
      const size = c.group_size[g]!;
      const more = size > Math.min(m.length, GROUP_SHOWN) ? h('span', { class: 'cur-more', text: `+${size - Math.min(m.length, GROUP_SHOWN)}` }) : '';
      return h('div', { class: 'cur-item', attrs: { 'data-group': g } }, [
        h('div', { class: 'cur-meta' }, [h('strong', { text: `${size} images` }), h('span', { text: c.group_min[g] === c.group_max[g] ? `distance ${fmt(c.group_min[g]!)}` : `distance ${fmt(c.group_min[g]!)}–${fmt(c.group_max[g]!)}` })]),
        h('div', { class: 'cur-thumbs' }, [...m.slice(0, GROUP_SHOWN).map((id) => this.thumb(ctx, id, `image ${id} ${this.className(ctx, id)}`)), more]),
      ]);
    });
  }

  /** A pooling other than the mirror grid misses flipped copies: offer it, or say how to get it. */
  private mirrorNote(ctx: Ctx): HTMLElement | string {
    const hint = mirrorHint(ctx.manifest.poolings.map((p) => p.id), ctx.state.pooling);
    if (hint === 'switch') {
      return h('button', {
        class: 'cur-mirror', text: 'Use the mirror grid pooling: it groups flipped copies too',
        attrs: { type: 'button' }, on: { click: () => ctx.navigate({ pooling: MIRROR_POOLING }) },
      });
    }
    return hint === 'precompute'
      ? h('span', { class: 'hint', text: `This pooling misses mirrored (flipped) copies; a precompute with --pooling avg grid3 ${MIRROR_POOLING} adds the mirror grid, which groups them too.` })
      : '';
  }

  private showOutliers(ctx: Ctx, c: CurateConfig): void {
    this.info.replaceChildren(`The ${c.outliers.length} images farthest from their neighbours (uniqueness: mean distance to the ${ctx.data.dataset(ctx.state.dataset).k} nearest, over its median; 1 = typical).`);
    this.list.show(c.outliers.length, (r) => {
      const id = c.outliers[r]!;
      return h('div', { class: 'cur-item', attrs: { 'data-id': id } }, [
        h('div', { class: 'cur-meta' }, [h('strong', { text: `#${r + 1}` }), h('span', { text: `uniqueness ${fmt(c.uniqueness[r]!)}` }), h('span', { class: 'hint', text: this.className(ctx, id) })]),
        h('div', { class: 'cur-thumbs' }, [this.thumb(ctx, id, `image ${id} ${this.className(ctx, id)}`)]),
      ]);
    });
  }

  private showLabels(ctx: Ctx, lab: CurateLabels): void {
    const names = Object.keys(lab.fields);
    if (!names.includes(this.field)) this.field = names[0] ?? 'class';
    this.fieldPick.replaceChildren(...names.map((n) => h('option', { text: n, attrs: { value: n, ...(n === this.field ? { selected: '' } : {}) } })));
    const s = lab.fields[this.field];
    if (!s) {
      this.info.replaceChildren('This dataset has no labels to check.');
      this.list.show(0, () => h('div'));
      return;
    }
    const classes = ctx.data.dataset(ctx.state.dataset).classes;
    const name = (x: number) => (this.field === 'class' ? classes[x] ?? String(x) : String(x));
    this.info.replaceChildren(...(names.length > 1 ? [this.fieldPick, ' '] : []), s.classifier
      ? `${s.total} image${s.total === 1 ? '' : 's'} that a classifier, trained on the other images' ${this.field} labels (cross-validated, on the vectors of ${s.classifier.split('/').join(' · ')}, the configuration whose neighbours agree best with them), places under another ${this.field} label; least confident first (own: its probability for the given label).`
      : `${s.total} image${s.total === 1 ? '' : 's'} whose neighbours, across every configuration, mostly carry another ${this.field} label; least confident first (own: the share of the given label in the neighbours' votes).`);
    this.list.show(s.ids.length, (r) => {
      const id = s.ids[r]!;
      return h('div', { class: 'cur-item', attrs: { 'data-id': id } }, [
        h('div', { class: 'cur-meta' }, [
          h('strong', { text: `#${r + 1}` }),
          h('span', {}, ['labelled ', h('em', { text: name(s.given[r]!) })]),
          h('span', {}, ['suggested ', h('strong', { class: 'cur-suggested', text: name(s.suggested[r]!) })]),
          h('span', { class: 'hint', text: `own ${fmt(s.self_confidence[r]!)} · suggested ${fmt(s.self_confidence[r]! + s.margin[r]!)}` }),
        ]),
        h('div', { class: 'cur-thumbs' }, [this.thumb(ctx, id, `image ${id} labelled ${name(s.given[r]!)}`)]),
      ]);
    });
  }
}
