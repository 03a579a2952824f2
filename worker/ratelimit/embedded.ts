import type { BucketSpec, GroupReply } from '../protocol/rate-limiter';
import type { RateLimiter } from '../env';
import { combine, type Adjustment, type Bucket, type BucketOutcome, type LimiterStore, type LimitRequest, type LimitResult } from './store';

/**
 * The embedded store: RateLimiter Durable Objects (durable-objects/rate-limiter.ts), one per
 * tenant plus one "global". A request's buckets are sent to their objects in one call each, in
 * parallel; each object decides its share atomically. With one object (no global limit), that
 * is the whole decision; with two, combine() makes it all-or-nothing and gives back what one
 * object kept for a group the other refused.
 */
export class EmbeddedLimiter implements LimiterStore {
  readonly name = 'embedded';

  constructor(
    private readonly ns: DurableObjectNamespace<RateLimiter>,
    private readonly timeoutMs: number,
  ) {}

  async limit(req: LimitRequest): Promise<LimitResult> {
    const shards = byShard(req);
    const replies = await Promise.all(
      [...shards].map(async ([shard, s]) => ({ s, reply: await this.call(shard, (stub) => stub.limit({ groups: s.groups.map((g) => g.map(spec)) })) })),
    );
    const outcomes: BucketOutcome[][] = req.groups.map((g) => g.map(() => ({ state: null, consumed: false })));
    for (const { s, reply } of replies) {
      s.index.forEach((positions, g) => {
        const group: GroupReply | undefined = reply[g];
        positions.forEach((i, j) => {
          const b = group?.buckets[j];
          outcomes[g]![i] = {
            state: b ? { ok: b.ok, limit: b.limit, remaining: b.remaining, resetAt: b.reset_at } : null,
            consumed: group?.admitted === true,
          };
        });
      });
    }
    const { result, refunds } = combine(req, outcomes, this.name);
    if (refunds.length) await this.adjust(refunds).catch((e) => console.warn(JSON.stringify({ msg: 'ratelimit: refund after a split refusal failed', error: String(e) })));
    return result;
  }

  async adjust(items: Adjustment[]): Promise<void> {
    await adjustByShard(items.map((a) => ({ shard: a.bucket.shard, key: a.bucket.key, limit: a.bucket.limit, windowMs: a.bucket.windowMs, periodStart: a.periodStart, delta: a.delta })), (shard, fn) => this.call(shard, fn));
  }

  private call<T>(shard: string, fn: (stub: DurableObjectStub<RateLimiter>) => Promise<T>): Promise<T> {
    return limiterCall(this.ns, this.timeoutMs, shard, fn);
  }
}

/** One call to a shard's limiter object, bounded by the timeout (the caller lets the request through then). */
export async function limiterCall<T>(ns: DurableObjectNamespace<RateLimiter>, timeoutMs: number, shard: string, fn: (stub: DurableObjectStub<RateLimiter>) => Promise<T>): Promise<T> {
  const stub = ns.get(ns.idFromName(shard));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`rate limiter ${shard} did not answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([fn(stub), timeout]);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

/** Corrections (units back, or charged), one adjust call per limiter object. */
export async function adjustByShard(
  items: readonly { shard: string; key: string; limit: number; windowMs: number; periodStart: number; delta: number }[],
  call: <T>(shard: string, fn: (stub: DurableObjectStub<RateLimiter>) => Promise<T>) => Promise<T>,
): Promise<void> {
  const shards = new Map<string, (typeof items)[number][]>();
  for (const it of items) {
    const list = shards.get(it.shard) ?? [];
    list.push(it);
    shards.set(it.shard, list);
  }
  await Promise.all([...shards].map(([shard, list]) => call(shard, (stub) => stub.adjust({ items: list.map((it) => ({ key: it.key, limit: it.limit, window_ms: it.windowMs, period_start: it.periodStart, delta: it.delta })) }))));
}

const spec = (b: Bucket): BucketSpec => ({ key: b.key, limit: b.limit, window_ms: b.windowMs, cost: b.cost });

/** The request split per object: each shard's groups (same order, possibly empty) and where each bucket came from. */
function byShard(req: LimitRequest): Map<string, { groups: Bucket[][]; index: number[][] }> {
  const shards = new Map<string, { groups: Bucket[][]; index: number[][] }>();
  req.groups.forEach((group, g) => {
    group.forEach((b, i) => {
      let s = shards.get(b.shard);
      if (!s) shards.set(b.shard, (s = { groups: req.groups.map(() => []), index: req.groups.map(() => []) }));
      s.groups[g]!.push(b);
      s.index[g]!.push(i);
    });
  });
  return shards;
}
