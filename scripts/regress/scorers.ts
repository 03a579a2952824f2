/**
 * How an answer is compared with the expected one. Every score is in [0, 1], 1 = the same.
 *
 * - exact: the same text once whitespace is normalized (runs collapsed, ends trimmed); 1 or 0.
 * - rouge_l: ROUGE-L F1 (β = 1) over lower-cased word tokens, the whole answer as one sequence
 *   (sentence-level LCS). The LCS comes from `js-rouge` (promptfoo's maintained fork of the classic
 *   JS implementation); we pass our own tokenizer, and one segment per text so it does not
 *   split into sentences (its default is ROUGE-L summary-level), and handle empty texts it refuses.
 * - embedding: cosine similarity of the two texts' embeddings (from the router's /v1/embeddings),
 *   clamped to [0, 1].
 */
import { l as rougeLScore } from 'js-rouge';

export function normalizeWhitespace(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

export function exactMatch(got: string, expected: string): number {
  return normalizeWhitespace(got) === normalizeWhitespace(expected) ? 1 : 0;
}

/** Lower-cased runs of letters and digits: punctuation and case do not count against an answer. */
export function tokens(s: string): string[] {
  return s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

export function rougeL(got: string, expected: string): number {
  const a = tokens(got);
  const b = tokens(expected);
  if (a.length === 0 || b.length === 0) return a.length === b.length ? 1 : 0;
  // js-rouge tokenizes again with our tokenizer; joining with spaces round-trips exactly.
  return rougeLScore(a.join(' '), b.join(' '), { tokenizer: tokens, segmenter: (s) => [s] });
}

export function cosine(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) throw new Error(`embedding sizes differ (${a.length} vs ${b.length})`);
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  if (na === 0 || nb === 0) return na === nb ? 1 : 0;
  return Math.min(1, Math.max(0, dot / Math.sqrt(na * nb)));
}

/** A short word-level diff of got vs expected: the first place they part and a few words each side. */
export function shortDiff(got: string, expected: string, width = 60): string {
  const g = normalizeWhitespace(got);
  const e = normalizeWhitespace(expected);
  if (g === e) return '(same)';
  let i = 0;
  while (i < g.length && i < e.length && g[i] === e[i]) i++;
  const from = Math.max(0, i - 12);
  const cut = (s: string) => (from > 0 ? '…' : '') + (s.length - from > width ? `${s.slice(from, from + width)}…` : s.slice(from));
  return `-${JSON.stringify(cut(e))} +${JSON.stringify(cut(g))}`;
}
