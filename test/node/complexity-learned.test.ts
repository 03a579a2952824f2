import { describe, expect, it } from 'vitest';
import { evaluateRouting, loadCorpus } from '../../scripts/complexity/evaluate';
import type { ChatRequest } from '../../worker/openai/schemas';
import { COMPLEXITY_WEIGHTS, RECOMMENDED_THRESHOLDS, scoreComplexity, tierForScore } from '../../worker/routing/complexity';
import model from '../../worker/routing/complexity-model.json';
import { learnedComplexity, learnedTier } from '../../worker/routing/learned-complexity';

// Issue 15 §1: the labelled corpus and the learned scorer, on the held-out half only.
const all = loadCorpus();
const held = loadCorpus('held-out');
const margin = model.trained.recommended_margin;

describe('complexity corpus', () => {
  it('has ≥ 600 labelled requests over ≥ 12 kinds, each with how its label was decided, split once', () => {
    expect(all.length).toBeGreaterThanOrEqual(600);
    expect(new Set(all.map((x) => x.kind)).size).toBeGreaterThanOrEqual(12);
    expect(new Set(all.map((x) => x.id)).size).toBe(all.length);
    for (const x of all) {
      expect(['fast', 'balanced', 'advanced']).toContain(x.tier);
      expect(x.why.length).toBeGreaterThan(5);
      expect(['tune', 'held-out']).toContain(x.split);
    }
    expect(held.length).toBeGreaterThan(all.length * 0.4);
    expect(held.length).toBeLessThan(all.length * 0.6);
  });
});

describe('learned complexity scorer, held out', () => {
  const rows = held.map((item) => {
    const body = { model: 'auto', ...item.request } as ChatRequest;
    return { item, hand: scoreComplexity(body), learned: learnedComplexity(body) };
  });

  it('ships weights for every hand-built feature plus its n-gram buckets', () => {
    expect(model.features).toEqual(Object.keys(COMPLEXITY_WEIGHTS));
    expect(model.balanced).toHaveLength(1 + model.features.length + model.buckets);
    expect(model.advanced).toHaveLength(1 + model.features.length + model.buckets);
    expect(model.trained.split).toBe('tune');
  });

  it('at its recommended margin: ≤ 5% under-served, and fewer than the hand-tuned scorer', () => {
    const learned = evaluateRouting(rows.map((r) => ({ item: r.item, promptTokens: r.hand.promptTokens, tier: learnedTier(r.learned, margin) })));
    const hand = evaluateRouting(rows.map((r) => ({ item: r.item, promptTokens: r.hand.promptTokens, tier: tierForScore(RECOMMENDED_THRESHOLDS, r.hand.score) as 'fast' })));
    expect(learned.under).toBeLessThanOrEqual(0.05);
    expect(learned.under).toBeLessThan(hand.under);
    expect(learned.saving).toBeGreaterThan(0.2); // it still saves money against all-strongest
  });

  it('is risk-aware: a wider margin never routes a request lower', () => {
    const rank = (t: string) => ['fast', 'balanced', 'advanced'].indexOf(t);
    for (const r of rows) {
      let prev = -1;
      for (const m of [0, 0.1, 0.2, 0.3, 0.4]) {
        const t = rank(learnedTier(r.learned, m));
        expect(t).toBeGreaterThanOrEqual(prev);
        prev = t;
      }
    }
    expect(learnedTier({ pBalanced: 0.4, pAdvanced: 0.2 }, 0)).toBe('fast');
    expect(learnedTier({ pBalanced: 0.4, pAdvanced: 0.2 }, 0.15)).toBe('balanced');
    expect(learnedTier({ pBalanced: 0.4, pAdvanced: 0.2 }, 0.35)).toBe('advanced');
  });

  it('orders its probabilities (needing advanced implies needing balanced)', () => {
    for (const r of rows) expect(r.learned.pBalanced).toBeGreaterThanOrEqual(r.learned.pAdvanced);
  });
});
