// The user's ✓ / ✗ judgements: kept in this browser only (IndexedDB), never sent anywhere.
// Keyed by dataset id + the two images' file names, so they survive a rebuilt bundle whose ids
// changed; the ids at judging time are kept as hints (checked against the names before use).
// File format: docs/bundle.md "Your judgements (file format)".
import type { FileNames } from './types';

export interface Judgement {
  dataset: string;
  query: string;
  result: string;
  similar: boolean;
  /** ISO time of the mark: on import the newer of two marks of the same pair wins. */
  at: string;
  /** Ids when judged (hints only: a rebuilt bundle may number images differently). */
  query_id?: number;
  result_id?: number;
}

export const FILE_FORMAT = 'convnet-search-judgements';
export const FILE_VERSION = 1;

export function judgementKey(dataset: string, query: string, result: string): string {
  return JSON.stringify([dataset, query, result]);
}

export function toFile(all: readonly Judgement[]): string {
  const sorted = [...all].sort((a, b) => judgementKey(a.dataset, a.query, a.result) < judgementKey(b.dataset, b.query, b.result) ? -1 : 1);
  return JSON.stringify({ format: FILE_FORMAT, version: FILE_VERSION, judgements: sorted }, null, 1) + '\n';
}

const isId = (x: unknown) => x === undefined || (Number.isInteger(x) && (x as number) >= 0);

/** Parses and checks an exported file; throws an Error naming the first problem. */
export function parseFile(text: string): Judgement[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error('not a JSON file');
  }
  const f = raw as { format?: unknown; version?: unknown; judgements?: unknown } | null;
  if (!f || typeof f !== 'object' || f.format !== FILE_FORMAT) throw new Error(`not a judgements file (expected "format": "${FILE_FORMAT}")`);
  if (f.version !== FILE_VERSION) throw new Error(`unsupported version ${JSON.stringify(f.version)} (this explorer reads ${FILE_VERSION})`);
  if (!Array.isArray(f.judgements)) throw new Error('"judgements" must be a list');
  return f.judgements.map((j: unknown, i: number) => {
    const x = j as Partial<Judgement> | null;
    const ok = x && typeof x.dataset === 'string' && typeof x.query === 'string' && typeof x.result === 'string'
      && typeof x.similar === 'boolean' && typeof x.at === 'string' && isId(x.query_id) && isId(x.result_id);
    if (!ok) throw new Error(`judgements[${i}]: needs dataset, query, result (strings), similar (true/false), at (ISO time); ids are optional non-negative integers`);
    const { dataset, query, result, similar, at, query_id, result_id } = x as Judgement;
    return { dataset, query, result, similar, at, ...(query_id !== undefined ? { query_id } : {}), ...(result_id !== undefined ? { result_id } : {}) };
  });
}

/** `incoming` merged into `current`: per pair, the later mark wins (ties: incoming). */
export function merge(current: readonly Judgement[], incoming: readonly Judgement[]): Judgement[] {
  const out = new Map(current.map((j) => [judgementKey(j.dataset, j.query, j.result), j]));
  for (const j of incoming) {
    const k = judgementKey(j.dataset, j.query, j.result);
    const old = out.get(k);
    if (!old || old.at <= j.at) out.set(k, j);
  }
  return [...out.values()];
}

/**
 * A judgement's (query id, result id) in the current bundle: the hints when the names there
 * match, else by searching every names page (fetched once; only when a bundle was rebuilt).
 * null: a name that is not in this dataset any more.
 */
export async function resolveIds(js: readonly Judgement[], names: FileNames, size: number): Promise<([number, number] | null)[]> {
  let index: Map<string, number> | null = null;
  const find = async (name: string, hint: number | undefined): Promise<number | null> => {
    if (hint !== undefined && hint < size && (await names.name(hint).catch(() => undefined)) === name) return hint;
    if (!index) {
      index = new Map();
      for (let id = 0; id < size; id++) index.set(await names.name(id), id);
    }
    return index.get(name) ?? null;
  };
  const out: ([number, number] | null)[] = [];
  for (const j of js) {
    const q = await find(j.query, j.query_id);
    const r = q === null ? null : await find(j.result, j.result_id);
    out.push(q === null || r === null ? null : [q, r]);
  }
  return out;
}

const DB = 'convnet-search';
const STORE = 'judgements';

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error ?? new Error('IndexedDB request failed'));
  });
}

function openDb(): Promise<IDBDatabase> {
  const r = indexedDB.open(DB, 1);
  r.onupgradeneeded = () => r.result.createObjectStore(STORE);
  return request(r);
}

// A mark goes to a localStorage journal first, then to IndexedDB, and leaves the journal once
// IndexedDB has committed it. localStorage writes are synchronous: a navigation or a closed tab
// right after a click aborts the IndexedDB transaction still in flight (a mark was lost that way
// under load) but not the journal, which the next page replays.
const JOURNAL = 'convnet-search-judgements-journal';
type Journal = Record<string, Judgement | null>;  // key → the mark, or null: removed

function readJournal(): Journal {
  try {
    const j = JSON.parse(localStorage.getItem(JOURNAL) ?? '{}') as unknown;
    return j && typeof j === 'object' && !Array.isArray(j) ? (j as Journal) : {};
  } catch {
    return {};
  }
}

function writeJournal(j: Journal): void {
  try {
    if (Object.keys(j).length) localStorage.setItem(JOURNAL, JSON.stringify(j));
    else localStorage.removeItem(JOURNAL);
  } catch { /* no localStorage: IndexedDB alone, as before */ }
}

/** Drops the journal entries IndexedDB now holds (unless a newer mark replaced them meanwhile). */
function settle(done: Journal): void {
  const j = readJournal();
  for (const [k, v] of Object.entries(done)) if (k in j && JSON.stringify(j[k]) === JSON.stringify(v)) delete j[k];
  writeJournal(j);
}

/** Puts (or, for null, deletes) every entry in one transaction; resolves once it has committed. */
function commit(db: IDBDatabase, entries: Journal): Promise<void> {
  const tx = db.transaction(STORE, 'readwrite');
  const st = tx.objectStore(STORE);
  for (const [k, v] of Object.entries(entries)) {
    if (v === null) st.delete(k);
    else st.put(v, k);
  }
  return new Promise<void>((ok, bad) => { tx.oncomplete = () => ok(); tx.onerror = tx.onabort = () => bad(tx.error ?? new Error('IndexedDB write aborted')); });
}

/** All judgements in memory, written through to IndexedDB (memory only if the browser refuses it). */
export class JudgementStore {
  private readonly map = new Map<string, Judgement>();
  private readonly listeners = new Set<() => void>();

  private constructor(private readonly db: IDBDatabase | null, readonly problem: string | null) {}

  static async open(): Promise<JudgementStore> {
    try {
      const db = await openDb();
      const store = new JudgementStore(db, null);
      const all = await request(db.transaction(STORE).objectStore(STORE).getAll() as IDBRequest<Judgement[]>);
      for (const j of all) store.map.set(judgementKey(j.dataset, j.query, j.result), j);
      const journal = readJournal();  // marks a previous page made but IndexedDB did not commit
      for (const [k, v] of Object.entries(journal)) {
        if (v === null) store.map.delete(k);
        else store.map.set(k, v);
      }
      if (Object.keys(journal).length) {
        await commit(db, journal);
        settle(journal);
      }
      return store;
    } catch (e) {
      return new JudgementStore(null, `judgements are kept for this page only: the browser refused IndexedDB (${String(e)})`);
    }
  }

  get(dataset: string, query: string, result: string): boolean | undefined {
    return this.map.get(judgementKey(dataset, query, result))?.similar;
  }

  all(dataset?: string): Judgement[] {
    return [...this.map.values()].filter((j) => dataset === undefined || j.dataset === dataset);
  }

  /** Sets (similar true/false) or removes (null) one mark. */
  async set(j: Omit<Judgement, 'similar' | 'at'>, similar: boolean | null): Promise<void> {
    const k = judgementKey(j.dataset, j.query, j.result);
    const v = similar === null ? null : { ...j, similar, at: new Date().toISOString() };
    if (v === null) this.map.delete(k);
    else this.map.set(k, v);
    if (this.db) writeJournal({ ...readJournal(), [k]: v });
    this.changed();
    if (this.db) {
      await commit(this.db, { [k]: v });
      settle({ [k]: v });
    }
  }

  async importAll(incoming: readonly Judgement[]): Promise<number> {
    const merged = merge(this.all(), incoming);
    this.map.clear();
    for (const j of merged) this.map.set(judgementKey(j.dataset, j.query, j.result), j);
    if (this.db) await commit(this.db, Object.fromEntries(merged.map((j) => [judgementKey(j.dataset, j.query, j.result), j])));
    this.changed();
    return incoming.length;
  }

  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(): void {
    for (const fn of this.listeners) fn();
  }
}
