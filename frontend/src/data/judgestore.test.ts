import { describe, expect, it } from 'vitest';
import { merge, parseFile, resolveIds, toFile, type Judgement } from './judgestore';
import { PagedNames } from './names';

const j = (query: string, result: string, similar: boolean, at = '2026-01-01T00:00:00.000Z', ids: Partial<Judgement> = {}): Judgement => ({ dataset: 'd', query, result, similar, at, ...ids });

describe('judgements file', () => {
  it('round-trips through export and import', () => {
    const all = [j('b.png', 'c.png', false), j('a.png', 'b.png', true, undefined, { query_id: 0, result_id: 1 })];
    const back = parseFile(toFile(all));
    expect(back).toHaveLength(2);
    expect(back[0]).toEqual(all[1]);  // sorted by key
    expect(back[1]).toEqual(all[0]);
  });
  it('refuses other files with a reason', () => {
    expect(() => parseFile('nope')).toThrow(/not a JSON file/);
    expect(() => parseFile('{"format":"x"}')).toThrow(/not a judgements file/);
    expect(() => parseFile('{"format":"convnet-search-judgements","version":2,"judgements":[]}')).toThrow(/unsupported version 2/);
    expect(() => parseFile('{"format":"convnet-search-judgements","version":1,"judgements":[{"dataset":"d","query":"a","result":"b","similar":"yes","at":"t"}]}')).toThrow(/judgements\[0\]/);
    expect(() => parseFile('{"format":"convnet-search-judgements","version":1,"judgements":[{"dataset":"d","query":"a","result":"b","similar":true,"at":"t","query_id":-1}]}')).toThrow(/judgements\[0\]/);
  });
  it('merges: the later mark of a pair wins', () => {
    const old = [j('a', 'b', true, '2026-01-01T00:00:00Z'), j('a', 'c', true, '2026-03-01T00:00:00Z')];
    const inc = [j('a', 'b', false, '2026-02-01T00:00:00Z'), j('a', 'c', false, '2026-02-01T00:00:00Z'), j('x', 'y', true)];
    const m = merge(old, inc);
    expect(m.map((x) => [x.result, x.similar])).toEqual([['b', false], ['c', true], ['y', true]]);
  });
  it('finds ids by name when the hints are stale (a rebuilt bundle)', async () => {
    const names = ['n0', 'n1', 'n2', 'n3', 'n4'];
    const fetched: number[] = [];
    const paged = new PagedNames(5, 2, async (p) => { fetched.push(p); return names.slice(p * 2, p * 2 + 2); });
    const got = await resolveIds([j('n1', 'n4', true, undefined, { query_id: 1, result_id: 4 })], paged, 5);
    expect(got).toEqual([[1, 4]]);
    expect(fetched).toEqual([0, 2]);  // only the hinted ids' pages
    const stale = await resolveIds([j('n3', 'n0', true, undefined, { query_id: 0, result_id: 3 }), j('gone', 'n0', true)], paged, 5);
    expect(stale).toEqual([[3, 0], null]);
  });
});
