// About / FAQ: what the explorer shows and how to read it, plus where this bundle's data came from.
import { h, clear } from '../dom';
import type { Ctx, ViewModule } from '../context';
import { labelSummary, metricLabel } from './config';

function qa(q: string, ...a: (string | HTMLElement)[]): HTMLElement {
  return h('details', { class: 'faq' }, [h('summary', { text: q }), ...a.map((x) => (typeof x === 'string' ? h('p', { text: x }) : x))]);
}

export class AboutView implements ViewModule {
  readonly root = h('section', { class: 'view view-about', attrs: { 'aria-label': 'About' } });

  update(ctx: Ctx): void {
    const m = ctx.manifest;
    clear(this.root);
    this.root.append(
      h('h2', { text: 'About this explorer' }),
      h('p', { text: 'A convolutional network turns an image into a stack of feature maps, layer after layer. Pooling the maps (averaging them, say) gives one vector per image, layer and pooling. Images whose vectors are close are “similar” to that layer. Pick a model, a layer, a pooling and a distance, click an image, and see what that configuration retrieves.' }),
      qa('What is a layer?', 'A layer is one processing step of the network (a convolution, an activation, a pooling…). Its output is a grid of feature maps, one per channel; pooling turns them into one vector per image.'),
      qa('What does each pooling do?', h('ul', {}, m.poolings.map((x) => h('li', {}, [h('strong', { text: x.label }), `: ${x.description}`]))), 'All are computed from the same forward pass. Which one retrieves best depends on the images: compare them in the Compare view (per query and in the leaderboard).'),
      qa('Why do early layers find colour and texture, and late layers objects?', 'Early layers see small patches of pixels and respond to edges, colours and textures. Each further layer combines the previous ones over a larger area, so late layers respond to parts and whole objects. With trained weights, late layers retrieve the same kind of object; early layers retrieve images with similar colours or textures, whatever they show. With random weights this progression is weaker: all layers mostly react to colour and layout.'),
      qa('What does each distance metric do?', h('ul', {}, m.metrics.map((x) => h('li', {}, [h('strong', { text: metricLabel(x) }), `: ${x.description}`]))), 'All are “smaller is more similar”. Their scales differ (cosine is 0…2, the others are unbounded), so the result bars are scaled per query: a bar shrinks linearly with distance, from full at distance 0 to a fifth of a bar at the farthest result shown. Compare bars within one query; the raw distance is printed next to each.'),
      qa('What does the search score mean?', `For a query of class c, each of its top ${m.score.top} results counts if it is in class c, with weight (${m.score.top} − i)/${m.score.top} for rank i = 0…${m.score.top - 1}. The score is the weighted count divided by the sum of weights, 0 (no result in the class) to 1 (all are). Precision@k is the unweighted fraction; mAP@k averages precision at each correct result. The leaderboard shows their means over every image of the dataset.`),
      qa('Why does the map not match the search exactly?', 'UMAP squeezes hundreds of dimensions into two; it keeps neighbourhoods roughly, not distances. The rings show the true nearest neighbours of the query under the chosen metric.'),
      qa('Where does the data come from?', this.sources(ctx)),
      qa('Is my uploaded image sent anywhere?', 'No. “Search with your own image” runs the network in your browser (TensorFlow.js, WebAssembly) and compares the result with precomputed features; nothing is uploaded.'),
      h('p', { class: 'hint', text: `Bundle: ${m.generator}, format ${m.bundle_version}, k=${m.k}, ${m.poolings.map((p) => p.id).join(', ')} pooling, weights: ${m.weights}. ${m.weights_detail}` }),
    );
  }

  private sources(ctx: Ctx): HTMLElement {
    return h('ul', {}, ctx.manifest.datasets.map((d) =>
      h('li', {}, [
        h('strong', { text: d.name }),
        ` (${d.size} images, ${labelSummary(d)}): ${d.description} Source: ${d.source}`,
        ...(d.notes ?? []).map((n) => h('p', { class: 'hint dataset-note', text: n })),
        d.skipped.length ? h('details', {}, [h('summary', { text: `${d.skipped.length} files skipped` }), h('ul', {}, d.skipped.map((s) => h('li', { text: `${s.file}: ${s.reason}` })))]) : null,
      ]),
    ));
  }
}
