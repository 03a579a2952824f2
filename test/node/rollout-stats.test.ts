/**
 * Rollout statistics (worker/protocol/rules/rollout-stats.ts): exact values on hand-checked cases
 * (cross-checked with scipy), the rollback comparison on real regressions and on equal noisy arms,
 * and simulations: many A/A experiments checked every 50 samples (the sequential test keeps its
 * false-positive rate, the fixed test does not) and A/B experiments with a real difference.
 */
import { describe, expect, it } from 'vitest';
import {
  type ArmSample,
  type ArmSummary,
  abTest,
  compareArms,
  type FeedbackSample,
  meanTest,
  normalQuantile,
  percentile,
  type RollbackThresholds,
  sequentialProportionTest,
  studentTQuantile,
  studentTSf,
  summarize,
  thresholdProportionTest,
  twoProportionTest,
} from '../../worker/protocol/rules/rollout-stats';
import { unitPrng as prng } from '../../regional/sim/hash';


const T: RollbackThresholds = { error_rate_points: 1, p95_latency_pct: 20, p95_ttft_pct: 20, quality_pct: 5 };
const OPTS = { minSamples: 30, confidence: 0.95 };

interface ArmModel {
  errorRate?: number;
  latency?: number;
  ttft?: number;
  refusalRate?: number;
  truncRate?: number;
  tokens?: number;
  negRate?: number;
}

/** n samples of an arm with the given behaviour, with noise on every signal. */
function arm(rnd: () => number, n: number, m: ArmModel, feedbackN = 0): { samples: ArmSample[]; feedback: FeedbackSample[] } {
  const samples: ArmSample[] = [];
  for (let i = 0; i < n; i++) {
    const lat = (m.latency ?? 200) * (0.7 + 0.6 * rnd());
    samples.push({
      error: rnd() < (m.errorRate ?? 0.005),
      latencyMs: lat,
      ttftMs: (m.ttft ?? 50) * (0.7 + 0.6 * rnd()),
      truncated: rnd() < (m.truncRate ?? 0.02),
      refused: rnd() < (m.refusalRate ?? 0.01),
      outputTokens: Math.round((m.tokens ?? 40) * (0.5 + rnd())),
    });
  }
  const feedback: FeedbackSample[] = [];
  for (let i = 0; i < feedbackN; i++) feedback.push({ score: rnd() < (m.negRate ?? 0.1) ? -1 : 1 });
  return { samples, feedback };
}

function summaryOf(rnd: () => number, n: number, m: ArmModel, feedbackN = 0): ArmSummary {
  const a = arm(rnd, n, m, feedbackN);
  return summarize(a.samples, a.feedback);
}

describe('distributions and low-level tests (values cross-checked with scipy)', () => {
  it('percentile interpolates linearly (numpy default); empty → null', () => {
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95)).toBeCloseTo(9.55, 12);
    expect(percentile([10, 1, 5], 50)).toBe(5);
    expect(percentile([1, 2, 3, 4], 0)).toBe(1);
    expect(percentile([1, 2, 3, 4], 100)).toBe(4);
    expect(percentile([7], 95)).toBe(7);
    expect(percentile([], 95)).toBeNull();
    expect(percentile([Number.NaN, 3], 95)).toBe(3);
  });

  it('normal and t quantiles and tails', () => {
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963985, 8);
    expect(normalQuantile(0.01)).toBeCloseTo(-2.326347874, 8);
    expect(studentTSf(2, 10)).toBeCloseTo(0.036694017, 7);
    expect(studentTQuantile(0.975, 10)).toBeCloseTo(2.228138852, 7);
  });

  it('two-proportion z-test: 50/100 vs 65/100 → z 2.1456, p 0.0319 (two-sided), 0.0160 (one-sided), unpooled CI', () => {
    const r = twoProportionTest(50, 100, 65, 100, { alpha: 0.05 });
    expect(r.diff).toBeCloseTo(0.15, 12);
    expect(r.stat).toBeCloseTo(2.14559562, 6);
    expect(r.p_value).toBeCloseTo(0.0319053, 6);
    expect(r.ci?.[0]).toBeCloseTo(0.0145638, 6);
    expect(r.ci?.[1]).toBeCloseTo(0.2854362, 6);
    expect(twoProportionTest(50, 100, 65, 100, { alpha: 0.05, alternative: 'greater' }).p_value).toBeCloseTo(0.0159526, 6);
    expect(twoProportionTest(50, 100, 65, 100, { alpha: 0.05, alternative: 'less' }).p_value).toBeCloseTo(0.9840474, 6);
  });

  it('two-proportion: no samples or no variance → nulls, never NaN', () => {
    expect(twoProportionTest(0, 0, 5, 10, { alpha: 0.05 })).toEqual({ diff: null, stat: null, p_value: null, ci: null });
    expect(twoProportionTest(0, 50, 0, 50, { alpha: 0.05 })).toEqual({ diff: 0, stat: null, p_value: null, ci: null });
    // 0/50 vs 50/50: pooled variance > 0 (a p-value), unpooled = 0 (no interval).
    const r = twoProportionTest(0, 50, 50, 50, { alpha: 0.05 });
    expect(r.p_value).toBeLessThan(1e-10);
    expect(r.ci).toBeNull();
  });

  it('threshold test (Agresti–Caffo, H0: b − a ≤ delta): defined at 0% and 100%', () => {
    const all = thresholdProportionTest(0, 200, 10, 10, 0.01);
    expect(all.diff).toBe(1);
    expect(all.stat).toBeCloseTo(11.2801564, 6);
    expect(all.p_value).toBeLessThan(1e-20);
    expect(thresholdProportionTest(5, 1000, 24, 200, 0.01).p_value).toBeCloseTo(1.8648688e-6, 12);
    // Better than stable: nowhere near past the threshold.
    expect(thresholdProportionTest(20, 2000, 3, 200, 0.01).p_value).toBeGreaterThan(0.5);
    expect(thresholdProportionTest(0, 0, 1, 1, 0.01).p_value).toBeNull();
  });

  it("Welch's t-test from moments: [1..5] vs [2..7] → t 1.4412, df 8.99, p 0.1835, CI [−0.855, 3.855]", () => {
    const a = { n: 5, sum: 15, sumsq: 55 };
    const b = { n: 6, sum: 27, sumsq: 139 };
    const r = meanTest(a, b, { alpha: 0.05, test: 'fixed' });
    expect(r.diff).toBeCloseTo(1.5, 12);
    expect(r.stat).toBeCloseTo(1.44115338, 6);
    expect(r.p_value).toBeCloseTo(0.18345224, 6);
    expect(r.ci?.[0]).toBeCloseTo(-0.85495264, 5);
    expect(r.ci?.[1]).toBeCloseTo(3.85495264, 5);
    expect(meanTest({ n: 1, sum: 1, sumsq: 1 }, b, { alpha: 0.05, test: 'fixed' }).p_value).toBeNull();
    const flat = meanTest({ n: 3, sum: 1.5, sumsq: 0.75 }, { n: 3, sum: 1.5, sumsq: 0.75 }, { alpha: 0.05, test: 'sequential' });
    expect(flat.p_value).toBeNull();
    expect(flat.ci).toBeNull();
  });

  it('mSPRT: 500/1000 vs 580/1000 → Λ 100.59, always-valid p 0.00994, confidence sequence [0.0115, 0.1485]', () => {
    const r = sequentialProportionTest(500, 1000, 580, 1000, { alpha: 0.05 });
    expect(r.stat).toBeCloseTo(100.5897055, 5);
    expect(r.p_value).toBeCloseTo(0.00994138, 7);
    expect(r.ci?.[0]).toBeCloseTo(0.01154071, 7);
    expect(r.ci?.[1]).toBeCloseTo(0.14845929, 7);
    // The fixed test on the same counts is far more confident (p ≈ 0.0003): the price of peeking.
    expect(twoProportionTest(500, 1000, 580, 1000, { alpha: 0.05 }).p_value).toBeLessThan(0.001);
    // No difference → p = 1 (Λ < 1).
    expect(sequentialProportionTest(500, 1000, 500, 1000, { alpha: 0.05 }).p_value).toBe(1);
  });
});

describe('summarize', () => {
  it('counts errors in requests only; latency, refusal, truncation and length over answered samples; feedback split by metric', () => {
    const s = (o: Partial<ArmSample>): ArmSample => ({ error: false, latencyMs: 100, ttftMs: 10, truncated: false, refused: false, outputTokens: 10, ...o });
    const samples = [
      s({ error: true, latencyMs: 1, ttftMs: null, outputTokens: null, refused: true }),
      s({ latencyMs: 100, ttftMs: 10, outputTokens: 10 }),
      s({ latencyMs: 200, ttftMs: null, outputTokens: 20, refused: true }),
      s({ latencyMs: 300, ttftMs: 30, outputTokens: null, truncated: true }),
    ];
    const feedback: FeedbackSample[] = [
      { score: 1 },
      { score: -1 },
      { score: 0 },
      { score: 0.5 },
      { score: 0.8, metric: 'helpful' },
      { score: 0.4, metric: 'helpful' },
      { score: 1, metric: '__proto__' },
      { score: Number.NaN },
    ];
    const a = summarize(samples, feedback);
    expect(a).toMatchObject({
      requests: 4,
      errors: 1,
      error_rate: 0.25,
      answered: 3,
      latency_n: 3,
      ttft_n: 2,
      refusals: 1,
      refusal_rate: 1 / 3,
      truncations: 1,
      truncation_rate: 1 / 3,
      output_tokens_n: 2,
      output_tokens_sum: 30,
      output_tokens_sumsq: 500,
      mean_output_tokens: 15,
    });
    expect(a.p95_latency_ms).toBeCloseTo(290, 10);
    expect(a.p95_ttft_ms).toBeCloseTo(29, 10);
    expect(a.feedback).toEqual({ count: 4, positive: 2, negative: 1, negative_rate: 0.25, positive_rate: 0.5, mean_score: 0.125, sum: 0.5, sumsq: 2.25 });
    expect(a.metrics.helpful?.n).toBe(2);
    expect(a.metrics.helpful?.mean).toBeCloseTo(0.6, 12);
    expect(Object.hasOwn(a.metrics, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(a.metrics)).toBe(Object.prototype);
  });

  it('empty arm → zeros and nulls, JSON-safe', () => {
    const a = summarize([], []);
    expect(a.requests).toBe(0);
    expect(a.error_rate).toBeNull();
    expect(a.p95_latency_ms).toBeNull();
    expect(a.mean_output_tokens).toBeNull();
    expect(a.feedback.negative_rate).toBeNull();
    expect(JSON.parse(JSON.stringify(a))).toEqual(a);
  });
});

describe('compareArms (automatic rollback)', () => {
  it('insufficient until each arm has minSamples requests', () => {
    const rnd = prng(1);
    const c = compareArms(summaryOf(rnd, 500, {}), summaryOf(rnd, 29, { errorRate: 0.5 }), T, OPTS);
    expect(c.verdict).toBe('insufficient');
    expect(c.reasons[0]).toMatch(/candidate 29/);
    expect(c.checks.find((k) => k.signal === 'error_rate')?.worse).toBe(false);
  });

  it('equal arms with noise stay healthy (many seeds)', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const rnd = prng(seed);
      const c = compareArms(summaryOf(rnd, 2000, {}, 300), summaryOf(rnd, 200, {}, 30), T, OPTS);
      expect(c.verdict, `seed ${seed}: ${c.reasons.join('; ')}`).toBe('healthy');
      expect(c.checks.map((k) => k.signal)).toEqual([
        'error_rate',
        'p95_latency',
        'p95_ttft',
        'refusal_rate',
        'truncation_rate',
        'mean_output_tokens',
        'negative_feedback_rate',
      ]);
    }
  });

  it('an error-rate regression rolls back with a readable reason', () => {
    const rnd = prng(2);
    const stable = summaryOf(rnd, 2000, { errorRate: 0.005 });
    const cand = summaryOf(rnd, 200, { errorRate: 0.12 });
    const c = compareArms(stable, cand, T, OPTS);
    expect(c.verdict).toBe('rollback');
    const k = c.checks.find((x) => x.signal === 'error_rate');
    expect(k).toMatchObject({ worse: true, significant: true });
    expect(k?.p_value).toBeLessThan(0.001);
    expect(k?.limit).toBeCloseTo((stable.error_rate as number) + 0.01, 12);
    expect(c.reasons).toHaveLength(1);
    expect(c.reasons[0]).toMatch(/^error rate \d+\.\d% vs \d\.\d% \(\+\d+\.\d points > 1\)$/);
  });

  it('exact reason text on fixed counts', () => {
    const mk = (n: number, errors: number): ArmSample[] =>
      Array.from({ length: n }, (_, i) => ({ error: i < errors, latencyMs: 100, ttftMs: 10, truncated: false, refused: false, outputTokens: 20 }));
    const c = compareArms(summarize(mk(1000, 5), []), summarize(mk(200, 24), []), T, OPTS);
    expect(c.verdict).toBe('rollback');
    expect(c.reasons).toEqual(['error rate 12.0% vs 0.5% (+11.5 points > 1)']);
  });

  it('degenerate arms: every candidate request failing, or every answer of one fixed length, still compare', () => {
    const mk = (n: number, o: Partial<ArmSample>): ArmSample[] =>
      Array.from({ length: n }, () => ({ error: false, latencyMs: 100, ttftMs: 10, truncated: false, refused: false, outputTokens: 16, ...o }));
    const failing = compareArms(summarize(mk(200, {}), []), summarize(mk(10, { error: true }), []), T, { minSamples: 10, confidence: 0.95 });
    expect(failing.verdict).toBe('rollback');
    expect(failing.reasons).toEqual(['error rate 100.0% vs 0.0% (+100.0 points > 1)']);
    const short = compareArms(summarize(mk(200, {}), []), summarize(mk(30, { outputTokens: 5 }), []), T, OPTS);
    expect(short.verdict).toBe('rollback');
    expect(short.reasons).toEqual(['mean output length 5.0 vs 16.0 tokens (−69% > 5%)']);
    const same = compareArms(summarize(mk(200, {}), []), summarize(mk(30, {}), []), T, OPTS);
    expect(same.verdict).toBe('healthy');
    expect(same.checks.every((k) => !k.worse && !k.significant)).toBe(true);
  });

  it('all-or-nothing rates still test: every candidate request failing against none of stable rolls back', () => {
    const mk = (n: number, errors: number): ArmSample[] =>
      Array.from({ length: n }, (_, i) => ({ error: i < errors, latencyMs: 100, ttftMs: 10, truncated: false, refused: false, outputTokens: 20 }));
    const c = compareArms(summarize(mk(30, 0), []), summarize(mk(30, 30), []), T, OPTS);
    expect(c.verdict).toBe('rollback');
    expect(c.checks.find((x) => x.signal === 'error_rate')).toMatchObject({ worse: true, significant: true });
    // …and 0 of 30 against 0 of 30 is no evidence of anything.
    expect(compareArms(summarize(mk(30, 0), []), summarize(mk(30, 0), []), T, OPTS).verdict).toBe('healthy');
  });

  it('a latency or TTFT regression rolls back; p95 checks need minSamples values per arm', () => {
    const rnd = prng(3);
    const stable = summaryOf(rnd, 1000, {});
    const slow = compareArms(stable, summaryOf(rnd, 100, { latency: 300 }), T, OPTS);
    expect(slow.verdict).toBe('rollback');
    expect(slow.reasons.join()).toMatch(/^p95 latency \d+ ms vs \d+ ms \(\+\d+% > 20%\)$/);
    const ttft = compareArms(stable, summaryOf(rnd, 100, { ttft: 80 }), T, OPTS);
    expect(ttft.verdict).toBe('rollback');
    expect(ttft.reasons.join()).toMatch(/^p95 TTFT/);
    const k = ttft.checks.find((x) => x.signal === 'p95_ttft');
    expect(k?.p_value).toBeLessThan(0.001);
    // Only 20 TTFTs in the candidate: worse but not significant → healthy.
    const few = summaryOf(rnd, 100, { ttft: 80 });
    const c = compareArms(stable, { ...few, ttft_n: 20 }, T, OPTS);
    expect(c.checks.find((x) => x.signal === 'p95_ttft')).toMatchObject({ worse: true, significant: false });
    expect(c.verdict).toBe('healthy');
    // Worse by a hair (p95 just past the limit, few values above it): not significant either.
    const hair = compareArms(stable, summaryOf(rnd, 100, { ttft: 50 * 1.22 }), T, OPTS);
    expect(hair.verdict).toBe('healthy');
  });

  it('refusal and truncation regressions roll back; the 1-point floor keeps 0% vs a few refusals from tripping', () => {
    const rnd = prng(4);
    const stable = summaryOf(rnd, 2000, { refusalRate: 0, truncRate: 0.02 });
    const refusing = compareArms(stable, summaryOf(rnd, 200, { refusalRate: 0.2, truncRate: 0.02 }), T, OPTS);
    expect(refusing.verdict).toBe('rollback');
    expect(refusing.reasons.join()).toMatch(/^refusal rate \d+\.\d% vs 0\.0% \(\+\d+\.\d points > 1-point floor\)$/);
    const truncating = compareArms(stable, summaryOf(rnd, 200, { refusalRate: 0, truncRate: 0.3 }), T, OPTS);
    expect(truncating.verdict).toBe('rollback');
    expect(truncating.reasons.join()).toMatch(/^truncation rate \d+\.\d% vs \d\.\d% \(\+\d+\.\d points > 1-point floor\)$/);
    // 1 refusal in 200 (0.5%) vs 0 in 2000: infinitely worse relatively, but under the floor.
    const mk = (n: number, refused: number): ArmSample[] =>
      Array.from({ length: n }, (_, i) => ({ error: false, latencyMs: 100, ttftMs: 10, truncated: false, refused: i < refused, outputTokens: 20 }));
    const one = compareArms(summarize(mk(2000, 0), []), summarize(mk(200, 1), []), T, OPTS);
    expect(one.checks.find((k) => k.signal === 'refusal_rate')).toMatchObject({ stable: 0, candidate: 0.005, limit: 0.01, worse: false });
    expect(one.verdict).toBe('healthy');
  });

  it('shorter answers roll back (Welch, one-sided); a 3% drop under the 5% threshold does not', () => {
    const rnd = prng(5);
    const stable = summaryOf(rnd, 2000, { tokens: 40 });
    const short = compareArms(stable, summaryOf(rnd, 200, { tokens: 20 }), T, OPTS);
    expect(short.verdict).toBe('rollback');
    expect(short.reasons.join()).toMatch(/^mean output length \d+\.\d vs \d+\.\d tokens \(−\d+% > 5%\)$/);
    const k = short.checks.find((x) => x.signal === 'mean_output_tokens');
    expect(k?.p_value).toBeLessThan(1e-6);
    // 2000 vs 2000 samples, 3% shorter: significant maybe, but not past the threshold.
    const slight = compareArms(stable, summaryOf(rnd, 2000, { tokens: 38.8 }), T, OPTS);
    expect(slight.checks.find((x) => x.signal === 'mean_output_tokens')?.worse).toBe(false);
    expect(slight.verdict).toBe('healthy');
  });

  it('negative feedback: rolls back on a real rise, ignored below minSamples feedback per arm', () => {
    const rnd = prng(6);
    const stable = summaryOf(rnd, 2000, { negRate: 0.1 }, 500);
    const bad = compareArms(stable, summaryOf(rnd, 200, { negRate: 0.3 }, 100), T, OPTS);
    expect(bad.verdict).toBe('rollback');
    expect(bad.reasons.join()).toMatch(/^negative feedback rate/);
    const sparse = compareArms(stable, summaryOf(rnd, 200, { negRate: 1 }, 10), T, OPTS);
    expect(sparse.checks.find((x) => x.signal === 'negative_feedback_rate')).toMatchObject({ candidate: 1, worse: false });
    expect(sparse.verdict).toBe('healthy');
  });

  it('re-evaluated every 100 requests at a 5% canary with heavy-tailed latency: a good candidate is rarely rolled back, bad ones are', () => {
    // Log-normal latency (σ 0.5): p95s of a few dozen values are noisy; the binomial test absorbs it.
    const run = (seed: number, bad: { err?: number; lat?: number; ref?: number; tok?: number }): number => {
      const rnd = prng(seed);
      const draw = (b: typeof bad): ArmSample => {
        const z = Math.sqrt(-2 * Math.log(rnd() || 1e-12)) * Math.cos(2 * Math.PI * rnd());
        const lat = (b.lat ?? 1) * 200 * Math.exp(0.5 * z);
        return { error: rnd() < (b.err ?? 0.005), latencyMs: lat, ttftMs: lat / 4, truncated: rnd() < 0.02, refused: rnd() < (b.ref ?? 0.01), outputTokens: Math.round((b.tok ?? 1) * 40 * (0.5 + rnd())) };
      };
      const st: ArmSample[] = [];
      const ca: ArmSample[] = [];
      for (let k = 1; k <= 4000; k++) {
        if (rnd() < 0.05) ca.push(draw(bad));
        else st.push(draw({}));
        if (k % 100 === 0 && compareArms(summarize(st, []), summarize(ca, []), T, OPTS).verdict === 'rollback') return ca.length;
      }
      return -1;
    };
    const runs = 40;
    let falseRollbacks = 0;
    for (let seed = 1; seed <= runs; seed++) if (run(seed, {}) >= 0) falseRollbacks++;
    expect(falseRollbacks / runs).toBeLessThanOrEqual(0.05);
    for (const bad of [{ err: 0.2 }, { lat: 1.6 }, { ref: 0.15 }, { tok: 0.7 }]) {
      let caught = 0;
      for (let seed = 100; seed < 100 + runs / 2; seed++) if (run(seed, bad) >= 0) caught++;
      expect(caught, JSON.stringify(bad)).toBeGreaterThanOrEqual(runs / 2 - 1);
    }
  });

  it('a candidate that is better everywhere is healthy', () => {
    const rnd = prng(7);
    const c = compareArms(
      summaryOf(rnd, 1000, { errorRate: 0.05, latency: 300, refusalRate: 0.05 }, 200),
      summaryOf(rnd, 1000, { errorRate: 0.001, latency: 150, refusalRate: 0, tokens: 60, negRate: 0.02 }, 200),
      T,
      OPTS,
    );
    expect(c.verdict).toBe('healthy');
    expect(c.checks.filter((k) => k.worse)).toEqual([]);
  });
});

/** A summary carrying only positive-feedback counts (the A/B metric). */
function feedbackArm(n: number, positive: number): ArmSummary {
  return summarize([], [...Array.from({ length: positive }, () => ({ score: 1 })), ...Array.from({ length: n - positive }, () => ({ score: -1 }))]);
}

describe('abTest', () => {
  it('fixed two-proportion: numbers, CI and winner', () => {
    const r = abTest(feedbackArm(100, 50), feedbackArm(100, 65), { metric: 'positive_feedback', alpha: 0.05, test: 'fixed' });
    expect(r).toMatchObject({ metric: 'positive_feedback', test: 'fixed', stable: { n: 100, value: 0.5 }, candidate: { n: 100, value: 0.65 }, significant: true, winner: 'candidate' });
    expect(r.p_value).toBeCloseTo(0.0319053, 6);
    expect(r.ci?.[0]).toBeCloseTo(0.0145638, 6);
    const reversed = abTest(feedbackArm(100, 65), feedbackArm(100, 50), { metric: 'positive_feedback', alpha: 0.05, test: 'fixed' });
    expect(reversed.winner).toBe('stable');
    // Not significant at alpha 0.01 → no winner.
    expect(abTest(feedbackArm(100, 50), feedbackArm(100, 65), { metric: 'positive_feedback', alpha: 0.01, test: 'fixed' }).winner).toBeNull();
  });

  it('sequential: the same counts are not yet enough; 1000 per arm with 8 points is', () => {
    const small = abTest(feedbackArm(100, 50), feedbackArm(100, 65), { metric: 'positive_feedback', alpha: 0.05, test: 'sequential' });
    expect(small.significant).toBe(false);
    expect(small.winner).toBeNull();
    const big = abTest(feedbackArm(1000, 500), feedbackArm(1000, 580), { metric: 'positive_feedback', alpha: 0.05, test: 'sequential' });
    expect(big.p_value).toBeCloseTo(0.00994138, 7);
    expect(big.winner).toBe('candidate');
    // previous: running min p and intersected confidence sequence.
    const later = abTest(feedbackArm(100, 50), feedbackArm(100, 65), { metric: 'positive_feedback', alpha: 0.05, test: 'sequential', previous: big });
    expect(later.p_value).toBeCloseTo(0.00994138, 7);
    expect(later.ci?.[0]).toBeGreaterThanOrEqual(big.ci?.[0] as number);
    expect(later.ci?.[1]).toBeLessThanOrEqual(big.ci?.[1] as number);
  });

  it('custom metric: Welch on the metric means; absent metric and no feedback → nulls, no winner', () => {
    const fb = (xs: number[]): FeedbackSample[] => xs.map((score) => ({ score, metric: 'helpful' }));
    const a = summarize([], fb([0.1, 0.2, 0.3, 0.4, 0.5]));
    const b = summarize([], fb([0.2, 0.3, 0.4, 0.5, 0.6, 0.7]));
    const r = abTest(a, b, { metric: 'helpful', alpha: 0.05, test: 'fixed' });
    expect(r.stable).toEqual({ n: 5, value: expect.closeTo(0.3, 12) });
    expect(r.diff).toBeCloseTo(0.15, 12);
    expect(r.p_value).toBeCloseTo(0.18345224, 6);
    expect(r.winner).toBeNull();
    for (const test of ['fixed', 'sequential'] as const) {
      const none = abTest(summarize([], []), summarize([], []), { metric: 'helpful', alpha: 0.05, test });
      expect(none).toEqual({
        metric: 'helpful',
        test,
        alpha: 0.05,
        stable: { n: 0, value: null },
        candidate: { n: 0, value: null },
        diff: null,
        ci: null,
        p_value: null,
        significant: false,
        winner: null,
      });
      const pf = abTest(summarize([], []), summarize([], []), { metric: 'positive_feedback', alpha: 0.05, test });
      expect(pf.p_value).toBeNull();
      expect(abTest(a, b, { metric: 'toString', alpha: 0.05, test }).stable.n).toBe(0);
    }
  });
});

describe('simulation: peeking every 50 samples up to 2,000 per arm', () => {
  const ALPHA = 0.05;

  /** Share of experiments whose test reported p ≤ alpha at ANY look. */
  function peekingRejections(pStable: number, pCand: number, experiments: number, seed: number): { sequential: number; fixed: number } {
    const rnd = prng(seed);
    let seqHits = 0;
    let fixHits = 0;
    for (let e = 0; e < experiments; e++) {
      let xa = 0;
      let xb = 0;
      let seq = false;
      let fix = false;
      for (let n = 1; n <= 2000 && !(seq && fix); n++) {
        if (rnd() < pStable) xa++;
        if (rnd() < pCand) xb++;
        if (n % 50 !== 0) continue;
        if (!seq) seq = (sequentialProportionTest(xa, n, xb, n, { alpha: ALPHA }).p_value ?? 1) <= ALPHA;
        if (!fix) fix = (twoProportionTest(xa, n, xb, n, { alpha: ALPHA }).p_value ?? 1) <= ALPHA;
      }
      if (seq) seqHits++;
      if (fix) fixHits++;
    }
    return { sequential: seqHits / experiments, fixed: fixHits / experiments };
  }

  it('A/A, 2,000 experiments: sequential false positives ≤ alpha; the fixed test checked the same way is far above', () => {
    for (const [p, seed] of [
      [0.5, 11],
      [0.1, 12],
    ] as const) {
      const r = peekingRejections(p, p, 2000, seed);
      expect(r.sequential, `p=${p}`).toBeLessThanOrEqual(ALPHA + 0.01);
      expect(r.fixed, `p=${p}`).toBeGreaterThan(0.15);
    }
  });

  it('A/B 50% vs 58%: the sequential test finds the difference in most runs', () => {
    const r = peekingRejections(0.5, 0.58, 500, 13);
    expect(r.sequential).toBeGreaterThan(0.9);
  });

  it('custom metric (uniform 0..1 scores), 500 A/A experiments: sequential mean test ≤ alpha; a +0.05 shift is found', () => {
    const run = (shift: number, experiments: number, seed: number): number => {
      const rnd = prng(seed);
      let hits = 0;
      for (let e = 0; e < experiments; e++) {
        const a = { n: 0, sum: 0, sumsq: 0 };
        const b = { n: 0, sum: 0, sumsq: 0 };
        for (let n = 1; n <= 2000; n++) {
          const x = rnd();
          const y = Math.min(1, rnd() + shift);
          a.n++;
          a.sum += x;
          a.sumsq += x * x;
          b.n++;
          b.sum += y;
          b.sumsq += y * y;
          if (n % 50 === 0 && (meanTest(a, b, { alpha: ALPHA, test: 'sequential' }).p_value ?? 1) <= ALPHA) {
            hits++;
            break;
          }
        }
      }
      return hits / experiments;
    };
    expect(run(0, 500, 21)).toBeLessThanOrEqual(ALPHA + 0.01);
    expect(run(0.05, 200, 22)).toBeGreaterThan(0.9);
  });
});
