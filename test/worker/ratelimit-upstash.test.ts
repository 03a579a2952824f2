import { Redis } from '@upstash/redis/cloudflare';
import { env as testEnv } from 'cloudflare:test';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { upstashHealth } from '../../worker/cache/upstash-health';
import type { Env } from '../../worker/env';
import { backgroundSettled } from '../../worker/isolate/background';
import { fiftyAgainstTen, limitStack, remaining, RESERVED, USED } from './ratelimit-support';
import { ownBridge, type OwnBridge } from './upstash-support';

// Rate limits with [limits].store = "upstash": @upstash/ratelimit's Lua on a real redis-server,
// through this file's own Upstash REST bridge, so a test can take Upstash down mid-way.
const env = testEnv as unknown as Env;
const HOUR = 3_600;
const prefix = `test-rl-${crypto.randomUUID().slice(0, 8)}:`;
let bridge: OwnBridge;
let redis: Redis;

beforeAll(async () => {
  bridge = await ownBridge();
  redis = new Redis({ url: bridge.url, token: bridge.token, enableTelemetry: false, automaticDeserialization: false });
});
afterAll(async () => {
  await bridge?.start();
});

const onUpstash = (limits: Record<string, unknown>) =>
  limitStack(
    { ...limits, store: 'upstash' },
    {
      // retry_after_ms 0: every request tries Upstash again, so the outage test sees each step.
      patch: (cfg) => (cfg.upstash = { redis_url: bridge.url, redis_token_secret: 'UPSTASH_RL_TOKEN', key_prefix: prefix, retry_after_ms: 0, timeout_ms: 500 }),
      secrets: { UPSTASH_RL_TOKEN: bridge.token },
    },
  );

describe('rate limits on Upstash (@upstash/ratelimit → bridge → redis-server)', () => {
  it('50 concurrent requests against 10 per window: exactly 10 admitted, headers counting 9…0; the counts live in Redis', async () => {
    const s = await onUpstash({ key: { requests: 10, window_s: HOUR } });
    await fiftyAgainstTen(s);
    const bucket = `requests:key:${s.key.id}:10:${HOUR}`;
    // The library's token bucket hash, under our prefix…
    expect(await redis.hget(`${prefix}rl:${bucket}`, 'tokens')).toBe('0');
    const ttl = await redis.pttl(`${prefix}rl:${bucket}`);
    expect(ttl).toBeGreaterThan(3_500_000);
    expect(ttl).toBeLessThanOrEqual(3_600_000);
    // …and nothing in the embedded store.
    expect(await env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(`tenant:${s.t}`)).peek(bucket)).toBeNull();
  });

  it('tokens: a reservation that does not fit is 429 (tokens); corrections to the real usage reach Redis', async () => {
    const s = await onUpstash({ key: { requests: 100, tokens: 300, window_s: HOUR } });
    const first = await s.ask();
    expect(remaining(first, 'tokens')).toBe(300 - RESERVED);
    await first.arrayBuffer();
    const second = await s.ask({ stream: true });
    expect(remaining(second, 'tokens')).toBe(300 - USED - RESERVED);
    await second.text();
    await backgroundSettled();
    expect(await redis.hget(`${prefix}rl:tokens:key:${s.key.id}:300:${HOUR}`, 'tokens')).toBe(String(300 - 2 * USED));
    const tooMuch = await s.ask({ max_tokens: 200 }); // 82 + 200 > 234
    expect(tooMuch.status).toBe(429);
    expect(((await tooMuch.json()) as any).error.message).toContain('tokens per 1h0m0s');
    const after = await s.ask();
    expect(remaining(after, 'tokens')).toBe(300 - 2 * USED - RESERVED);
    expect(remaining(after, 'requests')).toBe(97); // the refused one was given back
  });

  it('one request to Upstash per decision: the buckets ask together (auto-pipelining), the correction after the answer', async () => {
    const s = await onUpstash({ key: { requests: 100, tokens: 10_000, window_s: HOUR }, tenant: { requests: 1_000, window_s: HOUR } });
    await (await s.ask()).arrayBuffer(); // scripts loaded, connections open
    const before = (await bridge.state()).stats;
    const res = await s.ask();
    expect(res.status).toBe(200);
    expect(remaining(res, 'requests')).toBe(98);
    await res.arrayBuffer();
    await backgroundSettled();
    const after = (await bridge.state()).stats;
    expect(after.requests - before.requests).toBe(2);
    expect(after.commands - before.commands).toBe(4); // 3 buckets (EVALSHA each) + 1 correction
  });

  it('Upstash down mid-test (stopped, then hanging): requests still succeed on the embedded path; back up: Upstash again', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const s = await onUpstash({ key: { requests: 5, window_s: HOUR } });
    const fellBack = () => upstashHealth.fallbackCount('ratelimit');
    const before = fellBack();
    expect(remaining(await s.ask(), 'requests')).toBe(4);
    expect(remaining(await s.ask(), 'requests')).toBe(3);

    await bridge.stop();
    const down = await s.ask();
    expect(down.status).toBe(200);
    expect(remaining(down, 'requests')).toBe(4); // the embedded bucket, from full
    expect(((await down.json()) as any).choices[0].message.content).toEqual(expect.any(String));
    const streamed = await s.ask({ stream: true });
    expect(streamed.status).toBe(200);
    expect(await streamed.text()).toContain('[DONE]');
    await bridge.hang();
    const hanging = await s.ask();
    expect(hanging.status).toBe(200); // after [upstash].timeout_ms
    expect(remaining(hanging, 'requests')).toBe(2);
    expect(fellBack() - before).toBe(3);
    expect(warn).toHaveBeenCalledWith(expect.stringMatching(/upstash unavailable.*"component":"ratelimit"|"component":"ratelimit".*upstash unavailable/));

    await bridge.start();
    const back = await s.ask();
    expect(remaining(back, 'requests')).toBe(2); // Upstash's own count went on from 3
    expect(fellBack() - before).toBe(3);
    warn.mockRestore();
  });
});
