/**
 * The learned complexity scorer (issue 15): two logistic regressions over the hand-built features
 * of complexity.ts plus hashed word unigrams and bigrams of the last user message, trained by
 * scripts/complexity/train.ts on the tuning half of test/fixtures/complexity-corpus.json and
 * shipped as complexity-model.json. Ordinal: p_balanced = P(needs balanced or better),
 * p_advanced = P(needs advanced). Pure and cheap: the features plus one hash per word.
 *
 * Risk-aware decision: under-serving costs more than over-serving, so a tier is chosen when its
 * probability reaches 0.5 - margin ([routing].complexity_margin): near a boundary, route up.
 */
import type { ChatRequest, CompletionRequest } from '../openai/schemas';
import { complexityFeatures, type ComplexityFeature } from './complexity';
import model from './complexity-model.json';

export interface LearnedModel {
  version: number;
  /** Hashed n-gram buckets (a power of two). */
  buckets: number;
  /** Hand-built feature names, in weight order. */
  features: ComplexityFeature[];
  /** [bias, ...features, ...buckets] per head. */
  balanced: number[];
  advanced: number[];
}

const MODEL = model as LearnedModel;
/** Words of the last user message read for n-grams (the instruction is at its start, mostly). */
const NGRAM_CHARS = 2_000;

/** The model's input: hand-built features, then the L2-normalised hashed n-gram counts. */
export function learnedInput(body: ChatRequest | CompletionRequest, buckets = MODEL.buckets, names = MODEL.features): { x: Float64Array; promptTokens: number } {
  const { features, promptTokens } = complexityFeatures(body);
  const x = new Float64Array(names.length + buckets);
  names.forEach((n, i) => (x[i] = features[n]));
  const text = lastUserText(body);
  let prev = '';
  const counts = x.subarray(names.length);
  for (const m of text.slice(0, NGRAM_CHARS).toLowerCase().matchAll(/[\p{L}\p{N}]+/gu)) {
    const w = m[0];
    counts[fnv(`u:${w}`) & (buckets - 1)]! += 1;
    if (prev) counts[fnv(`b:${prev} ${w}`) & (buckets - 1)]! += 1;
    prev = w;
  }
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += counts[i]! * counts[i]!;
  if (n > 0) {
    const inv = 1 / Math.sqrt(n);
    for (let i = 0; i < counts.length; i++) counts[i]! *= inv;
  }
  return { x, promptTokens };
}

export function sigmoid(z: number): number {
  return 1 / (1 + Math.exp(-z));
}

export function predict(w: readonly number[], x: Float64Array): number {
  let z = w[0]!;
  for (let i = 0; i < x.length; i++) if (x[i] !== 0) z += w[i + 1]! * x[i]!;
  return sigmoid(z);
}

export interface LearnedResult {
  pBalanced: number;
  pAdvanced: number;
  promptTokens: number;
}

export function learnedComplexity(body: ChatRequest | CompletionRequest, m: LearnedModel = MODEL): LearnedResult {
  const { x, promptTokens } = learnedInput(body, m.buckets, m.features);
  const pAdvanced = predict(m.advanced, x);
  // The heads are fitted apart: keep them ordered (needing advanced implies needing balanced).
  const pBalanced = Math.max(predict(m.balanced, x), pAdvanced);
  return { pBalanced, pAdvanced, promptTokens };
}

/** The tier by probability, routing up near a boundary: a tier once its probability ≥ 0.5 - margin. */
export function learnedTier(r: Pick<LearnedResult, 'pBalanced' | 'pAdvanced'>, margin: number, offsets: readonly [number, number] = [0, 0]): 'fast' | 'balanced' | 'advanced' {
  // offsets (quality-feedback.ts): the balanced and advanced boundaries lowered further, per tenant.
  const cut = 0.5 - margin;
  if (r.pAdvanced >= cut - offsets[1]) return 'advanced';
  if (r.pBalanced >= cut - offsets[0]) return 'balanced';
  return 'fast';
}

export function lastUserText(body: ChatRequest | CompletionRequest): string {
  const messages = (body as { messages?: ChatRequest['messages'] }).messages;
  if (!Array.isArray(messages)) {
    const p = (body as CompletionRequest).prompt;
    return typeof p === 'string' ? p : Array.isArray(p) && typeof p[0] === 'string' ? (p as string[]).join('\n') : '';
  }
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.role !== 'user') continue;
    if (typeof m.content === 'string') return m.content;
    if (Array.isArray(m.content)) return m.content.map((p) => ((p as { text?: unknown }).text as string) ?? '').join('\n');
    return '';
  }
  return '';
}

function fnv(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
