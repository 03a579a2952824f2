// The wire contract of RequestStore (durable-objects/request-store.ts): a tenant's async jobs
// (Prefer: respond-async, worker/async/) and its Idempotency-Key records (worker/idempotency/).

import type { KeyRecord } from './keys';

export type JobStatus = 'queued' | 'in_progress' | 'completed' | 'failed';

/** What a job runs: the tenant's key (as it was looked up), the endpoint and the validated body. */
export interface JobRequest {
  endpoint: 'chat' | 'completions' | 'embeddings' | 'responses';
  body: string;
  key: KeyRecord;
  /** A webhook target's name from [async].webhooks.<tenant> (never a URL from the client). */
  webhook: string | null;
  feature: string | null;
  user: string | null;
}

export interface NewJob extends JobRequest {
  id: string;
  created_at_ms: number;
  expires_at_ms: number;
  /** Why it was queued: the client asked (respond-async) or every candidate was at capacity. */
  reason: 'requested' | 'overload';
}

/** GET /v1/async/{id}: the job, and its answer once done (status code and body as the sync call's). */
export interface JobView {
  id: string;
  object: 'async.job';
  status: JobStatus;
  endpoint: string;
  reason: 'requested' | 'overload';
  created_at: number;
  started_at: number | null;
  completed_at: number | null;
  expires_at: number;
  attempts: number;
  webhook: string | null;
  response: { status_code: number; body: unknown } | null;
}

/** One tenant's async queue (RequestStore.queueStats); summed by worker/async/queue-report.ts. */
export interface AsyncQueueStats {
  /** Jobs waiting for a delivery (new, or handed back after a retryable failure). */
  queued: number;
  /** Jobs a delivery holds now. */
  running: number;
  /** Epoch ms of the oldest job not yet done (queued or running); null when none. */
  oldest_created_at: number | null;
  /** Jobs kept (within [async].ttl_seconds) that failed, for any reason. */
  failed: number;
  /** Of those, the dead letters: a retryable failure after the last of [async].max_retries. */
  dead_letters_kept: number;
  /** Counters since the object was created (they outlive the jobs). */
  retries: number;
  dead_letters: number;
  jobs_done: number;
}

export type ClaimJob = { state: 'run'; request: JobRequest; attempts: number } | { state: 'done' | 'gone' | 'busy' };

/** Idempotency-Key: what the first request with a key left, or that it is still running. */
export type IdemBegin =
  | { state: 'new' }
  | { state: 'replay'; status: number; headers: [string, string][]; body: string }
  | { state: 'mismatch' }
  | { state: 'in_progress'; retry_after_s: number }
  | { state: 'unavailable' };

export interface IdemResult {
  status: number;
  headers: [string, string][];
  /** null: the answer was larger than [idempotency].max_response_bytes (a retry gets 409, never a second run). */
  body: string | null;
}
