// ✓ similar / ✗ not similar under a result. A mark is written to this browser's IndexedDB only:
// the buttons are enabled once both file names are on the page, so marking never fetches anything.
import { h } from '../dom';
import type { JudgementStore } from '../data/judgestore';
import type { FileNames } from '../data/types';

export interface JudgeTarget {
  store: JudgementStore;
  dataset: string;
  names: FileNames;
  query: number;
}

export function judgeButtons(t: JudgeTarget, result: number): HTMLElement {
  const yes = h('button', { class: 'judge-yes', text: '✓', attrs: { type: 'button', disabled: true, 'aria-pressed': 'false', title: 'Similar (kept in this browser only)' } });
  const no = h('button', { class: 'judge-no', text: '✗', attrs: { type: 'button', disabled: true, 'aria-pressed': 'false', title: 'Not similar (kept in this browser only)' } });
  const el = h('span', { class: 'judge', attrs: { role: 'group', 'aria-label': 'Your judgement', 'data-dataset': t.dataset, 'data-q': t.query, 'data-r': result } }, [yes, no]);
  void Promise.all([t.names.name(t.query), t.names.name(result)]).then(([qn, rn]) => {
    el.dataset.qn = qn;
    el.dataset.rn = rn;
    yes.disabled = no.disabled = false;
    paint(el, t.store);
    const mark = (v: boolean) => () => {
      const now = t.store.get(t.dataset, qn, rn);
      void t.store.set({ dataset: t.dataset, query: qn, result: rn, query_id: t.query, result_id: result }, now === v ? null : v);
    };
    yes.addEventListener('click', mark(true));
    no.addEventListener('click', mark(false));
  }, () => undefined);
  return el;
}

function paint(el: HTMLElement, store: JudgementStore): void {
  const { dataset, qn, rn } = el.dataset;
  if (dataset === undefined || qn === undefined || rn === undefined) return;
  const v = store.get(dataset, qn, rn);
  el.querySelector('.judge-yes')!.setAttribute('aria-pressed', String(v === true));
  el.querySelector('.judge-no')!.setAttribute('aria-pressed', String(v === false));
  el.dataset.judged = v === undefined ? '' : v ? 'yes' : 'no';
}

/** Repaints every mark on the page (one pair can be on screen in several columns). */
export function repaintJudgements(root: ParentNode, store: JudgementStore): void {
  for (const el of root.querySelectorAll<HTMLElement>('.judge')) paint(el, store);
}
