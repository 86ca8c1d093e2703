// "Your judgements": rank configurations by the user's own ✓ / ✗ marks. Pure math, no DOM, no
// fetch. The same algorithm as convnet_search/search/judgements.py; both are checked against
// judgements.fixture.json. Why condensed-list AP (Sakai's AP'): most results of most
// configurations are unjudged; counting them as wrong would favour the configurations the user
// happened to look at. AP' drops unjudged results from each list and scores what is left.

/** query id → (result id → similar?) */
export type JudgedByQuery = Map<number, Map<number, boolean>>;
/** One configuration's rows: query id → its k neighbour ids, nearest first. */
export type Rows = Map<number, ArrayLike<number>>;

export interface Ranked {
  config: string;
  score: number;
  /** Judged results inside this configuration's top-k lists of the scored queries. */
  nJudged: number;
  lo: number;
  hi: number;
}

export interface Ranking {
  ranked: Ranked[];
  /** Scored queries (at least one result judged similar), ascending. */
  queries: number[];
  /** Share of bootstrap resamples in which the leader scores ≥ every other configuration. */
  leaderShare: number;
}

export const N_BOOT = 1000;
export const SEED = 20;

/** Seeded uniform [0, 1) generator (also used by convnet_search/search/judgements.py and e2e/scaled-bundle.mjs). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** AP' of one list: precision over judged results only, divided by the judged-similar count (NaN if none). */
export function condensedAP(row: ArrayLike<number>, judged: ReadonlyMap<number, boolean>): number {
  let relevant = 0;
  for (const v of judged.values()) if (v) relevant++;
  if (relevant === 0) return NaN;
  let hits = 0, seen = 0, total = 0;
  for (let i = 0; i < row.length; i++) {
    const v = judged.get(row[i]!);
    if (v === undefined) continue;
    seen++;
    if (v) {
      hits++;
      total += hits / seen;
    }
  }
  return total / relevant;
}

/** nBoot × nQueries resampled positions, drawn in row order. */
export function bootstrapIndices(nQueries: number, nBoot = N_BOOT, seed = SEED): Int32Array {
  const rnd = mulberry32(seed);
  const out = new Int32Array(nBoot * nQueries);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(rnd() * nQueries);
  return out;
}

function interval(samples: Float64Array): [number, number] {
  const s = Float64Array.from(samples).sort();
  const n = s.length;
  return [s[Math.floor(0.025 * (n - 1))]!, s[Math.ceil(0.975 * (n - 1))]!];
}

/** Scores that differ only by summation order tie (Python's numpy mean sums pairwise). */
const tieKey = (x: number) => Math.round(x * 1e12) / 1e12;

function apTable(configs: string[], rows: ReadonlyMap<string, Rows>, judged: JudgedByQuery, queries: number[]) {
  const ap = configs.map(() => new Float64Array(queries.length));
  const nJudged = configs.map(() => 0);
  configs.forEach((name, c) => {
    queries.forEach((q, j) => {
      const row = rows.get(name)!.get(q);
      if (!row) throw new Error(`no row of query ${q} for configuration ${name}`);
      const jq = judged.get(q)!;
      ap[c]![j] = condensedAP(row, jq);
      for (let i = 0; i < row.length; i++) if (jq.has(row[i]!)) nJudged[c]!++;
    });
  });
  return { ap, nJudged };
}

function mean(xs: Float64Array): number {
  let s = 0;
  for (const x of xs) s += x;
  return xs.length ? s / xs.length : 0;
}

function bootMeans(ap: Float64Array, idx: Int32Array, nBoot: number): Float64Array {
  const q = ap.length;
  const out = new Float64Array(nBoot);
  if (q === 0) return out;
  for (let b = 0; b < nBoot; b++) {
    let s = 0;
    for (let j = 0; j < q; j++) s += ap[idx[b * q + j]!]!;
    out[b] = s / q;
  }
  return out;
}

/** Every configuration of `rows` (in its order), best first; ties: more judged results, then input order. */
export function rankConfigurations(rows: ReadonlyMap<string, Rows>, judged: JudgedByQuery, nBoot = N_BOOT, seed = SEED): Ranking {
  const queries = [...judged.keys()].filter((q) => [...judged.get(q)!.values()].some(Boolean)).sort((a, b) => a - b);
  const configs = [...rows.keys()];
  const { ap, nJudged } = apTable(configs, rows, judged, queries);
  const scores = ap.map(mean);
  const idx = bootstrapIndices(queries.length, nBoot, seed);
  const boot = ap.map((a) => bootMeans(a, idx, nBoot));
  const order = configs.map((_, c) => c).sort((a, b) => tieKey(scores[b]!) - tieKey(scores[a]!) || nJudged[b]! - nJudged[a]! || a - b);
  const ranked = order.map((c) => {
    const [lo, hi] = interval(boot[c]!);
    return { config: configs[c]!, score: scores[c]!, nJudged: nJudged[c]!, lo, hi };
  });
  return { ranked, queries, leaderShare: configs.length ? leaderShare(boot, order[0]!, nBoot) : 0 };
}

function leaderShare(boot: Float64Array[], lead: number, nBoot: number): number {
  let stays = 0;
  for (let b = 0; b < nBoot; b++) if (boot.every((x) => boot[lead]![b]! >= x[b]! - 1e-12)) stays++;
  return stays / nBoot;
}

/**
 * What to judge next: unjudged (query, result) pairs of the judged queries, pooled over every
 * configuration in `rows` by rank-biased votes (Σ 1/(rank + 1) over the lists holding the result,
 * TREC-style pooling). Most votes first; ties by query, then result. Every configuration, not the
 * current leaders: a leaders' pool confirms them (convnet_search/search/judgements.py says more).
 */
export function suggest(rows: ReadonlyMap<string, Rows>, judged: JudgedByQuery, limit = 8): [number, number][] {
  const cands: [number, number, number][] = [];
  for (const q of [...judged.keys()].sort((a, b) => a - b)) {
    const votes = new Map<number, number>();
    for (const per of rows.values()) {
      const row = per.get(q)!;
      for (let pos = 0; pos < row.length; pos++) {
        const r = row[pos]!;
        if (r !== q && !judged.get(q)!.has(r)) votes.set(r, (votes.get(r) ?? 0) + 1 / (pos + 1));
      }
    }
    for (const [r, v] of votes) cands.push([tieKey(v), q, r]);
  }
  cands.sort((a, b) => b[0] - a[0] || a[1] - b[1] || a[2] - b[2]);
  return cands.slice(0, limit).map(([, q, r]) => [q, r]);
}

/** Results shared by two top-k lists (overlap@k). */
export function overlap(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const s = new Set(Array.from(a));
  let n = 0;
  for (let i = 0; i < b.length; i++) if (s.has(b[i]!)) n++;
  return n;
}

export interface FetchPlan {
  /** Configurations whose rows of every judged query are here or in `fetch`: these get ranked. */
  ranked: string[];
  /** [configuration, query] rows to fetch now. */
  fetch: [string, number][];
  /** Bytes the configurations left out would still need. */
  restBytes: number;
}

/**
 * Which rows to fetch within `budget` bytes (each row `rowBytes`): configurations in the given
 * (priority) order, each taken only whole (all its judged queries' rows), until the budget is
 * spent; rows already `have` (key "config#query") are free.
 */
export function planFetch(configs: readonly string[], queries: readonly number[], have: ReadonlySet<string>, rowBytes: number, budget: number): FetchPlan {
  const plan: FetchPlan = { ranked: [], fetch: [], restBytes: 0 };
  let left = budget;
  let full = false;
  for (const c of configs) {
    const need = queries.filter((q) => !have.has(`${c}#${q}`));
    const cost = need.length * rowBytes;
    if (!full && cost <= left) {
      left -= cost;
      plan.ranked.push(c);
      for (const q of need) plan.fetch.push([c, q]);
    } else {
      full = full || cost > 0;  // keep the priority order: nothing after the first that did not fit
      if (cost === 0) plan.ranked.push(c);
      else plan.restBytes += cost;
    }
  }
  return plan;
}
