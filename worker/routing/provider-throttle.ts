import { managedKinds, type BackendConfig } from '../config/schema';
import { registerIsolateState } from '../isolate/registry';

// Managed providers' rate limits, as this isolate has seen them: signals, not failures.
// - A 429 marks the backend throttled until the provider's reset (Retry-After, retry-after-ms,
//   or the reset of the budget it says is spent): the planner drops it from chains and the
//   executor does not retry it, but its breaker does not count it (breaker-view.ts).
// - The remaining budgets a provider announces on every answer (OpenAI and Azure
//   `x-ratelimit-remaining-*` / `x-ratelimit-reset-*`, Anthropic `anthropic-ratelimit-*`) mark it
//   "low" when one is nearly spent: the planner moves it to the end of its chain until the reset,
//   so traffic goes elsewhere before the provider starts refusing.
// Isolate-local, like the in-flight counts: each isolate learns from the answers it gets. All
// header values are hostile: unreadable ones are ignored, and every wait is capped.

/** Throttled this long after a 429 that says nothing of when to come back. */
const DEFAULT_THROTTLE_MS = 5_000;
/** No provider header keeps a backend out for longer than this. */
const MAX_WAIT_MS = 10 * 60_000;
/** A budget is nearly spent at or below this share of its limit (or of what it had when first seen without a limit). */
const LOW_SHARE = 0.05;

export type ProviderGate = 'ok' | 'low' | 'throttled';

interface Budget {
  remaining: number;
  limit: number | null;
  /** Epoch ms when the provider refills it (now + a short default if it did not say). */
  resetAt: number;
}

export interface ThrottleState {
  throttledUntil: number;
  /** By budget name: requests, tokens, input-tokens, output-tokens. */
  budgets: Map<string, Budget>;
}

const states = new Map<string, ThrottleState>();

/**
 * The planner's question, pure: what a backend's known limits say at `now`. Throttled by a 429
 * until its reset; low while any budget is within LOW_SHARE of its limit and not yet reset.
 */
export function gateOf(state: ThrottleState | undefined, now: number): ProviderGate {
  if (!state) return 'ok';
  if (now < state.throttledUntil) return 'throttled';
  for (const b of state.budgets.values()) {
    if (now >= b.resetAt) continue;
    if (b.remaining <= 0 || (b.limit !== null && b.limit > 0 && b.remaining <= b.limit * LOW_SHARE)) return 'low';
  }
  return 'ok';
}

/** This isolate's view of a backend's provider limits. */
export function providerGate(backendId: string, now: number = Date.now()): ProviderGate {
  return gateOf(states.get(backendId), now);
}

/**
 * Reads an attempt's response (status and headers; never the body). Called by the executor
 * once per attempt, right after the adapter answers; does nothing for self-hosted kinds.
 */
export function noteProviderResponse(backend: BackendConfig, res: Response, now: number = Date.now()): void {
  if (!managedKinds.includes(backend.kind)) return;
  const budgets = readBudgets(res.headers, now);
  if (res.status !== 429 && budgets.size === 0 && !states.has(backend.id)) return; // nothing known, nothing to keep
  let state = states.get(backend.id);
  if (!state) states.set(backend.id, (state = { throttledUntil: 0, budgets: new Map() }));
  for (const [name, b] of budgets) state.budgets.set(name, b);
  if (res.status === 429) {
    const spent = [...budgets.values()].filter((b) => b.remaining <= 0).map((b) => b.resetAt);
    const wait = retryAfter(res.headers, now) ?? (spent.length > 0 ? Math.max(...spent) : now + DEFAULT_THROTTLE_MS);
    state.throttledUntil = Math.max(state.throttledUntil, Math.min(wait, now + MAX_WAIT_MS));
  } else if (res.ok) {
    state.throttledUntil = 0; // the provider is answering again
  }
}

/** For tests: forget everything (also through resetIsolate('provider-throttle')). */
export function resetProviderThrottle(): void {
  states.clear();
}
registerIsolateState('provider-throttle', resetProviderThrottle);

// ------------------------------------------------------------------ header dialects

/** OpenAI and Azure: x-ratelimit-{limit,remaining,reset}-{requests,tokens}; Anthropic: anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}. */
export function readBudgets(h: Headers, now: number): Map<string, Budget> {
  const out = new Map<string, Budget>();
  for (const name of ['requests', 'tokens']) {
    const remaining = count(h.get(`x-ratelimit-remaining-${name}`));
    if (remaining === null) continue;
    const reset = duration(h.get(`x-ratelimit-reset-${name}`));
    out.set(name, { remaining, limit: count(h.get(`x-ratelimit-limit-${name}`)), resetAt: now + Math.min(reset ?? 1_000, MAX_WAIT_MS) });
  }
  for (const name of ['requests', 'tokens', 'input-tokens', 'output-tokens']) {
    const remaining = count(h.get(`anthropic-ratelimit-${name}-remaining`));
    if (remaining === null) continue;
    const resetAt = Date.parse(h.get(`anthropic-ratelimit-${name}-reset`) ?? '');
    const at = Number.isFinite(resetAt) ? Math.min(Math.max(resetAt, now), now + MAX_WAIT_MS) : now + 1_000;
    out.set(name, { remaining, limit: count(h.get(`anthropic-ratelimit-${name}-limit`)), resetAt: at });
  }
  return out;
}

/** retry-after-ms (OpenAI, Azure), else Retry-After in seconds or as an HTTP date; epoch ms, or null. */
function retryAfter(h: Headers, now: number): number | null {
  const ms = Number(h.get('retry-after-ms') ?? '');
  if (h.get('retry-after-ms') && Number.isFinite(ms) && ms >= 0) return now + ms;
  const v = h.get('retry-after');
  if (!v) return null;
  const s = Number(v);
  if (Number.isFinite(s) && s >= 0) return now + s * 1000;
  const date = Date.parse(v);
  return Number.isFinite(date) ? Math.max(now, date) : null;
}

function count(v: string | null): number | null {
  if (v === null || !/^\d{1,15}$/.test(v.trim())) return null;
  return Number(v.trim());
}

/** OpenAI's reset durations: "1s", "6m0s", "20ms", "1h2m3.5s"; null when unreadable. */
export function duration(v: string | null): number | null {
  if (!v) return null;
  const s = v.trim();
  if (!/^(\d+(\.\d+)?(h|ms|m|s))+$/.test(s)) return null;
  let ms = 0;
  for (const [, n, unit] of s.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s)/g)) ms += Number(n) * { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 }[unit as 'h' | 'm' | 's' | 'ms'];
  return Number.isFinite(ms) ? ms : null;
}
