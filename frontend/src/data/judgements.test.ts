import { describe, expect, it } from 'vitest';
import fixture from './judgements.fixture.json';
import { condensedAP, overlap, planFetch, rankConfigurations, suggest, type JudgedByQuery, type Rows } from './judgements';

function fromFixture(): { rows: Map<string, Rows>; judged: JudgedByQuery } {
  const rows = new Map<string, Rows>();
  for (const [name, per] of Object.entries(fixture.rows)) rows.set(name, new Map(Object.entries(per).map(([q, r]) => [Number(q), r])));
  const judged: JudgedByQuery = new Map();
  for (const [q, r, v] of fixture.judgements as [number, number, boolean][]) {
    if (!judged.has(q)) judged.set(q, new Map());
    judged.get(q)!.set(r, v);
  }
  return { rows, judged };
}

describe('judgements ranking', () => {
  it('agrees with the Python implementation on the shared fixture', () => {
    const { rows, judged } = fromFixture();
    const r = rankConfigurations(rows, judged, fixture.n_boot, fixture.seed);
    const want = fixture.expected;
    expect(r.ranked.map((x) => x.config)).toEqual(want.ranked.map((x) => x[0]));
    r.ranked.forEach((x, i) => {
      const [, score, n, lo, hi] = want.ranked[i] as [string, number, number, number, number];
      expect(x.score).toBeCloseTo(score, 12);
      expect(x.nJudged).toBe(n);
      expect(x.lo).toBeCloseTo(lo, 12);
      expect(x.hi).toBeCloseTo(hi, 12);
    });
    expect(r.queries).toEqual(want.queries);
    expect(r.leaderShare).toBe(want.leader_share);
    expect(suggest(rows, judged)).toEqual(want.suggestions);
    expect(r.ranked.length).toBe(Object.keys(fixture.rows).length);
  });

  it('ignores unjudged results (condensed list) and charges missing similar ones', () => {
    const j = new Map([[1, true], [2, true], [3, false]]);
    expect(condensedAP([1, 2, 3], j)).toBe(1);
    expect(condensedAP([9, 1, 8, 7, 2, 6, 3], j)).toBe(1);
    expect(condensedAP([3, 1, 2], j)).toBeCloseTo((1 / 2 + 2 / 3) / 2, 15);
    expect(condensedAP([1, 3, 5], j)).toBe(0.5);
    expect(condensedAP([1, 2], new Map([[1, false]]))).toBeNaN();
  });

  it('a better list ranks first and an obvious leader keeps the top in every resample', () => {
    const rows = new Map<string, Rows>([
      ['good', new Map([[0, [1, 2, 3, 4]], [5, [6, 7, 8, 9]]])],
      ['bad', new Map([[0, [3, 4, 1, 2]], [5, [8, 9, 6, 7]]])],
      ['mid', new Map([[0, [1, 3, 2, 10]], [5, [6, 8, 7, 11]]])],
    ]);
    const judged: JudgedByQuery = new Map([[0, new Map([[1, true], [2, true], [3, false]])], [5, new Map([[6, true], [7, true], [8, false]])]]);
    const r = rankConfigurations(rows, judged);
    expect(r.ranked.map((x) => x.config)).toEqual(['good', 'mid', 'bad']);
    expect(r.leaderShare).toBe(1);
    expect(suggest(rows, judged)).toEqual([[0, 4], [5, 9], [0, 10], [5, 11]]);
    expect(suggest(rows, judged, 1)).toEqual([[0, 4]]);
  });

  it('suggests by rank-biased votes over every configuration, never the query or a judged result', () => {
    const rows = new Map<string, Rows>([
      ['a', new Map([[0, [7, 1, 2, 0]]])], ['b', new Map([[0, [2, 1, 9, 3]]])], ['c', new Map([[0, [1, 2, 3, 4]]])],
    ]);
    expect(suggest(rows, new Map([[0, new Map([[7, true]])]]))).toEqual([[0, 1], [0, 2], [0, 3], [0, 9], [0, 4]]);
    // the same pool whatever the marks say (it does not follow the leaders)
    expect(suggest(rows, new Map([[0, new Map([[7, false]])]]))).toEqual([[0, 1], [0, 2], [0, 3], [0, 9], [0, 4]]);
    expect(suggest(rows, new Map())).toEqual([]);
  });

  it('overlap@k counts shared ids', () => {
    expect(overlap([1, 2, 3], [3, 4, 1])).toBe(2);
    expect(overlap([1, 2], [5, 6])).toBe(0);
  });
});

describe('planFetch (the per-view byte budget)', () => {
  it('takes whole configurations in priority order until the budget is spent; rows already here are free', () => {
    const have = new Set(['c#1', 'c#2']);
    const p = planFetch(['a', 'b', 'c', 'd'], [1, 2], have, 30, 130);
    expect(p.ranked).toEqual(['a', 'b', 'c']);  // a, b: 60 each; c: free; d would need 60 more
    expect(p.fetch).toEqual([['a', 1], ['a', 2], ['b', 1], ['b', 2]]);
    expect(p.restBytes).toBe(60);
    const all = planFetch(['a', 'b', 'c', 'd'], [1, 2], have, 30, Infinity);
    expect(all.ranked).toEqual(['a', 'b', 'c', 'd']);
    expect(all.fetch).toHaveLength(6);
    expect(all.restBytes).toBe(0);
    expect(planFetch(['a', 'b'], [1], new Set(), 30, 10)).toEqual({ ranked: [], fetch: [], restBytes: 60 });
  });
});
