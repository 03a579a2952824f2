// The wire contract of UsageLedger (durable-objects/usage-ledger.ts): the report queries
// /admin/usage sends and the groups it answers. Records are worker/protocol/usage-record.ts.

import type { UsageRecord } from './usage-record';

/** Columns a report may group by; also the ledger's column names (never interpolated from input otherwise). */
export const GROUP_COLUMNS = [
  'tenant', 'feature', 'model', 'backend', 'region', 'tier', 'key_id', 'user', 'endpoint', 'client_request_id',
  'deployment', 'deployment_version', 'finish_reason', 'batch_id',
] as const;
export type GroupColumn = (typeof GROUP_COLUMNS)[number];

export interface LedgerQuery {
  from: number;
  to: number;
  groupBy: readonly GroupColumn[];
  /** Bucket width in ms (hour or day), or null for one bucket over the whole range. */
  bucketMs: number | null;
}

export interface LedgerGroup {
  keys: Record<string, string | null>;
  /** Start of the bucket (epoch ms), or null. */
  bucket: number | null;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: number;
  saved_usd: number;
  errors: number;
  /** Requests answered from the cache (exact or semantic hits). */
  cache_hits: number;
  costs: number[];
  latencies: number[];
  /** TTFT of the group's records that have one (streams that produced a first token). */
  ttfts: number[];
  /** Served answers that were judged (usage record `refused` not null): the base of the quality rates. */
  answered: number;
  refusals: number;
  /** Answered requests whose finish_reason was "length". */
  truncations: number;
  /** completion_tokens of each answered request (for the output length mean and percentiles). */
  output_tokens: number[];
  /** Default feedback (no custom metric) on the group's requests: count, score > 0, score < 0, sum of scores. */
  feedback: number;
  feedback_positive: number;
  feedback_negative: number;
  feedback_score_sum: number;
  /** Feedback with a custom metric name. */
  feedback_custom: number;
}

// ------------------------------------------------------------------ feedback (POST /v1/feedback)

/** What the feedback route asks the tenant's ledger to store. */
export interface FeedbackWrite {
  /** The router's request id, or the client's own x-request-id when it names exactly one request of the tenant. */
  request_id: string;
  /** 1, -1, or a number in [0, 1]. */
  score: number;
  /** A custom metric's name; null for the default score. */
  metric: string | null;
  /** The comment, only when the tenant opted in (store_feedback_comments); otherwise null. */
  comment: string | null;
  /** The comment's length in characters (kept whether or not the text is); null without a comment. */
  comment_length: number | null;
  key_id: string | null;
  /** Arrival of the feedback (epoch ms). */
  ts: number;
  /** How long to wait for a record not written yet (records are batched per isolate). */
  wait_ms: number;
}

export interface StoredFeedback {
  request_id: string;
  ts: number;
  score: number;
  metric: string | null;
  comment_length: number | null;
  comment: string | null;
}

export type FeedbackResult =
  | { status: 'not_found' }
  | { status: 'ambiguous'; matches: number }
  | { status: 'created' | 'replaced'; feedback: StoredFeedback; record: UsageRecord };
