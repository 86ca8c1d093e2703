// Configuration bar: dataset, model, layer, pooling, metric, each with a one-line explanation.
import { h, clear } from '../dom';
import { formatCount } from '../data/score';
import type { Ctx } from '../context';
import type { DatasetInfo, LayerInfo, Manifest, MetricInfo, ModelInfo, PoolingInfo } from '../data/types';

export function layerLabel(l: LayerInfo, pos: number, pooling: string): string {
  return `${pos + 1}. ${l.name} · ${l.dims[pooling] ?? '?'}-d`;
}

export function modelDetail(m: ModelInfo): string {
  return `${m.name}: ${formatCount(m.params)} parameters, ${m.layer_count} layers, ${m.input_size.join('×')} input, ${m.weights} weights.`;
}

const WEIGHTS_NOTE: Record<string, string> = { random: 'random weights', file: 'weights from a file', imagenet: 'ImageNet weights' };

/**
 * Model picker label. When the bundle's models differ in weights ("mixed"), each one says which
 * it has where it is chosen: "VGG16 (138.4M, random weights)".
 */
export function modelLabel(m: Manifest, x: ModelInfo): string {
  const note = m.weights === 'mixed' ? `, ${WEIGHTS_NOTE[x.weights] ?? `${x.weights} weights`}` : '';
  return `${x.name} (${formatCount(x.params)}${note})`;
}

/** "A", "A and B", "A, B and C" */
function listNames(names: string[]): string {
  return names.length < 2 ? (names[0] ?? '') : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

/** The banner's one sentence: which models are not ImageNet-trained, and what that means. */
export function weightsSentence(m: Manifest): string | null {
  if (m.weights === 'imagenet') return null;
  if (m.weights === 'random') return 'These results come from untrained networks (random weights), so they reflect colour and layout more than meaning.';
  if (m.weights === 'file') return 'These results come from networks with weights loaded from a file, not Keras’ ImageNet weights.';
  const named = (kind: string) => m.models.filter((x) => x.weights === kind).map((x) => x.name);
  const [random, file] = [named('random'), named('file')];
  const verb = (names: string[]) => (names.length === 1 ? 'uses' : 'use');
  const parts = [
    random.length ? `${listNames(random)} ${verb(random)} random (untrained) weights` : '',
    file.length ? `${listNames(file)} ${verb(file)} weights from a file` : '',
  ].filter(Boolean);
  if (!parts.length) return null;
  const rest = named('imagenet').length ? ', the other models ImageNet weights' : '';
  return `${parts.join(' and ')}${rest}: compare models with that in mind.`;
}

/** A bundle published before its run's last model: "2 of 6 models ready; still computing: …". */
export function progressSentence(m: Manifest): string | null {
  const pending = m.pending_models ?? [];
  if (!pending.length) return null;
  const total = m.models.length + pending.length;
  return `${m.models.length} of ${total} models ready; still computing ${listNames(pending.map((x) => x.name))}. Reload the page later to see them.`;
}

export function layerDetail(m: ModelInfo, l: LayerInfo, pooling: string): string {
  const shape = l.output_shape.join('×');
  return `Layer #${l.index} of ${m.layer_count} (${Math.round(l.depth * 100)}% deep), ${l.type}, output ${shape} → ${l.dims[pooling] ?? '?'}-d vector (${pooling} pooling); ${formatCount(l.params_cumulative)} parameters up to here.`;
}

export function poolingInfo(m: Manifest, id: string): PoolingInfo {
  return m.poolings.find((x) => x.id === id) ?? m.poolings[0]!;
}

export function metricLabel(m: MetricInfo): string {
  return m.p !== null && !m.label.includes(`p=${m.p}`) ? `${m.label} (p=${m.p})` : m.label;
}

interface Field {
  select: HTMLSelectElement;
  detail: HTMLElement;
  wrap: HTMLElement;
}

function field(id: string, label: string, onChange: (v: string) => void): Field {
  const select = h('select', { attrs: { id: `sel-${id}`, 'aria-describedby': `det-${id}` } });
  select.addEventListener('change', () => onChange(select.value));
  const detail = h('p', { class: 'field-detail', attrs: { id: `det-${id}` } });
  const wrap = h('div', { class: `field field-${id}` }, [h('label', { text: label, attrs: { for: `sel-${id}` } }), select, detail]);
  return { select, detail, wrap };
}

function setOptions(select: HTMLSelectElement, options: [string, string][], value: string): void {
  const same = select.options.length === options.length && options.every(([v, t], i) => select.options[i]?.value === v && select.options[i]?.text === t);
  if (!same) {
    clear(select);
    for (const [v, t] of options) select.append(h('option', { text: t, attrs: { value: v } }));
  }
  select.value = value;
}

export class ConfigBar {
  readonly root: HTMLElement;
  private readonly f: Record<'dataset' | 'model' | 'layer' | 'pooling' | 'metric', Field>;
  private ctx: Ctx | null = null;

  constructor() {
    const go = (key: 'dataset' | 'model' | 'layer' | 'pooling' | 'metric') => (v: string) => this.ctx?.navigate({ [key]: v });
    this.f = {
      dataset: field('dataset', 'Dataset', go('dataset')),
      model: field('model', 'Model', go('model')),
      layer: field('layer', 'Layer', go('layer')),
      pooling: field('pooling', 'Pooling', go('pooling')),
      metric: field('metric', 'Distance metric', go('metric')),
    };
    this.root = h('section', { class: 'config', attrs: { 'aria-label': 'Configuration' } }, Object.values(this.f).map((x) => x.wrap));
  }

  update(ctx: Ctx): void {
    this.ctx = ctx;
    const { manifest: m, state: s } = ctx;
    const ds = m.datasets.find((d) => d.id === s.dataset)!;
    setOptions(this.f.dataset.select, m.datasets.map((d) => [d.id, `${d.name} (${d.size})`]), s.dataset);
    this.f.dataset.detail.textContent = `${ds.size} images, ${labelSummary(ds)}. ${ds.description}${(ds.notes ?? []).map((n) => ` Note: ${n}`).join('')}`;
    setOptions(this.f.model.select, m.models.map((x) => [x.id, modelLabel(m, x)]), s.model);
    const model = m.models.find((x) => x.id === s.model)!;
    this.f.model.detail.textContent = modelDetail(model);
    setOptions(this.f.layer.select, model.layers.map((l, i) => [l.name, layerLabel(l, i, s.pooling)]), s.layer);
    const layer = model.layers.find((l) => l.name === s.layer)!;
    this.f.layer.detail.textContent = layerDetail(model, layer, s.pooling);
    setOptions(this.f.pooling.select, m.poolings.map((x) => [x.id, x.label]), s.pooling);
    this.f.pooling.detail.textContent = poolingInfo(m, s.pooling).description;
    setOptions(this.f.metric.select, m.metrics.map((x) => [x.id, metricLabel(x)]), s.metric);
    this.f.metric.detail.textContent = metricInfo(m, s.metric).description;
  }
}

export function metricInfo(m: Manifest, id: string): MetricInfo {
  return m.metrics.find((x) => x.id === id) ?? m.metrics[0]!;
}

/** "10 classes", "label fields colour (2 values), season (2 values)" or "no labels". */
export function labelSummary(ds: DatasetInfo): string {
  if (ds.labels === 'folders') return `${ds.classes.length} classes`;
  if (ds.fields.length === 0) return 'no labels';
  return `label fields ${ds.fields.map((f) => `${f.name} (${f.values.length} values)`).join(', ')}`;
}
