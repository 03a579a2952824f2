import { Redis } from '@upstash/redis/cloudflare';
import { env as testEnv, evictDurableObject } from 'cloudflare:test';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { UpstashHealth } from '../../worker/cache/upstash-health';
import type { Env } from '../../worker/env';
import { limiterContract } from '../../worker/ratelimit/contract';
import { EmbeddedLimiter } from '../../worker/ratelimit/embedded';
import { FallbackLimiter } from '../../worker/ratelimit/fallback';
import { formatDuration, rateLimitHeaders, retryAfterSeconds } from '../../worker/ratelimit/headers';
import type { Bucket, LimiterStore } from '../../worker/ratelimit/store';
import { adjust, take, type BucketRow } from '../../worker/protocol/rules/token-bucket';
import { UpstashLimiter } from '../../worker/ratelimit/upstash';
import { ownBridge, upstash } from './upstash-support';

const env = testEnv as unknown as Env;
const prefix = `test:rl:${crypto.randomUUID().slice(0, 8)}`;
const redisOf = (url: string, token: string, timeoutMs = 2_000, autoPipeline = true) =>
  new Redis({ url, token, retry: false, enableTelemetry: false, automaticDeserialization: false, signal: () => AbortSignal.timeout(timeoutMs), enableAutoPipelining: autoPipeline });
const embedded = () => new EmbeddedLimiter(env.RATE_LIMITER, 2_000);
// As the router builds it: commands issued together share one /pipeline request.
const onUpstash = (autoPipeline = true) => new UpstashLimiter(redisOf(upstash().url, upstash().token, 2_000, autoPipeline), prefix);

// The same contract against every store; Upstash's through the REST bridge to a real
// redis-server, so @upstash/ratelimit's own Lua decides.
limiterContract('embedded (RateLimiter Durable Objects)', embedded);
limiterContract('Upstash (@upstash/ratelimit tokenBucket → bridge → redis-server)', () => onUpstash());
limiterContract('Upstash, one request per command (no auto-pipelining)', () => onUpstash(false));
limiterContract('fallback wrapper, Upstash up', () => new FallbackLimiter(onUpstash(), embedded(), { url: upstash().url, retryAfterMs: 0, health: new UpstashHealth() }));

describe('both stores decide alike', () => {
  it('the same random sequence of reservations and corrections gives the same answers on both', async () => {
    const run = crypto.randomUUID().slice(0, 8);
    const stores: LimiterStore[] = [embedded(), onUpstash()];
    // A tiny deterministic PRNG: the sequence is the same on every run.
    let seed = 42;
    const rnd = (n: number) => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) % n);
    const mk = (i: number): Bucket => ({ dimension: 'key', subject: `s${i}`, unit: 'tokens', limit: 500, windowMs: 3_600_000, cost: 1, shard: `tenant:${run}`, key: `tokens:key:${run}-${i}:500:3600` });
    const buckets = [mk(0), mk(1), mk(2)];
    const trace: string[][] = [[], []];
    const taken: { i: number; cost: number; periodStart: number }[][] = [[], []];
    for (let step = 0; step < 120; step++) {
      const op = rnd(4);
      const i = rnd(3);
      const cost = 1 + rnd(120);
      const delta = rnd(2) ? cost - rnd(cost + 1) : -rnd(40);
      for (const [s, store] of stores.entries()) {
        if (op < 3) {
          const group = [{ ...buckets[i]!, cost }, ...(op === 2 ? [{ ...buckets[(i + 1) % 3]!, cost: 1 + (cost % 7) }] : [])];
          const r = await store.limit({ groups: [group] });
          trace[s]!.push(`${step} ${r.groups[0]!.admitted} ${r.groups[0]!.states.map((x) => `${x!.ok}/${x!.remaining}`).join(',')}`);
          if (r.groups[0]!.admitted) taken[s]!.push({ i, cost, periodStart: r.groups[0]!.states[0]!.resetAt - 3_600_000 });
        } else if (taken[s]!.length) {
          const t = taken[s]!.shift()!;
          await store.adjust([{ bucket: { ...buckets[t.i]!, cost: t.cost }, periodStart: t.periodStart, delta }]);
          trace[s]!.push(`${step} adjust ${t.i} ${delta}`);
        }
      }
    }
    expect(trace[1]).toEqual(trace[0]);
    expect(trace[0]!.filter((l) => l.includes(' false ')), 'the sequence did reach the limits').not.toEqual([]);
  });
});

describe('RateLimiter Durable Object', () => {
  const stubOf = () => env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(`tenant:do-${crypto.randomUUID().slice(0, 8)}`));
  const spec = (key: string, limit: number, cost = 1) => ({ key, limit, window_ms: 60_000, cost });

  it('keeps its counts across a restart (write-behind, flushed), and drops expired buckets', async () => {
    const stub = stubOf();
    const t0 = Date.now();
    await stub.limit({ groups: [[spec('a', 10, 4), spec('b', 10, 1)]], now: t0 });
    await stub.limit({ groups: [[spec('short', 10, 1)]], now: t0 - 59_990 }); // expires 10 ms after t0
    await stub.flush();
    await evictDurableObject(stub);
    await new Promise((r) => setTimeout(r, 20));
    expect(await stub.peek('a')).toMatchObject({ refilledAt: t0, tokens: 6 });
    expect(await stub.peek('b')).toMatchObject({ tokens: 9 });
    expect(await stub.peek('short')).toBeNull();
    const [g] = await stub.limit({ groups: [[spec('a', 10, 6)]], now: t0 + 1 });
    expect(g).toMatchObject({ admitted: true, buckets: [{ ok: true, remaining: 0, reset_at: t0 + 60_000 }] });
  });

  it('decides on its own clock when the caller gives none; a later group is not looked at after a refusal', async () => {
    const stub = stubOf();
    const replies = await stub.limit({ groups: [[spec('r', 1)], [spec('t', 100, 10)]] });
    expect(replies.map((g) => g.admitted)).toEqual([true, true]);
    const refused = await stub.limit({ groups: [[spec('r', 1)], [spec('t', 100, 10)]] });
    expect(refused).toMatchObject([{ evaluated: true, admitted: false }, { evaluated: false, admitted: false, buckets: [null] }]);
    expect(await stub.peek('t')).toMatchObject({ tokens: 90 });
  });
});

describe('the token bucket (token-bucket.ts), as the library computes it', () => {
  const W = 60_000;
  it('creates full, takes only what it holds, refills in full at each window boundary', () => {
    let row: BucketRow | undefined;
    const t0 = 1_000_000;
    const a = take(row, 10, W, 4, t0);
    expect(a).toMatchObject({ ok: true, remaining: 6, resetAt: t0 + W });
    row = a.next!;
    expect(row).toEqual({ refilledAt: t0, tokens: 6, expiresAt: t0 + W });
    expect(take(row, 10, W, 7, t0 + 1)).toMatchObject({ ok: false, remaining: 0, next: null });
    // A row still there two and a half windows later (its TTL was moved on by later takes):
    // refilled, capped at the limit, on the original grid.
    expect(take({ ...row, expiresAt: t0 + 3 * W }, 10, W, 7, t0 + 2.5 * W)).toMatchObject({ ok: true, remaining: 3, resetAt: t0 + 3 * W });
    // Past its TTL the row is gone (as the Redis key would be): a fresh bucket from now.
    expect(take(row, 10, W, 7, t0 + 2.5 * W)).toMatchObject({ ok: true, remaining: 3, resetAt: t0 + 3.5 * W });
  });

  it('an expired row is a fresh bucket; corrections stay in their period and under the limit', () => {
    const row: BucketRow = { refilledAt: 0, tokens: 2, expiresAt: 500 };
    expect(take(row, 10, W, 1, 500)).toMatchObject({ ok: true, remaining: 9, resetAt: 500 + W });
    expect(adjust(row, 10, W, 0, 5, 100)).toEqual({ refilledAt: 0, tokens: 7, expiresAt: 500 });
    expect(adjust(row, 10, W, 0, 50, 100)!.tokens).toBe(10);
    expect(adjust(row, 10, W, 0, -5, 100)!.tokens).toBe(-3);
    expect(adjust(row, 10, W, -W, 5, 100)).toBeNull(); // another period
    expect(adjust(row, 10, W, 0, 5, 600)).toBeNull(); // expired
    expect(adjust({ ...row, expiresAt: null }, 10, W, 0, 5, W)).toBeNull(); // a refill is due: the period is over
  });
});

describe('headers', () => {
  it('formats durations as OpenAI does (Go durations)', () => {
    expect([0, 1, 250, 999, 1_000, 1_500, 17_250, 60_000, 90_000, 360_000, 3_600_000, 3_723_400].map(formatDuration)).toEqual([
      '0s', '1ms', '250ms', '999ms', '1s', '1.5s', '17.25s', '1m0s', '1m30s', '6m0s', '1h0m0s', '1h2m3.4s',
    ]);
    expect(retryAfterSeconds(10_400, 10_000)).toBe(1);
    expect(retryAfterSeconds(12_001, 10_000)).toBe(3);
    expect(retryAfterSeconds(5_000, 10_000)).toBe(1);
  });

  it('describes, per unit, the limit with the fewest units left (a refusing one first)', () => {
    const b = (dimension: Bucket['dimension'], unit: Bucket['unit']): Bucket => ({ dimension, subject: 'x', unit, limit: 0, windowMs: 60_000, cost: 1, shard: 's', key: dimension + unit });
    const now = 1_000_000;
    const h = rateLimitHeaders(
      [
        { bucket: b('key', 'requests'), state: { ok: true, limit: 100, remaining: 40, resetAt: now + 60_000 } },
        { bucket: b('tenant', 'requests'), state: { ok: true, limit: 1_000, remaining: 7, resetAt: now + 30_000 } },
        { bucket: b('key', 'tokens'), state: { ok: false, limit: 5_000, remaining: 0, resetAt: now + 1_500 } },
        { bucket: b('global', 'tokens'), state: { ok: true, limit: 9_000, remaining: 0, resetAt: now + 90_000 } },
      ],
      now,
    );
    expect(h).toEqual({
      'x-ratelimit-limit-requests': '1000',
      'x-ratelimit-remaining-requests': '7',
      'x-ratelimit-reset-requests': '30s',
      'x-ratelimit-limit-tokens': '5000',
      'x-ratelimit-remaining-tokens': '0',
      'x-ratelimit-reset-tokens': '1.5s',
    });
  });
});

describe('Upstash unreachable: the fallback wrapper', () => {
  afterEach(() => vi.restoreAllMocks());

  it('stopped or hanging: the embedded store decides, logged once per interval, counted; back: Upstash again', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const bridge = await ownBridge();
    const health = new UpstashHealth();
    const primary = new UpstashLimiter(redisOf(bridge.url, bridge.token, 300), prefix);
    const store = new FallbackLimiter(primary, embedded(), { url: bridge.url, retryAfterMs: 0, health });
    const run = crypto.randomUUID().slice(0, 8);
    const b: Bucket = { dimension: 'key', subject: 'k', unit: 'requests', limit: 5, windowMs: 3_600_000, cost: 1, shard: `tenant:${run}`, key: `requests:key:${run}:5:3600` };

    expect((await store.limit({ groups: [[b]] })).store).toBe('upstash');
    await bridge.stop();
    const down = await store.limit({ groups: [[b]] });
    expect(down).toMatchObject({ store: 'embedded', groups: [{ admitted: true }] });
    expect(down.groups[0]!.states[0]!.remaining).toBe(4); // the embedded bucket counts from full
    await bridge.hang();
    expect((await store.limit({ groups: [[b]] })).store).toBe('embedded'); // after [upstash].timeout_ms
    expect(health.snapshot()).toEqual([{ component: 'ratelimit', op: 'limit', errors: 2, fallbacks: 2 }]);
    expect(warn.mock.calls.filter(([m]) => String(m).includes('upstash unavailable'))).toHaveLength(1);

    await bridge.start();
    const back = await store.limit({ groups: [[b]] });
    expect(back.store).toBe('upstash');
    expect(back.groups[0]!.states[0]!.remaining).toBe(3); // Upstash's own count went on
  });

  it('a resting Upstash is not called at all; corrections of its decisions wait (dropped), embedded ones go through', async () => {
    const bridge = await ownBridge();
    const health = new UpstashHealth();
    const calls = { limit: 0, adjust: 0 };
    const primary: LimiterStore = {
      name: 'upstash',
      limit: async () => {
        calls.limit++;
        throw new Error('down');
      },
      adjust: async () => {
        calls.adjust++;
      },
    };
    vi.spyOn(console, 'warn').mockImplementation(() => {});
    const store = new FallbackLimiter(primary, embedded(), { url: bridge.url, retryAfterMs: 60_000, health });
    const run = crypto.randomUUID().slice(0, 8);
    const b: Bucket = { dimension: 'key', subject: 'k', unit: 'tokens', limit: 100, windowMs: 3_600_000, cost: 30, shard: `tenant:${run}`, key: `tokens:key:${run}:100:3600` };
    const first = await store.limit({ groups: [[b]] });
    const second = await store.limit({ groups: [[b]] });
    expect(calls.limit).toBe(1);
    expect([first.store, second.store]).toEqual(['embedded', 'embedded']);
    await store.adjust([{ bucket: b, periodStart: 0, delta: 5 }], 'upstash');
    expect(calls.adjust).toBe(0);
    await store.adjust([{ bucket: b, periodStart: second.groups[0]!.states[0]!.resetAt - b.windowMs, delta: 30 }], 'embedded');
    expect((await store.limit({ groups: [[{ ...b, cost: 1 }]] })).groups[0]!.states[0]!.remaining).toBe(69);
  });
});
