import { env as testEnv } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import type { Env } from '../../worker/env';
import { backgroundSettled } from '../../worker/isolate/background';
import { resetIsolate } from '../../worker/isolate/registry';
import { rateLimitLease, rateLimitLeaseStats } from '../../worker/ratelimit/lease';
import { limitStack, remaining, RESERVED, USED } from './ratelimit-support';
import { chat } from './support';

const env = testEnv as unknown as Env;
const HOUR = 3_600;

/** RATE_LIMITER with every method call counted by name (a lease call is a remote hop on Cloudflare). */
function countingLimiter(): { ns: DurableObjectNamespace; calls: Record<string, number> } {
  const calls: Record<string, number> = {};
  const real = env.RATE_LIMITER;
  const ns = {
    idFromName: (n: string) => real.idFromName(n),
    get: (id: DurableObjectId) => {
      const stub = real.get(id) as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
      return new Proxy(stub, {
        get: (target, prop) => {
          if (typeof prop !== 'string') return undefined;
          return (...args: unknown[]) => {
            calls[prop] = (calls[prop] ?? 0) + 1;
            return target[prop]!(...args);
          };
        },
      });
    },
  };
  return { ns: ns as unknown as DurableObjectNamespace, calls };
}

describe('rate limits by leases (embedded store)', () => {
  it('warm requests are decided from the leased slice: far fewer lease calls than requests, and the object plus the slice hold exactly what is left', async () => {
    const counting = countingLimiter();
    const s = await limitStack({ key: { requests: 1_000, tokens: 100_000, window_s: HOUR } });
    const e = { ...s.e, RATE_LIMITER: counting.ns } as unknown as Env;
    const ask = () => chat(s.key.key, { model: 'm', messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 20, ignore_eos: true }, { env: e });
    const seen: number[] = [];
    const N = 40;
    for (let i = 0; i < N; i++) {
      const res = await ask();
      expect(res.status).toBe(200);
      seen.push(remaining(res, 'requests'));
      await res.arrayBuffer();
      await backgroundSettled();
    }
    // Exact counting 999 … 960, as with one call per request.
    expect(seen).toEqual(Array.from({ length: N }, (_, i) => 999 - i));
    // The first request waits for a lease; later ones are served from the slice, topped up in the background.
    expect(counting.calls.lease ?? 0).toBeGreaterThan(0);
    expect(counting.calls.lease ?? 0).toBeLessThan(N / 2);
    expect(counting.calls.limit ?? 0).toBe(0);

    // Nothing is lost or invented: the object's count plus this isolate's slice is the limit minus what was used.
    const bucket = (unit: 'requests' | 'tokens', limit: number) => `${unit}:key:${s.key.id}:${limit}:${HOUR}`;
    const stub = env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(`tenant:${s.t}`));
    for (const [unit, limit, used] of [
      ['requests', 1_000, N],
      ['tokens', 100_000, N * USED],
    ] as const) {
      const row = await stub.peek(bucket(unit, limit));
      const lease = rateLimitLease(`tenant:${s.t}`, bucket(unit, limit));
      expect(row).not.toBeNull();
      expect(lease).toBeDefined();
      expect(row!.tokens + lease!.left).toBe(limit - used);
    }
    expect(rateLimitLeaseStats().decidedLocally).toBeGreaterThan(0);
  });

  it('slices held elsewhere: refused early by at most what they hold, counted; the total admitted never exceeds the limit', async () => {
    const s = await limitStack({ key: { requests: 10, tokens: 10_000, window_s: HOUR } });
    const ask = () => s.ask();
    // "Isolate A": takes some requests; its rate grows its slice beyond the needs.
    let admitted = 0;
    for (let i = 0; i < 4; i++) {
      const res = await ask();
      expect(res.status).toBe(200);
      admitted++;
      await res.arrayBuffer();
    }
    await backgroundSettled();
    const key = `requests:key:${s.key.id}:10:${HOUR}`;
    const heldByA = rateLimitLease(`tenant:${s.t}`, key)!.left;
    expect(heldByA).toBeGreaterThan(0); // a slice beyond the needs (its rate asked for more)
    // A fresh isolate ("B"): A's unspent slice stays taken at the object until A returns it.
    resetIsolate('ratelimit-leases');
    const before = rateLimitLeaseStats().refusalsWhileLent;
    let refused = 0;
    for (let i = 0; i < 12; i++) {
      const res = await ask();
      if (res.status === 200) admitted++;
      else {
        expect(res.status).toBe(429);
        refused++;
      }
      await res.arrayBuffer();
      await backgroundSettled();
    }
    // Never more than the limit; fewer by exactly the units A still holds (bounded), and reported.
    expect(admitted).toBe(10 - heldByA);
    expect(refused).toBe(12 - (10 - heldByA - 4));
    expect(rateLimitLeaseStats().refusalsWhileLent).toBeGreaterThan(before);
  });

  it('the token correction lands in the slice: the next request sees the real usage, with no call for the correction', async () => {
    const s = await limitStack({ key: { requests: 100, tokens: 1_000, window_s: HOUR } });
    const first = await s.ask();
    expect(remaining(first, 'tokens')).toBe(1_000 - RESERVED);
    await first.arrayBuffer();
    await backgroundSettled();
    const second = await s.ask();
    expect(remaining(second, 'tokens')).toBe(1_000 - USED - RESERVED);
    await second.arrayBuffer();
  });
});
