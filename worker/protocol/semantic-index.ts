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
  /** Also return the match's vector and expiry (an isolate's local copy imports it: worker/cache/semantic/local-copy.ts). */
  withEntry?: boolean;
}

export interface SemanticMatch {
  id: string;
  similarity: number;
  /** The stored prompt's text (for logs and tests). */
  text: string;
  /** The stored answer (a serialized CachedAnswer). */
  answer: string;
  storedAt: number;
  /** With `withEntry`: what an isolate's local copy needs to answer from it. */
  entry?: SemanticHotEntry;
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

/**
 * An isolate's background refresh of its local copy (SemanticIndex.hottest): the entries stored or
 * used since the isolate's cursor, most recent first, unexpired, within `limit` and `maxBytes`.
 * `touched`: ids the isolate answered from its copy since its last refresh (they count as used, for
 * the object's eviction order and for other isolates' refreshes).
 */
export interface SemanticHotRequest {
  after: number;
  limit: number;
  maxBytes: number;
  touched?: string[];
  now?: number;
}

export interface SemanticHotEntry {
  id: string;
  scope: string;
  vector: Float32Array;
  text: string;
  depth: number;
  answer: string;
  storedAt: number;
  expiresAt: number;
}

export interface SemanticHotResult {
  /** The object's sequence number now: the next refresh's `after`. */
  cursor: number;
  entries: SemanticHotEntry[];
  /** Rows changed since `after` that were left out (beyond limit or maxBytes): the colder ones. */
  skipped: number;
  /** Unexpired rows the object holds (all scopes): more than a copy holds means the copy lacks some (local-index.ts asks the object on a miss only then). */
  live: number;
}
