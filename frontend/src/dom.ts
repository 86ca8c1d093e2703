// Tiny DOM builder. Text always goes through text nodes / textContent, never HTML parsing, so
// file names and labels from the bundle cannot inject markup.

type AttrValue = string | number | boolean | null | undefined;
export type Child = Node | string | number | null | undefined | false;

export interface Props {
  class?: string;
  text?: string;
  attrs?: Record<string, AttrValue>;
  on?: { [E in keyof HTMLElementEventMap]?: (ev: HTMLElementEventMap[E]) => void };
}

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, children: Child[] = []): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  if (props.text !== undefined) el.textContent = props.text;
  for (const [name, value] of Object.entries(props.attrs ?? {})) {
    if (name === 'style') throw new Error('inline style attributes are blocked by the CSP; use classes or element.style');
    if (value === false || value === null || value === undefined) continue;
    el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const [type, fn] of Object.entries(props.on ?? {})) el.addEventListener(type, fn as EventListener);
  append(el, children);
  return el;
}

export function append(parent: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

export function clear(el: Element): void {
  el.replaceChildren();
}

/** A status line for screen readers and sighted users alike. */
export function status(text: string, kind: 'loading' | 'error' | 'empty' = 'loading'): HTMLElement {
  return h('p', { class: `status status-${kind}`, text, attrs: { role: kind === 'error' ? 'alert' : 'status' } });
}

/** Arrow-key focus movement inside a grid of focusable items (rows found from layout). */
export function gridKeys(container: HTMLElement, selector: string): void {
  container.addEventListener('keydown', (ev) => {
    const keys = ['ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown', 'Home', 'End'];
    if (!keys.includes(ev.key)) return;
    const items = Array.from(container.querySelectorAll<HTMLElement>(selector));
    const i = items.indexOf(document.activeElement as HTMLElement);
    if (i < 0) return;
    const next = nextIndex(items, i, ev.key);
    if (next !== i && items[next]) {
      ev.preventDefault();
      items[next].focus();
    }
  });
}

function nextIndex(items: HTMLElement[], i: number, key: string): number {
  if (key === 'Home') return 0;
  if (key === 'End') return items.length - 1;
  if (key === 'ArrowLeft') return Math.max(0, i - 1);
  if (key === 'ArrowRight') return Math.min(items.length - 1, i + 1);
  const cur = items[i]!.getBoundingClientRect();
  const down = key === 'ArrowDown';
  let best = i;
  let bestScore = Infinity;
  items.forEach((el, j) => {
    const r = el.getBoundingClientRect();
    const dy = down ? r.top - cur.top : cur.top - r.top;
    if (dy <= 1) return;
    const score = dy * 1000 + Math.abs(r.left - cur.left);
    if (score < bestScore) {
      bestScore = score;
      best = j;
    }
  });
  return best;
}
