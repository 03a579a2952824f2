// One request's rate limits, from the check to the correction.
//
// Order in the inference route: after the body, the key and the route are known (the token
// reservation needs the body; it is capped by the route's models' context), before the
// budget and the cache. One decision, one call to the store, covers both units:
// - requests are taken for every request the limits let in, cache hits included (a hit is a
//   request; what it does not use is tokens);
// - tokens are reserved in the same call (the prompt's upper bound + max_tokens × n, as budgets
//   estimate it) and given back in full if the answer comes from the cache or the request never
//   goes upstream; after an upstream answer the reservation is corrected to the real usage.
// If the requests fit but the tokens do not, the request may still be answered from the cache;
// only a miss is refused (429, tokens), and then its request is given back too: a refused request
// counts for nothing. Deciding both units up front keeps it to one hop; asking again after the
// cache lookup would double it for every miss.
//
// Nothing here fails a request: a store that cannot be reached (the embedded objects down or
// slow, after Upstash's own fallback) lets the request through without headers, logged at most
// once a minute and counted.

import type { KeyRecord } from '../protocol/keys';
import { background, type WaitUntil } from '../isolate/background';
import { worstCase } from '../budget/estimate';
import type { CompiledConfig } from '../config/compiled';
import type { ModelConfig } from '../config/schema';
import type { EndpointKind } from '../openai/schemas';
import type { Usage } from '../openai/usage';
import { bucketsFor } from './dimensions';
import { rateLimitError } from './errors';
import { rateLimitHeaders, refusalHeaders, type Described } from './headers';
import { hasLimits, limitsFor, userRequired } from './settings';
import { RouterError } from '../http/errors';
import type { Adjustment, Bucket, BucketState, LimitResult, LimiterStore } from './store';
import { limiterFor } from './stores';

export interface RateLimitInput {
  config: CompiledConfig;
  env: Record<string, unknown>;
  ctx: WaitUntil;
  key: KeyRecord;
  user: string | null;
  featureHeader: string | null | undefined;
  endpoint: EndpointKind;
  body: Record<string, unknown>;
  /** The models the request may run on (caps the token reservation by their context). */
  models: readonly ModelConfig[];
}

const LOG_INTERVAL_MS = 60_000;
/** The longest end-user id (OpenAI's `user` is bounded the same way in the body schema). */
const MAX_USER_CHARS = 256;
let failOpen = 0;
let lastFailOpenLog = Number.NEGATIVE_INFINITY;

/** Requests let through because no store could decide (for the metrics endpoint). */
export const rateLimitFailOpenCount = () => failOpen;

/**
 * Takes the request's units. Null when no limit applies (no I/O at all) or when no store could
 * decide (let through). Throws 429 when a requests limit refuses (nothing is taken then), or 400
 * for a malformed x-router-feature under a feature limit, or for a request without a user when
 * the tenant's `limits.user.required` is set.
 */
export async function rateLimit(input: RateLimitInput): Promise<RateLimitHold | null> {
  const { config, key } = input;
  // body.user is bounded by its schema (256); the x-router-user header is the other way in.
  if (input.user && input.user.length > MAX_USER_CHARS) {
    throw new RouterError(400, `x-router-user must be at most ${MAX_USER_CHARS} characters.`, 'invalid_header', 'x-router-user');
  }
  if (!input.user && userRequired(config, key.tenant)) {
    throw new RouterError(400, 'This key\'s tenant requires an end-user id: set `user` in the body (or the x-router-user header).', 'user_required', 'user');
  }
  const limits = limitsFor(config, key.tenant, key.limits);
  if (!hasLimits(limits)) return null;
  const needsTokens = Object.values(limits).some((l) => l.tokens !== null);
  const reservation = needsTokens ? tokenReservation(config, input.endpoint, input.body, input.models) : 0;
  const buckets = await bucketsFor(limits, { tenantId: key.tenant, keyId: key.id, user: input.user, feature: input.featureHeader }, reservation);

  let store: LimiterStore;
  let result: LimitResult;
  try {
    store = limiterFor(config, input.env);
    result = await store.limit({ groups: [buckets.requests, buckets.tokens], ctx: input.ctx });
  } catch (err) {
    failOpen++;
    const now = Date.now();
    if (now - lastFailOpenLog >= LOG_INTERVAL_MS) {
      lastFailOpenLog = now;
      console.warn(JSON.stringify({ msg: 'ratelimit: no store could decide; letting requests through', error: String(err), let_through_so_far: failOpen }));
    }
    return null;
  }
  const hold = new RateLimitHold(store, result, buckets.requests, buckets.tokens, reservation, input.ctx);
  hold.requireRequests();
  return hold;
}

/** The worst case a request can use, in tokens: the same bound budgets reserve (worker/budget/estimate.ts). */
export function tokenReservation(config: CompiledConfig, endpoint: EndpointKind, body: Record<string, unknown>, models: readonly ModelConfig[]): number {
  const b = config.raw.budgets;
  return worstCase(config, endpoint, body, [...new Set(models)], { defaultMaxTokens: b.default_max_tokens, nonTextPartTokens: b.non_text_part_tokens }).tokens;
}

/** What one request holds: its headers, and its token reservation until it is corrected or given back. */
export class RateLimitHold {
  /** x-ratelimit-* for every answer to this request after the check. */
  readonly headers: Record<string, string>;
  private readonly requestStates: BucketState[];
  private readonly tokenStates: (BucketState | null)[];
  private readonly requestsAdmitted: boolean;
  private readonly tokensAdmitted: boolean;
  private done = false;

  constructor(
    private readonly store: LimiterStore,
    private readonly result: LimitResult,
    private readonly requestBuckets: Bucket[],
    private readonly tokenBuckets: Bucket[],
    /** Tokens reserved per token bucket. */
    readonly reserved: number,
    private readonly ctx: WaitUntil,
  ) {
    const [requests, tokens] = result.groups;
    // The requests group is always evaluated (it is the first).
    this.requestStates = (requests?.states ?? []).map((s) => s!);
    this.tokenStates = tokens?.states ?? [];
    this.tokensAdmitted = tokens?.admitted === true;
    this.requestsAdmitted = requests?.admitted !== false;
    const described: Described[] = [];
    requestBuckets.forEach((bucket, i) => described.push({ bucket, state: this.requestStates[i]! }));
    // Tokens are described only when they were decided for this request (a store that asks all
    // buckets at once may have looked at them for a request its requests limit refused).
    if (this.requestsAdmitted) {
      tokenBuckets.forEach((bucket, i) => {
        const state = this.tokenStates[i];
        if (state) described.push({ bucket, state });
      });
    }
    this.headers = rateLimitHeaders(described);
    if (!this.requestsAdmitted || !this.tokensAdmitted) this.done = true; // nothing reserved
  }

  /** 429 if a requests limit refused (then nothing was taken at all). */
  requireRequests(): void {
    if (!this.requestsAdmitted) throw this.refusal(this.requestBuckets, this.requestStates);
  }

  /**
   * Just before the request goes upstream (after every cache lookup missed): 429 if its tokens
   * did not fit. The request it took is given back then: a refused request counts for nothing.
   */
  requireTokens(): void {
    if (this.tokensAdmitted || !this.requestsAdmitted) return;
    this.done = true;
    this.background(this.requestBuckets.map((bucket, i) => ({ bucket, periodStart: this.requestStates[i]!.resetAt - bucket.windowMs, delta: 1 })));
    throw this.refusal(this.tokenBuckets, this.tokenStates);
  }

  /** The answer is complete (executor's onSettled): the reservation becomes the real usage; no usage (a cut stream) keeps it all. */
  readonly settle = (s: { usage: Usage | null }): void => {
    if (this.done) return;
    this.done = true;
    const used = s.usage ? s.usage.prompt_tokens + s.usage.completion_tokens : this.reserved;
    this.correct(this.reserved - used);
  };

  /** Nothing was used (a failed request, a cache hit, an error before upstream): the whole reservation goes back. */
  release(): void {
    if (this.done) return;
    this.done = true;
    this.correct(this.reserved);
  }

  private correct(delta: number): void {
    if (delta === 0 || !this.tokensAdmitted) return;
    this.background(this.tokenBuckets.map((bucket, i) => ({ bucket, periodStart: this.tokenStates[i]!.resetAt - bucket.windowMs, delta })));
  }

  private background(items: Adjustment[]): void {
    if (!items.length) return;
    const run = this.store
      .adjust(items, this.result.store)
      .catch((e) => console.warn(JSON.stringify({ msg: 'ratelimit: correction failed', store: this.result.store, error: String(e) })));
    // Tests wait for corrections (they run after the answer or the stream's end) with backgroundSettled().
    background(this.ctx, run, 'ratelimit');
  }

  /** 429 naming the limit that refused (the most specific one: key before user, feature, tenant, global); Retry-After when all of them refill. */
  private refusal(buckets: Bucket[], states: (BucketState | null)[]) {
    let first = -1;
    let resetAt = 0;
    states.forEach((s, i) => {
      if (s && !s.ok) {
        if (first < 0) first = i;
        resetAt = Math.max(resetAt, s.resetAt);
      }
    });
    if (first < 0) first = 0;
    const undecided = this.requestsAdmitted ? [] : this.tokenBuckets.map((bucket, i) => ({ bucket, state: this.tokenStates[i] ?? null }));
    return rateLimitError(buckets[first]!, { ...states[first]!, resetAt }, refusalHeaders(this.headers, undecided));
  }
}
