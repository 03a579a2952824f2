/**
 * Latency profiles for the simulated backends. `dev` is shaped like real GPUs (an 8B model
 * answers faster than a 70B one) so routing and load effects show; `instant` removes every
 * timer so benchmarks measure the router, not the simulation.
 */
export type SimProfileName = 'dev' | 'instant';

export interface SimTiming {
  latency: { base_ttft_ms: number; prefill_ms_per_token: number; itl_ms: number; max_num_seqs: number };
  cold_start_ms: number;
  /** 0 = never scale to zero on idle. */
  idle_scale_down_ms: number;
}

const SMALL: SimTiming = {
  latency: { base_ttft_ms: 25, prefill_ms_per_token: 0.02, itl_ms: 10, max_num_seqs: 64 },
  cold_start_ms: 5_000,
  idle_scale_down_ms: 0,
};

const LARGE: SimTiming = {
  latency: { base_ttft_ms: 80, prefill_ms_per_token: 0.1, itl_ms: 30, max_num_seqs: 32 },
  cold_start_ms: 5_000,
  idle_scale_down_ms: 0,
};

const INSTANT: SimTiming = {
  // max_num_seqs is huge so the sim never queues: a queue would be the sim's cost, not the router's.
  latency: { base_ttft_ms: 0, prefill_ms_per_token: 0, itl_ms: 0, max_num_seqs: 1_000_000 },
  cold_start_ms: 0,
  idle_scale_down_ms: 0,
};

/**
 * Per-backend changes on top of a profile (benches that need e.g. a prefill cost or a prefix
 * cache size of their own). Every field is optional; `latency` may be partial.
 */
export interface SimOverrides {
  latency?: Partial<SimTiming['latency']>;
  cold_start_ms?: number;
  idle_scale_down_ms?: number;
  /** Prefix-cache block size in tokens (sim default 16). */
  prefix_block_tokens?: number;
  /** Prefix-cache (and KV-cache) capacity in blocks (sim default 4096). */
  prefix_cache_blocks?: number;
  /** Context window (sim default 8192). */
  max_model_len?: number;
}

/** Parameter count in billions read from a model id ("llama-3.1-70b" → 70), 0 when none. */
function paramsB(id: string): number {
  const m = /(\d+(?:\.\d+)?)b(?![a-z0-9])/i.exec(id);
  return m ? Number(m[1]) : 0;
}

/** A backend is as slow as the largest model it serves; 30B and up counts as 70B-class. */
export function simTimingFor(profile: SimProfileName, modelIds: readonly string[]): SimTiming {
  if (profile === 'instant') return INSTANT;
  return modelIds.some((id) => paramsB(id) >= 30) ? LARGE : SMALL;
}
