// UploadFeatures against a fake graph: a chain input → a → b → c (each layer's map = the one before
// + 1, one element), poolings of a map m: avg = m, max = 10·m. The fake computes each output by
// walking back to the nearest fed node, and records what every run was fed, asked and computed.
import { describe, expect, it } from 'vitest';
import type { BrowserOutput } from '../data/types';
import { featureKey, UploadFeatures, type Graph } from './embedding';

const LAYERS = ['a', 'b', 'c'];
const outputs: BrowserOutput[] = LAYERS.flatMap((layer) => [
  { layer, pooling: 'avg', dim: 1, output: `${layer}_avg:0` },
  { layer, pooling: 'max', dim: 1, output: `${layer}_max:0` },
]);
const nodes = LAYERS.map((layer) => ({ layer, node: `${layer}_act` }));

interface T {
  id: number;
  v: number;
}

class FakeGraph implements Graph<T> {
  runs: { fed: string[]; asked: string[]; layersComputed: string[] }[] = [];
  live = new Set<number>();
  private next = 0;
  make(v: number): T {
    const t = { id: this.next++, v };
    this.live.add(t.id);
    return t;
  }
  run(feeds: Map<string, T>, asked: string[]): T[] {
    const computed: string[] = [];
    const act = (i: number): number => {
      const fed = feeds.get(`${LAYERS[i]}_act`);
      if (fed) return fed.v;
      const v = (i === 0 ? feeds.get('image')!.v : act(i - 1)) + 1;
      computed.push(LAYERS[i]!);
      return v;
    };
    const out = asked.map((name) => {
      const [layer, kind] = name.replace(':0', '').split('_') as [string, string];
      const m = act(LAYERS.indexOf(layer));
      return this.make(kind === 'act' ? m : kind === 'max' ? 10 * m : m);
    });
    this.runs.push({ fed: [...feeds.keys()].sort(), asked, layersComputed: [...new Set(computed)] });
    return out;
  }
  read(t: T) {
    if (!this.live.has(t.id)) throw new Error('read after dispose');
    return Promise.resolve(Float32Array.of(t.v));
  }
  dispose(t: T) {
    if (!this.live.delete(t.id)) throw new Error('double dispose');
  }
}

const key = (layer: string, pooling: string) => featureKey({ layer, pooling });

describe('UploadFeatures', () => {
  it('runs the network once for the searched output and keeps the maps it passes', async () => {
    const g = new FakeGraph();
    const u = new UploadFeatures(g, 'image', outputs, nodes, g.make(100));
    expect(await u.ensure(key('c', 'avg'))).toEqual(Float32Array.of(103));
    expect(g.runs).toEqual([{ fed: ['image'], asked: ['c_avg:0', 'a_act', 'b_act', 'c_act'], layersComputed: ['a', 'b', 'c'] }]);
    expect(u.held).toBe(4); // input + 3 maps; the read vector's tensor is disposed
    expect(g.live.size).toBe(4);
  });

  it('the rest only pools the kept maps, in network order; then the input and maps can go', async () => {
    const g = new FakeGraph();
    const u = new UploadFeatures(g, 'image', outputs, nodes, g.make(100));
    await u.ensure(key('c', 'avg'));
    const order: string[] = [];
    for (let o = u.nextPending(); o; o = u.nextPending()) {
      order.push(featureKey(o));
      await u.ensure(featureKey(o));
    }
    expect(order).toEqual(['avg/a', 'max/a', 'avg/b', 'max/b', 'max/c']);
    for (const r of g.runs.slice(1)) expect(r.layersComputed).toEqual([]);
    expect(g.runs[1]).toMatchObject({ fed: ['a_act', 'image'], asked: ['a_avg:0'] });
    expect([...LAYERS.flatMap((l) => ['avg', 'max'].map((p) => u.get(key(l, p))![0]))]).toEqual([101, 1010, 102, 1020, 103, 1030]);
    expect(u.complete).toBe(true);
    u.release();
    expect(u.held).toBe(0);
    expect(g.live.size).toBe(0);
    expect(u.get(key('b', 'max'))).toEqual(Float32Array.of(1020)); // the vectors stay
  });

  it('a deeper layer continues from the deepest kept map, and keeps the maps it computes', async () => {
    const g = new FakeGraph();
    const u = new UploadFeatures(g, 'image', outputs, nodes, g.make(0));
    expect(await u.ensure(key('a', 'max'))).toEqual(Float32Array.of(10));
    expect(g.runs[0]).toEqual({ fed: ['image'], asked: ['a_max:0', 'a_act'], layersComputed: ['a'] });
    expect(await u.ensure(key('c', 'max'))).toEqual(Float32Array.of(30));
    expect(g.runs[1]).toEqual({ fed: ['a_act', 'image'], asked: ['c_max:0', 'b_act', 'c_act'], layersComputed: ['b', 'c'] });
    expect(await u.ensure(key('b', 'avg'))).toEqual(Float32Array.of(2));
    expect(g.runs[2]!.layersComputed).toEqual([]);
    expect(g.runs).toHaveLength(3);
    await u.ensure(key('b', 'avg')); // computed once
    expect(g.runs).toHaveLength(3);
  });

  it('without layer nodes (an older bundle) every output is computed from the input', async () => {
    const g = new FakeGraph();
    const u = new UploadFeatures(g, 'image', outputs, [], g.make(0));
    await u.ensure(key('c', 'avg'));
    await u.ensure(key('b', 'max'));
    expect(g.runs.map((r) => [r.fed, r.asked, r.layersComputed])).toEqual([
      [['image'], ['c_avg:0'], ['a', 'b', 'c']],
      [['image'], ['b_max:0'], ['a', 'b']],
    ]);
    expect(u.get(key('b', 'max'))).toEqual(Float32Array.of(20));
    expect(u.held).toBe(1);
  });

  it('refuses an unknown output, a wrong size and a released input', async () => {
    const g = new FakeGraph();
    const u = new UploadFeatures(g, 'image', [{ ...outputs[0]!, dim: 2 }, outputs[1]!], nodes, g.make(0));
    await expect(u.ensure(key('z', 'avg'))).rejects.toThrow(/no output avg\/z/);
    await expect(u.ensure(key('a', 'avg'))).rejects.toThrow(/has 1 values, the manifest says 2/);
    u.release();
    await expect(u.ensure(key('a', 'max'))).rejects.toThrow(/released/);
    expect(g.live.size).toBe(0);
  });
});
