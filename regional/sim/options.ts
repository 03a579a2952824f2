/**
 * Options of one simulated vLLM server (`vllm serve` stand-in).
 *
 * Every field has a default, so `startSimServer({})` works; `parseSimOptions`
 * validates user input (CLI flags, `--fleet` JSON, library callers) and fills defaults.
 */
import { z } from 'zod';

/** The latency model (see scheduler.ts). All zero = an instant upstream with no timers at all. */
export const LatencySchema = z.object({
  /** Fixed part of the time to first token, once a sequence slot is granted. */
  base_ttft_ms: z.number().min(0).default(20),
  /** Prefill cost per prompt token that is NOT served from the prefix cache. */
  prefill_ms_per_token: z.number().min(0).default(0.02),
  /** Inter-token latency: one output token every `itl_ms` after the first. */
  itl_ms: z.number().min(0).default(8),
  /** Concurrent sequences (like vLLM `--max-num-seqs`); the rest wait in a FIFO queue. */
  max_num_seqs: z.number().int().min(1).default(256),
});
export type Latency = z.infer<typeof LatencySchema>;

export const SimOptionsSchema = z.object({
  /** Used in logs and as the fleet key. Defaults to `sim-<port>` once listening. */
  name: z.string().min(1).optional(),
  host: z.string().min(1).default('127.0.0.1'),
  /** 0 = ephemeral port. */
  port: z.number().int().min(0).max(65535).default(0),
  /** Served chat/completion model names (the `model` clients send). First one is the default. */
  models: z.array(z.string().min(1)).default(['sim-model']),
  /** Served embedding model names (only these answer /v1/embeddings). */
  embedding_models: z.array(z.string().min(1)).default([]),
  /** Like `vllm serve --api-key`: every /v1/* request needs `Authorization: Bearer <key>`. */
  api_key: z.string().min(1).optional(),
  latency: LatencySchema.prefault({}),
  /** How long a cold (scaled-to-zero) backend takes to wake on its first request. */
  cold_start_ms: z.number().min(0).default(1000),
  /** 0 = never. After this long with no request (and nothing in flight) it goes cold by itself. */
  idle_scale_down_ms: z.number().min(0).default(0),
  /** Start in the cold state (scaled to zero). */
  start_cold: z.boolean().default(false),
  /** Prefix-cache block size in tokens (vLLM `--block-size`). */
  prefix_block_tokens: z.number().int().min(1).default(16),
  /** Prefix-cache capacity in blocks (LRU); also the KV-cache size used for `kv_cache_usage_perc`. */
  prefix_cache_blocks: z.number().int().min(1).default(4096),
  /** Context window of the generative models (vLLM `--max-model-len`). */
  max_model_len: z.number().int().min(1).default(8192),
  /** Context window of the embedding models (bge-small: 512). */
  embedding_max_model_len: z.number().int().min(1).default(512),
  /** Inputs one embeddings request may carry (OpenAI's 2048); more is answered 400 before any work. */
  embedding_max_inputs: z.number().int().min(1).default(2048),
  /** Embedding vector size (bge-small: 384). */
  embedding_dim: z.number().int().min(1).default(384),
  /** Largest accepted request body. */
  max_body_bytes: z.number().int().min(1).default(64 * 1024 * 1024),
  /** Log one line per request to stderr. */
  log_requests: z.boolean().default(false),
});

/** Input form: everything optional, `latency` may be partial. */
export type SimOptions = z.input<typeof SimOptionsSchema>;
/** Resolved form: defaults filled in. */
export type ResolvedSimOptions = z.output<typeof SimOptionsSchema>;

/** Validates and fills defaults; throws an Error with a readable message on bad input. */
export function parseSimOptions(input: unknown): ResolvedSimOptions {
  const r = SimOptionsSchema.safeParse(input ?? {});
  if (!r.success) {
    throw new Error(`invalid sim options: ${z.prettifyError(r.error)}`);
  }
  const o = r.data;
  if (o.models.length === 0 && o.embedding_models.length === 0) {
    throw new Error('invalid sim options: at least one of models / embedding_models must be non-empty');
  }
  const all = [...o.models, ...o.embedding_models];
  if (new Set(all).size !== all.length) {
    throw new Error(`invalid sim options: duplicate model names in ${JSON.stringify(all)}`);
  }
  return o;
}

/** The run-time tunable part (`GET/POST /sim/config`). Partial updates merge. */
export const SimConfigUpdateSchema = z.strictObject({
  base_ttft_ms: z.number().min(0).optional(),
  prefill_ms_per_token: z.number().min(0).optional(),
  itl_ms: z.number().min(0).optional(),
  max_num_seqs: z.number().int().min(1).optional(),
  cold_start_ms: z.number().min(0).optional(),
  idle_scale_down_ms: z.number().min(0).optional(),
  /** A worse model version (quality.ts): share of chat/completions requests answered 503 (deterministic). */
  error_rate: z.number().min(0).max(1).optional(),
  /** Share of chat/completions answers that are a refusal (deterministic). */
  refusal_rate: z.number().min(0).max(1).optional(),
  /** Natural answer lengths × this (0 < x ≤ 1, at least 1 token): shorter answers. */
  length_scale: z.number().gt(0).max(1).optional(),
});
export type SimConfigUpdate = z.infer<typeof SimConfigUpdateSchema>;
export interface SimConfig {
  base_ttft_ms: number;
  prefill_ms_per_token: number;
  itl_ms: number;
  max_num_seqs: number;
  cold_start_ms: number;
  idle_scale_down_ms: number;
  /** Shown only when set away from the default (0, 0, 1): see quality.ts. */
  error_rate?: number;
  refusal_rate?: number;
  length_scale?: number;
}

/** Latency model with every delay at zero (for benchmarks). */
export const ZERO_LATENCY: Latency = Object.freeze({
  base_ttft_ms: 0,
  prefill_ms_per_token: 0,
  itl_ms: 0,
  max_num_seqs: 1_000_000,
});
