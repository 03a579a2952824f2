import { Redis } from '@upstash/redis/cloudflare';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { CacheApiStore } from '../../worker/cache/adapters/cache-api';
import { exactKeyHash } from '../../worker/cache/exact';
import { upstashHealth } from '../../worker/cache/upstash-health';
import { cacheWorld, chatCount, exactCacheSuite, resetRouting, stored, type CacheWorld } from './cache-exact-suite';
import { sse } from '../support/sse';
import { chat } from './support';
import { ownBridge, type OwnBridge } from './upstash-support';

// The exact cache with Upstash configured: @upstash/redis from workerd, through the REST bridge,
// to a real redis-server. The bridge is this file's own, so a test can take it down.
let w: CacheWorld;
let bridge: OwnBridge;
let redis: Redis;
const prefix = `test:${crypto.randomUUID().slice(0, 8)}:`;

beforeAll(async () => {
  bridge = await ownBridge();
  redis = new Redis({ url: bridge.url, token: bridge.token, enableTelemetry: false, automaticDeserialization: false });
  w = await cacheWorld(
    (cfg) => {
      // retry_after_ms 0: every request tries Upstash again, so the outage test sees each step.
      cfg.upstash = { redis_url: bridge.url, redis_token_secret: 'UPSTASH_TEST_TOKEN', key_prefix: prefix, retry_after_ms: 0, timeout_ms: 2_000 };
      // No memory tier: these tests watch what Upstash itself stores and serves.
      cfg.cache = { ...cfg.cache, memory_bytes: 0 };
    },
    { UPSTASH_TEST_TOKEN: bridge.token },
  );
});
afterAll(async () => {
  await bridge?.start();
});

exactCacheSuite('Upstash Redis through the bridge', () => w);

const body = (topic: string) => ({ model: 'small', messages: [{ role: 'user', content: `${topic} ${crypto.randomUUID()}` }], temperature: 0, max_tokens: 8 });
const keyOf = async (tenant: string, b: Record<string, unknown>) => `exact:${tenant}:${await exactKeyHash(tenant, 'chat', 'llama-3.1-8b', b)}`;

describe('exact cache on Upstash', () => {
  beforeEach(async () => {
    await bridge.start();
    await resetRouting(w.env);
  });

  it('stores entries in Redis (SET … EX the tier TTL, under the key prefix), not in the Cache API', async () => {
    const b = body('where does it go');
    await chat(w.keys.a, b, { env: w.env });
    await stored();
    const key = await keyOf(w.tenants.a, b);
    const ttl = await redis.ttl(prefix + key);
    expect(ttl).toBeGreaterThan(86_000);
    expect(ttl).toBeLessThanOrEqual(86_400);
    expect(JSON.parse(((await redis.get<string>(prefix + key)) ?? '').replace(/^\d+:\d+:/, ''))).toMatchObject({ v: 1, endpoint: 'chat' });
    expect(await new CacheApiStore().get(key)).toBeNull();
  });

  it('Upstash down mid-test: requests still succeed on the embedded path, and Upstash serves again once it is back', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const us8b = w.sims['vllm-us-east-8b']!;
    const a = body('outage');
    await chat(w.keys.a, a, { env: w.env });
    await stored();
    expect((await chat(w.keys.a, a, { env: w.env })).headers.get('x-router-cache')).toBe('hit');

    await bridge.stop();
    const before = await chatCount(us8b);
    const during = await chat(w.keys.a, a, { env: w.env });
    expect(during.status).toBe(200);
    expect(during.headers.get('x-router-cache')).toBe('miss'); // the embedded store does not have it
    expect(((await during.json()) as any).choices[0].message.content).toEqual(expect.any(String));
    await stored(); // …and now it does
    expect(await new CacheApiStore().get(await keyOf(w.tenants.a, a))).not.toBeNull();
    expect((await chat(w.keys.a, a, { env: w.env })).headers.get('x-router-cache')).toBe('hit');

    const streamed = await chat(w.keys.a, { ...body('outage stream'), stream: true }, { env: w.env });
    expect(streamed.status).toBe(200);
    expect((await sse(streamed)).done).toBe(true);
    expect(await chatCount(us8b)).toBe(before + 2);
    expect(upstashHealth.fallbackCount('response-cache')).toBeGreaterThanOrEqual(4);
    expect(warn).toHaveBeenCalledWith(expect.stringContaining('upstash unavailable'));

    await bridge.start();
    const c = body('after the outage');
    expect((await chat(w.keys.a, c, { env: w.env })).headers.get('x-router-cache')).toBe('miss');
    await stored();
    expect(await redis.exists(prefix + (await keyOf(w.tenants.a, c)))).toBe(1);
    warn.mockRestore();
  });

  it('a redis_url whose token secret is missing: the Cache API serves, with one warning', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const cfg = structuredClone(w.env.ROUTER) as any;
    cfg.upstash = { ...cfg.upstash, redis_token_secret: 'UPSTASH_NOT_SET' };
    const env = { ...w.env, ROUTER: cfg };
    const b = body('no secret');
    expect((await chat(w.keys.a, b, { env })).headers.get('x-router-cache')).toBe('miss');
    await stored();
    expect((await chat(w.keys.a, b, { env })).headers.get('x-router-cache')).toBe('hit');
    expect(await new CacheApiStore().get(await keyOf(w.tenants.a, b))).not.toBeNull();
    expect(warn.mock.calls.filter(([m]) => String(m).includes('UPSTASH_NOT_SET'))).toHaveLength(1);
    warn.mockRestore();
  });
});
