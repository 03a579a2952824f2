import { describe, expect, it } from 'vitest';
import type { GoldenCase, Metric } from '../../scripts/regress/golden';
import { failuresTable, totalsTable, verdictLine } from '../../scripts/regress/report';
import { decide, DEFAULT_GATE, summarize, type CaseResult } from '../../scripts/regress/verdict';

function result(i: number, metric: Metric, score: number, error: string | null = null): CaseResult {
  const threshold = metric === 'exact' ? 1 : 0.9;
  const c: GoldenCase = { id: `case-${i}`, line: i + 1, messages: [{ role: 'user', content: `q${i}` }], expected: `expected answer ${i}`, metric, threshold };
  // As run.ts scores them: a failed request scores 0.
  if (error) score = 0;
  return { case: c, got: error ? null : `got answer ${i}`, error, score, passed: error === null && score >= threshold };
}

describe('gate totals', () => {
  it('means per metric over that metric’s cases, overall over every case', () => {
    const s = summarize('v2', [result(0, 'exact', 1), result(1, 'exact', 0), result(2, 'rouge_l', 0.5), result(3, 'embedding', 0.9), result(4, 'embedding', 0.8, 'HTTP 500')]);
    expect(s.cases).toBe(5);
    expect(s.exact_match).toBe(0.5);
    expect(s.rouge_l).toBe(0.5);
    expect(s.embedding).toBeCloseTo(0.45, 12);
    expect(s.mean_similarity).toBeCloseTo((1 + 0 + 0.5 + 0.9 + 0) / 5, 12);
    expect(s.failures).toBe(3); // exact 0, rouge 0.5, and the error
    expect(s.errors).toBe(1);
    expect(s.pass_rate).toBeCloseTo(2 / 5, 12);
    expect(summarize('v', [result(0, 'exact', 1)]).rouge_l).toBeNull();
  });
});

describe('gate verdict', () => {
  const run = (version: string, scores: Record<Metric, number>) =>
    summarize(version, [
      ...Array.from({ length: 4 }, (_, i) => result(i, 'exact', scores.exact)),
      ...Array.from({ length: 4 }, (_, i) => result(10 + i, 'rouge_l', scores.rouge_l)),
      ...Array.from({ length: 4 }, (_, i) => result(20 + i, 'embedding', scores.embedding)),
    ]);

  it('passes at or above the mean similarity floor with nothing regressed', () => {
    const v = decide(run('v2', { exact: 1, rouge_l: 0.9, embedding: 0.95 }), run('v1', { exact: 1, rouge_l: 0.9, embedding: 0.95 }), DEFAULT_GATE);
    expect(v).toEqual({ passed: true, reasons: [], vs_stable: { mean_similarity: 0, exact_match: 0, rouge_l: 0, embedding: 0 } });
  });

  it('fails below the floor', () => {
    const v = decide(run('v2', { exact: 1, rouge_l: 0.7, embedding: 0.9 }), null, DEFAULT_GATE);
    expect(v.passed).toBe(false);
    expect(v.reasons).toEqual(['mean similarity 0.867 < 0.900']);
    // A lower floor from the flags or [gate] lets it pass.
    expect(decide(run('v2', { exact: 1, rouge_l: 0.7, embedding: 0.9 }), null, { ...DEFAULT_GATE, minMeanSimilarity: 0.85 }).passed).toBe(true);
  });

  it('fails a metric worse than stable by more than max_regression (relative), even above the floor', () => {
    const stable = run('v1', { exact: 1, rouge_l: 1, embedding: 1 });
    // rouge_l 0.94 is 6% worse than 1.0; mean 0.98 still above 0.9.
    const v = decide(run('v2', { exact: 1, rouge_l: 0.94, embedding: 1 }), stable, DEFAULT_GATE);
    expect(v.passed).toBe(false);
    expect(v.reasons).toEqual(['rouge_l 0.940 is 6.0% worse than stable\'s 1.000 (max 5.0%)']);
    expect(v.vs_stable.rouge_l).toBeCloseTo(-0.06, 12);
    // 4% worse is within the 5% allowed.
    expect(decide(run('v2', { exact: 1, rouge_l: 0.96, embedding: 1 }), stable, DEFAULT_GATE).passed).toBe(true);
    // Better than stable never fails.
    expect(decide(run('v2', { exact: 1, rouge_l: 1, embedding: 1 }), run('v1', { exact: 0.5, rouge_l: 0.9, embedding: 0.95 }), DEFAULT_GATE).passed).toBe(true);
  });

  it('a stable run with nothing to regress from (0) or a metric absent on one side is not compared', () => {
    const v = decide(run('v2', { exact: 0, rouge_l: 1, embedding: 1 }), run('v1', { exact: 0, rouge_l: 1, embedding: 1 }), { minMeanSimilarity: 0, maxRegression: 0.05 });
    expect(v.passed).toBe(true);
    expect(v.vs_stable.exact_match).toBeUndefined();
  });

  it('an empty run fails', () => {
    expect(decide(summarize('v2', []), null, DEFAULT_GATE).reasons).toContain('no case was run');
  });

  it('prints failures, totals with the change vs stable, and the verdict', () => {
    const results = [result(0, 'exact', 0), result(1, 'rouge_l', 1), result(2, 'embedding', 0.5, 'HTTP 503 overloaded')];
    const cand = summarize('v2', results);
    const stable = summarize('v1', [result(0, 'exact', 1), result(1, 'rouge_l', 1), result(2, 'embedding', 1)]);
    const verdict = decide(cand, stable, DEFAULT_GATE);
    const failures = failuresTable(results, 'v2');
    expect(failures).toMatch(/^Failing cases for v2 \(2 of 3\):/);
    expect(failures).toContain('case-0');
    expect(failures).toContain('error: HTTP 503 overloaded');
    expect(failures).not.toContain('case-1 ');
    const totals = totalsTable(cand, stable, verdict);
    expect(totals.split('\n')[0]).toMatch(/^figure\s+cases\s+v2\s+v1 \(stable\)\s+vs stable$/);
    expect(totals).toMatch(/exact_match\s+1\s+0\.000\s+1\.000\s+-100\.0%/);
    expect(totals).toMatch(/pass rate\s+3\s+33\.3%\s+100\.0%/);
    expect(verdictLine('v2', verdict)).toMatch(/^FAIL: v2 fails the gate:\n {2}- mean similarity 0\.333 < 0\.900/);
    expect(verdictLine('v1', decide(stable, null, DEFAULT_GATE))).toBe('PASS: v1 passes the gate.');
  });
});
