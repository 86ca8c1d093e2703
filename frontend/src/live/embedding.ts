// The uploaded image's features, computed in two parts (docs/live-search.md "Upload: the search's
// vector first"): the search needs one (layer, pooling) vector, and the graph model computes only
// what the requested outputs need (TF.js prunes the graph to them). So an upload first runs the
// graph for that one output, reads it back and searches; every other output (the other poolings
// and layers) is computed afterwards, in the worker, from the model input it keeps — the image is
// never sent again. Layers at or before the searched one have their maps (each layer's activation,
// the node the spatial output and every pooling read) kept from that first run, so the rest only
// pools them; deeper layers continue the network from the deepest map kept, never from the start.
//
// No TF.js here: `Graph<T>` is the model (worker.ts wraps tf.GraphModel), so the order of work is
// unit-tested with a fake (embedding.test.ts).
import type { BrowserOutput } from '../data/types';

/** What UploadFeatures needs from a graph model; T is its tensor type. */
export interface Graph<T> {
  /** Runs the graph with `feeds` (graph node name → tensor; the input and any held maps) to the
   * named tensors (synchronous, like GraphModel.execute). */
  run(feeds: Map<string, T>, outputs: string[]): T[];
  read(t: T): Promise<Float32Array>;
  dispose(t: T): void;
}

/** A layer's activation as a graph node: what its poolings read (the node its spatial output is an
 * Identity of). Absent for a layer = its outputs are computed from the input. */
export interface LayerNode {
  layer: string;
  node: string;
}

export const featureKey = (o: Pick<BrowserOutput, 'layer' | 'pooling'>) => `${o.pooling}/${o.layer}`;

export class UploadFeatures<T> {
  private readonly values = new Map<string, Float32Array>();
  /** Layer activations kept from earlier runs, by layer. */
  private readonly maps = new Map<string, T>();
  private input: T | null;
  private readonly layerOrder: string[];
  private readonly nodeOf: Map<string, string>;

  /**
   * @param outputs every pooled output of the model, layers in network order (the manifest's)
   * @param nodes the layers' activation nodes, network order; may be empty (then every output is
   *   computed from the input: correct, only slower)
   * @param input the model input of this upload; owned from now on (disposed by `release`)
   */
  constructor(
    private readonly graph: Graph<T>,
    private readonly inputName: string,
    private readonly outputs: BrowserOutput[],
    nodes: LayerNode[],
    input: T,
  ) {
    this.input = input;
    this.layerOrder = [...new Set(outputs.map((o) => o.layer))];
    const known = new Set(this.layerOrder);
    this.nodeOf = new Map(nodes.filter((n) => known.has(n.layer)).map((n) => [n.layer, n.node]));
  }

  get(key: string): Float32Array | undefined {
    return this.values.get(key);
  }

  /** Tensors this upload holds (model input + kept maps): the worker's count beyond the model. */
  get held(): number {
    return (this.input ? 1 : 0) + this.maps.size;
  }

  /** The next output to compute in the background (network order), or null when all are done. */
  nextPending(): BrowserOutput | null {
    return this.outputs.find((o) => !this.values.has(featureKey(o))) ?? null;
  }

  /**
   * The vector of (layer, pooling), computing it if needed. The first call of an upload (the
   * search's output) also keeps the maps of every layer at or before its layer: the run computes
   * them anyway, and the other poolings of those layers then cost a pooling each.
   */
  async ensure(key: string): Promise<Float32Array> {
    const have = this.values.get(key);
    if (have) return have;
    const out = this.outputs.find((o) => featureKey(o) === key);
    if (!out) throw new Error(`the model has no output ${key}`);
    if (!this.input) throw new Error('this upload’s model input was released');
    const depth = this.layerOrder.indexOf(out.layer);
    // Start from the deepest kept map at or before the layer (with the input: any path that does
    // not pass through that map is still computable, just from the start).
    let from = -1;
    for (let i = depth; i >= 0 && from < 0; i--) if (this.maps.has(this.layerOrder[i]!)) from = i;
    const feeds = new Map<string, T>([[this.inputName, this.input]]);
    if (from >= 0) feeds.set(this.nodeOf.get(this.layerOrder[from]!)!, this.maps.get(this.layerOrder[from]!)!);
    // Keep the maps this run computes anyway: the layers after `from`, up to and including this one.
    const keep = this.layerOrder.slice(from + 1, depth + 1).filter((l) => this.nodeOf.has(l) && !this.maps.has(l));
    const ys = this.graph.run(feeds, [out.output, ...keep.map((l) => this.nodeOf.get(l)!)]);
    keep.forEach((l, i) => this.maps.set(l, ys[i + 1]!));
    try {
      const v = Float32Array.from(await this.graph.read(ys[0]!));
      if (v.length !== out.dim) throw new Error(`output ${key} (${out.output}) has ${v.length} values, the manifest says ${out.dim}`);
      this.values.set(key, v);
      return v;
    } finally {
      this.graph.dispose(ys[0]!);
    }
  }

  /** Every output is computed: the input and the maps are no longer needed. */
  get complete(): boolean {
    return this.nextPending() === null;
  }

  /** Frees the input and the kept maps (the computed vectors stay). */
  release(): void {
    for (const t of this.maps.values()) this.graph.dispose(t);
    this.maps.clear();
    if (this.input) this.graph.dispose(this.input);
    this.input = null;
  }
}
