import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GoldenError, parseGolden } from '../../scripts/regress/golden';

const line = (o: unknown) => JSON.stringify(o);
const many = (n: number, extra: Record<string, unknown> = {}) => Array.from({ length: n }, (_, i) => line({ input: `question ${i}`, expected: `answer ${i}`, ...extra })).join('\n');

function problems(text: string, opts = {}): string[] {
  try {
    parseGolden(text, 'g.jsonl', opts);
  } catch (e) {
    if (e instanceof GoldenError) return e.problems;
    throw e;
  }
  return [];
}

describe('golden set reader', () => {
  it('reads cases with their defaults: embedding at 0.9, exact at 1, string input as one user message', () => {
    const text = [
      line({ input: 'How do I reset my password?', expected: 'Use the reset link.' }),
      '',
      line({ id: 'refund', input: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Refund?' }], expected: 'Yes.', metric: 'exact' }),
      line({ input: 'Hours?', expected: '9 to 5', metric: 'rouge_l', threshold: 0.5 }),
    ].join('\n');
    const cases = parseGolden(text, 'g.jsonl', { minCases: 1 });
    expect(cases).toEqual([
      { id: 'line 1', line: 1, messages: [{ role: 'user', content: 'How do I reset my password?' }], expected: 'Use the reset link.', metric: 'embedding', threshold: 0.9 },
      { id: 'refund', line: 3, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Refund?' }], expected: 'Yes.', metric: 'exact', threshold: 1 },
      { id: 'line 4', line: 4, messages: [{ role: 'user', content: 'Hours?' }], expected: '9 to 5', metric: 'rouge_l', threshold: 0.5 },
    ]);
  });

  it('reports every bad line with its number, at once', () => {
    const text = [
      line({ input: 'ok', expected: 'ok' }),
      '{"input": "broken", ',
      line({ input: 'x', expected: 'y', metric: 'bleu' }),
      line({ input: 'x', expected: 'y', treshold: 0.5 }),
      line({ input: 'x' }),
      line({ input: '', expected: 'y' }),
      line({ input: [{ role: 'robot', content: 'hi' }], expected: 'y' }),
      line({ input: 'x', expected: 'y', threshold: 1.5 }),
      line({ id: 'a', input: 'x', expected: 'y' }),
      line({ id: 'a', input: 'x', expected: 'y' }),
      '[1, 2]',
    ].join('\r\n');
    const p = problems(text, { minCases: 1 });
    expect(p[0]).toMatch(/^line 2: not JSON/);
    expect(p.some((s) => /^line 3: metric: /.test(s))).toBe(true);
    expect(p.some((s) => /^line 4: .*treshold/.test(s))).toBe(true);
    expect(p.some((s) => /^line 5: expected: /.test(s))).toBe(true);
    expect(p).toContain('line 6: input: input must not be empty');
    expect(p.some((s) => /^line 7: input/.test(s))).toBe(true);
    expect(p.some((s) => /^line 8: threshold: /.test(s))).toBe(true);
    expect(p).toContain('line 10: id "a" already used on line 9');
    expect(p.some((s) => /^line 11: /.test(s))).toBe(true);
    expect(p.every((s) => !/^line (1|9):/.test(s))).toBe(true);
    // The thrown message names the file and the problems.
    expect(() => parseGolden(text, 'g.jsonl', { minCases: 1 })).toThrow(/^g\.jsonl: \d+ problems\n {2}line 2: not JSON/);
  });

  it('holds 100 to 1,000 cases unless told otherwise', () => {
    expect(problems(many(99))).toEqual(['99 cases; a golden set holds 100 to 1000 (--min-cases lowers the floor for a small test set)']);
    expect(problems(many(100))).toEqual([]);
    expect(problems(many(1_000))).toEqual([]);
    expect(problems(many(1_001))[0]).toMatch(/^1001 cases; a golden set holds 100 to 1000/);
    expect(problems(many(3), { minCases: 3 })).toEqual([]);
  });

  it('make-golden inputs may omit expected', () => {
    expect(parseGolden(line({ input: 'q' }), 'in.jsonl', { minCases: 1, requireExpected: false })[0]!.expected).toBe('');
  });

  it('the example set test/golden/support-bot.jsonl is valid and mixes the three metrics', () => {
    const cases = parseGolden(readFileSync('test/golden/support-bot.jsonl', 'utf8'), 'support-bot.jsonl');
    expect(cases.length).toBeGreaterThanOrEqual(100);
    for (const m of ['exact', 'rouge_l', 'embedding'] as const) expect(cases.filter((c) => c.metric === m).length, m).toBeGreaterThanOrEqual(20);
    expect(cases.every((c) => c.expected.length > 0)).toBe(true);
  });
});
