import { describe, expect, it } from 'vitest';
import { modelLabel, progressSentence, weightsSentence } from './config';
import { validManifest } from '../data/manifest.fixture';
import type { Manifest } from '../data/types';

/** Sentence ends: a full stop, ! or ? followed by a space or the end (not "0.25"). */
const sentences = (s: string) => s.match(/[.!?](\s|$)/g)?.length ?? 0;

function mixed(): Manifest {
  const m = validManifest();
  m.weights = 'mixed';
  m.models[0] = { ...m.models[0]!, name: 'MobileNet α=0.25', weights: 'imagenet' };
  m.models[1] = { ...m.models[1]!, name: 'VGG16', weights: 'random' };
  m.models.push({ ...m.models[1]!, id: 'r50', name: 'ResNet50' });
  return m;
}

describe('weights banner sentence', () => {
  it('is absent for ImageNet weights and one sentence otherwise', () => {
    expect(weightsSentence({ ...validManifest(), weights: 'imagenet' })).toBeNull();
    for (const m of [validManifest(), { ...validManifest(), weights: 'file' }, mixed()]) {
      const s = weightsSentence(m)!;
      expect(sentences(s), s).toBe(1);
      expect(s).not.toMatch(/https?:|Error|seed/); // raw detail goes behind the disclosure
    }
  });

  it('names the random models when models differ', () => {
    expect(weightsSentence(mixed())).toBe('VGG16 and ResNet50 use random (untrained) weights, the other models ImageNet weights: compare models with that in mind.');
  });
});

describe('progress banner sentence', () => {
  it('is absent for a complete bundle and counts the models of one published early', () => {
    expect(progressSentence(validManifest())).toBeNull();
    const early = { ...validManifest(), pending_models: [{ id: 'r50', name: 'ResNet50' }, { id: 'v16', name: 'VGG16' }] };
    expect(progressSentence(early)).toBe('2 of 4 models ready; still computing ResNet50 and VGG16. Reload the page later to see them.');
  });
});

describe('model picker', () => {
  it('labels each model with its weights only when they differ', () => {
    const m = mixed();
    expect(m.models.map((x) => modelLabel(m, x))).toEqual(['MobileNet α=0.25 (1, ImageNet weights)', 'VGG16 (1, random weights)', 'ResNet50 (1, random weights)']);
    expect(modelLabel(validManifest(), validManifest().models[0]!)).toBe('M1 (1)');
  });
});
