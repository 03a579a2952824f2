// The wire contract of UsageLedger (durable-objects/usage-ledger.ts): the report queries
// /admin/usage sends and the groups it answers. Records are worker/protocol/usage-record.ts.

/** Columns a report may group by; also the ledger's column names (never interpolated from input otherwise). */
export const GROUP_COLUMNS = ['tenant', 'feature', 'model', 'backend', 'region', 'tier', 'key_id', 'user', 'endpoint', 'client_request_id', 'batch_id'] as const;
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
}
