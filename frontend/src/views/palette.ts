// Distinct class colours: a hand-picked set for ≤ 10 classes, golden-angle hues beyond.
const BASE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

export function classColor(i: number): string {
  if (i >= 0 && i < BASE.length) return BASE[i]!;
  const hue = (i * 137.508) % 360;
  return `hsl(${hue.toFixed(1)} 65% ${i % 2 ? 42 : 55}%)`;
}
