// PLACEHOLDER written by the lead so the tree compiles while the complexity scorer is being
// written: the helper who owns this file replaces it entirely.
import type { ChatRequest, CompletionRequest } from '../openai/schemas';

export interface ComplexityResult {
  score: number;
  promptTokens: number;
  signals: Record<string, number>;
}

export function scoreComplexity(_body: ChatRequest | CompletionRequest): ComplexityResult {
  return { score: 0, promptTokens: 0, signals: {} };
}

export function tierForScore(thresholds: ReadonlyArray<{ tier: string; min_complexity: number }>, score: number): string {
  let best = thresholds[0]!;
  for (const t of thresholds) if (t.min_complexity <= score && t.min_complexity > best.min_complexity) best = t;
  return best.tier;
}
