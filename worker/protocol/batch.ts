// The wire contract of BatchStore (durable-objects/batch-store.ts): OpenAI's batch object as the
// object keeps it, the batch queue's message, and the per-line ledger's answers. README "Batch and async".

import type { KeyLimits } from '../config/limits';

export const BATCH_STATUSES = ['validating', 'failed', 'in_progress', 'finalizing', 'completed', 'expired', 'cancelling', 'cancelled'] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

/** The endpoints a batch may name (those this router serves). */
export const BATCH_ENDPOINTS = { '/v1/chat/completions': 'chat', '/v1/completions': 'completions', '/v1/embeddings': 'embeddings' } as const;
export type BatchEndpoint = keyof typeof BATCH_ENDPOINTS;

export interface BatchError {
  code: string;
  message: string;
  param: string | null;
  line: number | null;
}

/** OpenAI's Batch object (GET /v1/batches/{id}), every field present (null when not set), as OpenAI answers. */
export interface BatchObject {
  id: string;
  object: 'batch';
  endpoint: BatchEndpoint;
  model: string | null;
  errors: { object: 'list'; data: BatchError[] } | null;
  input_file_id: string;
  completion_window: '24h';
  status: BatchStatus;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  request_counts: { total: number; completed: number; failed: number };
  usage: { input_tokens: number; input_tokens_details: { cached_tokens: number }; output_tokens: number; output_tokens_details: { reasoning_tokens: number }; total_tokens: number };
  metadata: Record<string, string> | null;
}

/** The API key a batch runs as: what its creator authenticated with (its tenant and limits). */
export interface BatchKey {
  id: string;
  tenant: string;
  name: string;
  key_prefix: string;
  created_at: string;
  limits?: KeyLimits | null;
}

/** One batch line on the queue (ROUTER_BATCH). Small: the line's body rides along (≤ [batch].max_line_bytes). */
export interface BatchLineMessage {
  v: 1;
  tenant: string;
  batch_id: string;
  custom_id: string;
  /** 1-based line number in the input file. */
  line: number;
  endpoint: BatchEndpoint;
  body: Record<string, unknown>;
  key: BatchKey;
  /** Epoch ms: when the line was first enqueued (queue age), and when its batch expires. */
  enqueued_at: number;
  expires_at_ms: number;
  /** Times the line was put back without running (no headroom, only cold backends): not failures. */
  deferrals?: number;
}

/** One line of an output or error file (OpenAI's batch output format). */
export interface BatchOutputLine {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: unknown } | null;
  error: { code: string; message: string } | null;
}

/** What claim() tells a delivery: run the line, it is already done (ack), another delivery holds it (later), or its batch no longer runs it. */
export type ClaimAnswer = 'run' | 'done' | 'busy' | 'gone';

export interface LineResult {
  ok: boolean;
  /** The output (ok) or error file line, JSON. */
  line: string;
  usage: { input_tokens: number; cached_tokens: number; output_tokens: number } | null;
  dead_letter?: boolean;
}

/** GET /admin/queues, one tenant's share (the route adds them up). */
export interface QueueStats {
  /** Lines enqueued and not yet done (queued or running). */
  pending: number;
  running: number;
  /** Epoch ms of the oldest pending line's first enqueue; null when none. */
  oldest_enqueued_at: number | null;
  retries: number;
  dead_letters: number;
  lines_done: number;
  /** Deliveries of lines already done (a consumer that died before acking, a duplicate delivery): acked without running. */
  redelivered: number;
}

export interface BatchPage {
  data: BatchObject[];
  has_more: boolean;
}
