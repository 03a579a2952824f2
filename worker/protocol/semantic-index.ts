// The wire contract of SemanticIndex (durable-objects/semantic-index.ts): lookups and entries
// the semantic cache (worker/cache/semantic/) sends and what it answers.

import type { GuardReason } from './rules/semantic-guard';

export interface SemanticLookup {
  /** Everything but the embedded text, hashed (and the embedder's id): only rows of the same scope are compared. */
  scope: string;
  vector: Float32Array;
  /** The text and depth of the prompt being answered, for the guards. */
  text: string;
  depth: number;
  /** Cosine similarity a row must reach. */
  minSimilarity: number;
  /** How many of the nearest rows above minSimilarity are offered to the guards. */
  topK: number;
  now?: number;
}

export interface SemanticMatch {
  id: string;
  similarity: number;
  /** The stored prompt's text (for logs and tests). */
  text: string;
  /** The stored answer (a serialized CachedAnswer). */
  answer: string;
  storedAt: number;
}

export interface SemanticLookupResult {
  match: SemanticMatch | null;
  /** Rows of the scope that reached the threshold, and why the guards refused the ones they did. */
  above: number;
  refused: GuardReason[];
}

export interface SemanticEntry {
  id: string;
  scope: string;
  vector: Float32Array;
  text: string;
  depth: number;
  answer: string;
  ttlSeconds: number;
  maxEntries: number;
  now?: number;
}
