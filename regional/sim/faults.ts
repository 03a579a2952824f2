/**
 * Fault injection (`POST /sim/faults`). The posted body REPLACES the whole fault set;
 * `{}` clears every fault. Faults apply to inference requests only
 * (POST /v1/chat/completions, /v1/completions, /v1/embeddings), after a cold backend
 * has woken and after authentication, in this order:
 *
 *   latency_ms → error_rate → hang → (normal handling) → drop_after_tokens
 *
 * `error_rate` is deterministic (no randomness): counting inference requests from 1
 * after the faults were set, request k fails iff floor(k·rate) > floor((k−1)·rate).
 * So 1 fails all, 0.5 fails the 2nd, 4th, 6th…, 0.25 fails every 4th, 0 fails none.
 */
import { STATUS_CODES } from 'node:http';
import { z } from 'zod';

export const FaultsInputSchema = z.strictObject({
  /** Share of inference requests answered with `status` instead of being served. */
  error_rate: z.number().min(0).max(1).optional(),
  /** HTTP status of injected errors (default 503). */
  status: z.number().int().min(400).max(599).optional(),
  /** Extra delay before the request is handled. */
  latency_ms: z.number().min(0).optional(),
  /** Read the request and never answer (released when the client disconnects). */
  hang: z.boolean().optional(),
  /** Destroy the connection after N streamed content tokens (non-streaming: instead of answering). */
  drop_after_tokens: z.number().int().min(0).nullable().optional(),
});
export type FaultsInput = z.infer<typeof FaultsInputSchema>;

export interface Faults {
  error_rate: number;
  status: number;
  latency_ms: number;
  hang: boolean;
  drop_after_tokens: number | null;
}

export const NO_FAULTS: Readonly<Faults> = Object.freeze({
  error_rate: 0,
  status: 503,
  latency_ms: 0,
  hang: false,
  drop_after_tokens: null,
});

export class FaultState {
  current: Faults = { ...NO_FAULTS };
  /** True when any fault is set (fast check on the hot path). */
  active = false;
  private k = 0;

  /** Replaces the fault set (fields not given take their no-fault value). */
  set(input: FaultsInput): Faults {
    this.current = {
      error_rate: input.error_rate ?? 0,
      status: input.status ?? 503,
      latency_ms: input.latency_ms ?? 0,
      hang: input.hang ?? false,
      drop_after_tokens: input.drop_after_tokens ?? null,
    };
    this.k = 0;
    const c = this.current;
    this.active = c.error_rate > 0 || c.latency_ms > 0 || c.hang || c.drop_after_tokens !== null;
    return this.current;
  }

  clear(): void {
    this.set({});
  }

  /** Counts one inference request against `error_rate`; true = inject an error. */
  nextFails(): boolean {
    const r = this.current.error_rate;
    if (r <= 0) return false;
    const k = ++this.k;
    return Math.floor(k * r) > Math.floor((k - 1) * r);
  }
}

/** vLLM-style error type for a status: 400 BadRequestError, 503 ServiceUnavailableError, … */
export function errorTypeFor(status: number): string {
  if (status === 400) return 'BadRequestError';
  if (status === 404) return 'NotFoundError';
  if (status === 500) return 'InternalServerError';
  const phrase = (STATUS_CODES[status] ?? 'Unknown').replace(/[^A-Za-z]/g, '');
  return phrase.endsWith('Error') ? phrase : `${phrase}Error`;
}
