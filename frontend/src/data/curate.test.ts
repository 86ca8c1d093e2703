import { describe, expect, test } from 'vitest';
import { checkCurateConfig, checkCurateLabels } from './curate';

const good = { threshold: 0.05, groups_total: 2, groups: [[1, 2], [3, 4, 5]], group_size: [2, 9], group_min: [0.01, 0.02], group_max: [0.01, 0.04], outliers: [7, 1], uniqueness: [1.7, 1.5] };

describe('curation files are checked before use', () => {
  test('a valid configuration file passes unchanged', () => {
    expect(checkCurateConfig(good, 10, 'u')).toEqual(good);
  });
  test.each([
    ['an id ≥ N', { ...good, groups: [[1, 10], [3, 4]] }, 'groups\\[0\\]'],
    ['a one-image group', { ...good, groups: [[1], [3, 4]] }, 'fewer than 2'],
    ['distances of another length', { ...good, group_max: [0.1] }, 'group_max'],
    ['scores of another length', { ...good, uniqueness: [1] }, 'uniqueness'],
    ['not an object', null, 'not a JSON object'],
    ['a size below the listed members', { ...good, group_size: [1, 9] }, 'group_size'],
  ])('refuses %s, naming the file and the field', (_, raw, what) => {
    expect(() => checkCurateConfig(raw, 10, 'https://x/c.curate.json')).toThrow(new RegExp(`https://x/c.curate.json.*${what}`));
  });
  test('label suspects: class ids must be below the number of classes, arrays of one length', () => {
    const f = { total: 1, ids: [3], given: [0], suggested: [1], margin: [0.5], self_confidence: [0.1] };
    expect(checkCurateLabels({ fields: { class: f } }, 10, 2).fields.class).toEqual({ ...f, classifier: null });
    const basis = 'mobilenet_025/avg/conv_pw_13_relu/cosine';
    expect(checkCurateLabels({ fields: { class: { ...f, classifier: basis } } }, 10, 2).fields.class!.classifier).toBe(basis);
    expect(() => checkCurateLabels({ fields: { class: { ...f, suggested: [2] } } }, 10, 2, 'L')).toThrow(/L: .*class.suggested/);
    expect(() => checkCurateLabels({ fields: { class: { ...f, given: [0, 1] } } }, 10, 2, 'L')).toThrow(/differ in length/);
  });
});
