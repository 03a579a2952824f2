import { describe, expect, it } from 'vitest';
import { cosine, exactMatch, normalizeWhitespace, rougeL, shortDiff, tokens } from '../../scripts/regress/scorers';

// The gate's scorers on values worked out by hand.

describe('exact match', () => {
  it('ignores runs of whitespace and the ends, nothing else', () => {
    expect(normalizeWhitespace('  a \n\t b  ')).toBe('a b');
    expect(exactMatch('Reset it  from\nSettings. ', 'Reset it from Settings.')).toBe(1);
    expect(exactMatch('Reset it from settings.', 'Reset it from Settings.')).toBe(0); // case counts
    expect(exactMatch('Reset it from Settings', 'Reset it from Settings.')).toBe(0); // punctuation counts
    expect(exactMatch('', '')).toBe(1);
  });
});

describe('ROUGE-L F1', () => {
  it('is 1 for the same words whatever the case and punctuation', () => {
    expect(tokens("Hello, World! It's 42.")).toEqual(['hello', 'world', 'it', 's', '42']);
    expect(rougeL('Hello, world!', 'hello world')).toBe(1);
  });

  it('is the F1 of LCS precision and recall over tokens', () => {
    // LCS("the cat sat", "the cat sat on the mat") = 3: P = 3/3, R = 3/6, F1 = 2PR/(P+R) = 2/3.
    expect(rougeL('the cat sat', 'the cat sat on the mat')).toBeCloseTo(2 / 3, 12);
    // Symmetric in F1: swapping answer and reference swaps P and R.
    expect(rougeL('the cat sat on the mat', 'the cat sat')).toBeCloseTo(2 / 3, 12);
    // Order matters (a subsequence, not a bag of words): LCS(a b c d, a c b d) = 3 → 3/4.
    expect(rougeL('a b c d', 'a c b d')).toBeCloseTo(0.75, 12);
    // One sequence, not sentence by sentence: LCS(w x. y z, w y x z) = 3 (w x z or w y z) → 3/4.
    expect(rougeL('w x. y z.', 'w y x z')).toBeCloseTo(0.75, 12);
    // Nothing in common.
    expect(rougeL('alpha beta', 'gamma delta')).toBe(0);
  });

  it('handles empty answers (which the library refuses)', () => {
    expect(rougeL('', 'something')).toBe(0);
    expect(rougeL('...', 'something')).toBe(0);
    expect(rougeL('something', '')).toBe(0);
    expect(rougeL('', '!')).toBe(1);
  });
});

describe('cosine similarity', () => {
  it('on known vectors', () => {
    expect(cosine([1, 2, 3], [2, 4, 6])).toBeCloseTo(1, 12);
    expect(cosine([1, 0], [0, 1])).toBe(0);
    expect(cosine([1, 1], [1, 0])).toBeCloseTo(Math.SQRT1_2, 12);
    expect(cosine([1, 0], [-1, 0])).toBe(0); // opposite: clamped to 0, a score not a correlation
    expect(cosine([0, 0], [0, 0])).toBe(1); // two empty texts
    expect(cosine([0, 0], [1, 0])).toBe(0);
    expect(() => cosine([1], [1, 2])).toThrow(/sizes differ/);
  });
});

describe('short diff', () => {
  it('shows where the answers part', () => {
    expect(shortDiff('same  text', 'same text')).toBe('(same)');
    const d = shortDiff('Open Settings, then Privacy and reset the password there.', 'Open Settings, then Account and reset the password there.');
    expect(d).toMatch(/^-".*then Account.*" \+".*then Privacy.*"$/);
    expect(shortDiff('x'.repeat(500), 'y'.repeat(500)).length).toBeLessThan(140);
  });
});
