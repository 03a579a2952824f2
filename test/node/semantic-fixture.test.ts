import { describe, expect, it } from 'vitest';
import { evaluateIndex, evaluatePairs, loadPairs } from '../../scripts/bench/lib/semantic-pairs';

// The labelled pairs (test/fixtures/semantic-pairs.json) through the Worker's own decision code
// at the default threshold (0.95) with the local embedding: the aim is wrong hits under
// 1% of hits. `npm run bench semantic` reports the whole sweep.
const pairs = loadPairs();

describe('semantic cache on the labelled fixture', () => {
  it('has at least 200 labelled pairs of both kinds, with unique ids', () => {
    expect(pairs.length).toBeGreaterThanOrEqual(200);
    expect(new Set(pairs.map((p) => p.id)).size).toBe(pairs.length);
    expect(pairs.filter((p) => p.label === 'hit').length).toBeGreaterThanOrEqual(80);
    expect(pairs.filter((p) => p.label === 'miss').length).toBeGreaterThanOrEqual(80);
  });

  for (const [mode, evaluate] of [['pairwise', evaluatePairs], ['one shared index', evaluateIndex]] as const) {
    it(`${mode}: wrong hits under 1% of hits at the default threshold, and a useful hit rate`, () => {
      const r = evaluate(pairs, { threshold: 0.95, guards: true });
      expect(r.wrong).toEqual([]); // the ids, so that a failure says which pairs
      expect(r.wrongHits / Math.max(1, r.hits)).toBeLessThan(0.01);
      expect(r.hitRate).toBeGreaterThan(0.5);
    });
  }

  it('the guards are what keeps it there: without them the same embedding answers near-misses', () => {
    const r = evaluatePairs(pairs, { threshold: 0.95, guards: false });
    expect(r.wrongHits).toBeGreaterThan(0);
  });
});
