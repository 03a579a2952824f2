import { Ratelimit } from '@upstash/ratelimit';
import type { Redis } from '@upstash/redis/cloudflare';
import { combine, type Adjustment, type Bucket, type LimiterStore, type LimitRequest, type LimitResult } from './store';

/**
 * The production store: Upstash Redis through @upstash/ratelimit, one
 * `Ratelimit.tokenBucket(limit, window, limit)` per (limit, window): its real Lua decides each
 * bucket atomically, taking `rate` = the bucket's cost (token-bucket.ts says why this algorithm).
 *
 * What the library does not do, and how it is covered here:
 * - Several buckets at once, all-or-nothing: every bucket of the request is asked in parallel
 *   (one round trip of wall time); combine() gives back what was taken for a group that, as a
 *   whole, was refused (ADJUST_SCRIPT, awaited before the answer).
 * - Corrections bounded by the bucket and its period: ADJUST_SCRIPT below, the Lua twin of
 *   token-bucket.ts adjust(). (The library's own negative rate is neither.)
 *
 * Options: no ephemeral cache (it would block an identifier in this isolate after any refusal,
 * so a refused large token reservation would also block small ones), no timeout-allows (the
 * library would admit on a slow call; a slow or failed call throws here and the fallback
 * store decides instead), no analytics.
 */
export class UpstashLimiter implements LimiterStore {
  readonly name = 'upstash';
  private readonly limiters = new Map<string, Ratelimit>();
  private readonly script;

  constructor(
    private readonly redis: Redis,
    /** Key prefix: keys are `<prefix>:<bucket key>`, as the library writes them. */
    private readonly prefix: string,
  ) {
    this.script = redis.createScript<number>(ADJUST_SCRIPT);
  }

  async limit(req: LimitRequest): Promise<LimitResult> {
    const replies = await Promise.all(req.groups.map((group) => Promise.all(group.map((b) => this.limiter(b).limit(b.key, { rate: b.cost })))));
    const outcomes = replies.map((group) =>
      group.map((r) => ({ state: { ok: r.success, limit: r.limit, remaining: r.success ? r.remaining : 0, resetAt: r.reset }, consumed: r.success })),
    );
    const { result, refunds } = combine(req, outcomes, this.name);
    if (refunds.length) await this.adjust(refunds).catch((e) => console.warn(JSON.stringify({ msg: 'ratelimit: refund after a split refusal failed', store: this.name, error: String(e) })));
    return result;
  }

  async adjust(items: Adjustment[]): Promise<void> {
    const now = Date.now();
    await Promise.all(
      items.map((a) => this.script.exec([`${this.prefix}:${a.bucket.key}`], [String(a.bucket.limit), String(a.bucket.windowMs), String(a.periodStart), String(a.delta), String(now)])),
    );
  }

  /** One Ratelimit per (limit, window): its algorithm is fixed at construction. Bounded: overrides may add many. */
  private limiter(b: Bucket): Ratelimit {
    const id = `${b.limit}/${b.windowMs}`;
    let rl = this.limiters.get(id);
    if (!rl) {
      if (this.limiters.size >= MAX_LIMITERS) this.limiters.clear();
      rl = new Ratelimit({
        redis: this.redis,
        limiter: Ratelimit.tokenBucket(b.limit, `${b.windowMs} ms`, b.limit),
        prefix: this.prefix,
        ephemeralCache: false,
        timeout: 0,
        analytics: false,
      });
      this.limiters.set(id, rl);
    }
    return rl;
  }
}

const MAX_LIMITERS = 1_000;

/**
 * token-bucket.ts adjust() in Lua, on the library's bucket hash {refilledAt, tokens}: only in the
 * period the units were taken in (no refill due since), capped at the limit, TTL untouched.
 * Returns 1 when it wrote, 0 when there was nothing to correct.
 */
export const ADJUST_SCRIPT = `
local key         = KEYS[1]
local limit       = tonumber(ARGV[1])
local window      = tonumber(ARGV[2])
local periodStart = tonumber(ARGV[3])
local delta       = tonumber(ARGV[4])
local now         = tonumber(ARGV[5])
local bucket = redis.call("HMGET", key, "refilledAt", "tokens")
if bucket[1] == false then return 0 end
local refilledAt = tonumber(bucket[1])
if refilledAt ~= periodStart or now >= refilledAt + window then return 0 end
redis.call("HSET", key, "tokens", math.min(limit, tonumber(bucket[2]) + delta))
return 1
`;
