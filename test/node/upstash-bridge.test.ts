import { createHash, randomUUID } from 'node:crypto';
import { Ratelimit } from '@upstash/ratelimit';
import { Redis } from '@upstash/redis';
import { describe, expect, inject, it } from 'vitest';
import { startRedis } from '../setup/redis';

// @upstash/redis and @upstash/ratelimit against a real redis-server, through the Upstash REST
// bridge of test/setup/redis.ts: their own HTTP client, encodings and Lua scripts, nothing mocked.

const { url, token } = inject('upstash');
const ns = `bridge-test:${randomUUID()}:`; // this file's keys; the Redis is shared with other files
const redis = new Redis({ url, token, enableTelemetry: false, retry: false });

describe('@upstash/redis through the bridge', () => {
  it('set / get / incr / expire / del, with base64 response encoding (the client default)', async () => {
    expect(await redis.set(`${ns}a`, 'hello')).toBe('OK');
    expect(await redis.get(`${ns}a`)).toBe('hello');
    expect(await redis.get(`${ns}missing`)).toBeNull();
    expect(await redis.incr(`${ns}n`)).toBe(1);
    expect(await redis.incrby(`${ns}n`, 41)).toBe(42);
    expect(await redis.expire(`${ns}n`, 100)).toBe(1);
    const ttl = await redis.ttl(`${ns}n`);
    expect(ttl).toBeGreaterThan(90);
    expect(ttl).toBeLessThanOrEqual(100);
    expect(await redis.set(`${ns}ex`, 'v', { ex: 1 })).toBe('OK');
    expect(await redis.pttl(`${ns}ex`)).toBeGreaterThan(0);
    expect(await redis.del(`${ns}a`, `${ns}n`)).toBe(2);
    expect(await redis.exists(`${ns}a`)).toBe(0);
  });

  it('round-trips unicode, JSON values (automatic deserialization) and a value that reads "OK"', async () => {
    const text = 'héllo wörld, 你好, 🚀 "quoted" \\ back';
    await redis.set(`${ns}u`, text);
    expect(await redis.get(`${ns}u`)).toBe(text);
    await redis.set(`${ns}j`, { a: 1, b: [true, null, 'x'] });
    expect(await redis.get(`${ns}j`)).toEqual({ a: 1, b: [true, null, 'x'] });
    await redis.set(`${ns}ok`, 'OK');
    expect(await redis.get(`${ns}ok`)).toBe('OK');
    await redis.hset(`${ns}h`, { f1: 'v1', f2: 2 });
    expect(await redis.hgetall(`${ns}h`)).toEqual({ f1: 'v1', f2: 2 });
    await redis.rpush(`${ns}l`, 'x', 'y', 'z');
    expect(await redis.lrange(`${ns}l`, 0, -1)).toEqual(['x', 'y', 'z']);
  });

  it('works without base64 encoding too', async () => {
    const plain = new Redis({ url, token, enableTelemetry: false, retry: false, responseEncoding: false });
    await plain.set(`${ns}plain`, 'plain value');
    expect(await plain.get(`${ns}plain`)).toBe('plain value');
    expect(await plain.mget(`${ns}plain`, `${ns}nope`)).toEqual(['plain value', null]);
  });

  it('pipeline: results in order; a failing command is reported in its slot, the rest still run', async () => {
    const p = redis.pipeline();
    p.set(`${ns}p1`, 'x');
    p.incr(`${ns}p1`); // fails: not an integer
    p.set(`${ns}p2`, 5);
    p.incr(`${ns}p2`);
    const res = await p.exec({ keepErrors: true });
    expect(res[0]).toEqual({ result: 'OK', error: undefined });
    expect(res[1]!.error).toMatch(/not an integer/);
    expect(res[3]).toEqual({ result: 6, error: undefined });
    await expect(redis.pipeline().set(`${ns}p3`, 'x').incr(`${ns}p3`).exec()).rejects.toThrow(/not an integer/);
  });

  it('multi-exec: runs atomically; a transaction Redis discards is one 400 error', async () => {
    const tx = redis.multi();
    tx.set(`${ns}t`, 1);
    tx.incrby(`${ns}t`, 9);
    tx.get(`${ns}t`);
    expect(await tx.exec()).toEqual(['OK', 10, 10]);

    const res = await fetch(`${url}/multi-exec`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify([
        ['SET', `${ns}t2`, 'x'],
        ['NOSUCHCOMMAND', 'y'],
      ]),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/EXECABORT/);
    expect(await redis.exists(`${ns}t2`)).toBe(0);
  });

  it('eval, script load and evalsha (NOSCRIPT when unknown)', async () => {
    const script = "redis.call('SET', KEYS[1], ARGV[1]); return {redis.call('GET', KEYS[1]), redis.call('STRLEN', KEYS[1])}";
    expect(await redis.eval(script, [`${ns}e`], ['lua!'])).toEqual(['lua!', 4]);
    const sha = await redis.scriptLoad("return tonumber(ARGV[1]) * 2 + #KEYS");
    expect(sha).toMatch(/^[0-9a-f]{40}$/);
    expect(await redis.evalsha(sha, [`${ns}k1`, `${ns}k2`], [20])).toBe(42);
    expect(await redis.scriptExists(sha)).toEqual([1]);
    await expect(redis.evalsha('0'.repeat(40), [], [])).rejects.toThrow(/NOSCRIPT/);
  });

  it("accepts Upstash's allow-key-locking shebang flag (@upstash/ratelimit's scripts), with the client's own SHA1", async () => {
    const script = "#!lua flags=allow-key-locking\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])";
    const expected = createHash('sha1').update(script).digest('hex');
    await expect(redis.evalsha(expected, [`${ns}kl`], [1])).rejects.toThrow(/NOSCRIPT/);
    expect(await redis.eval(script, [`${ns}kl`], [2])).toBe(2);
    expect(await redis.evalsha(expected, [`${ns}kl`], [3])).toBe(5); // EVAL cached it, under the client's SHA1
    expect(await redis.scriptLoad(script)).toBe(expected);
    expect(await redis.scriptExists(expected)).toEqual([1]);
  });

  it('answers a failed single command with 400 and Redis error text; path-style commands work', async () => {
    await redis.set(`${ns}s`, 'str');
    await expect(redis.incr(`${ns}s`)).rejects.toThrow(/not an integer/);
    const raw = await fetch(`${url}/`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify(['INCR', `${ns}s`]) });
    expect(raw.status).toBe(400);
    expect(await raw.json()).toEqual({ error: 'ERR value is not an integer or out of range' });

    const path = await fetch(`${url}/set/${encodeURIComponent(`${ns}path`)}/abc/EX/100`, { headers: { authorization: `Bearer ${token}` } });
    expect(await path.json()).toEqual({ result: 'OK' });
    const got = await fetch(`${url}/get/${encodeURIComponent(`${ns}path`)}?_token=${token}`);
    expect(await got.json()).toEqual({ result: 'abc' });
    const b64 = await fetch(`${url}/get/${encodeURIComponent(`${ns}path`)}`, { headers: { authorization: `Bearer ${token}`, 'upstash-encoding': 'base64' } });
    expect(await b64.json()).toEqual({ result: Buffer.from('abc').toString('base64') });
    expect((await fetch(`${url}/`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } })).status).toBe(405);
  });

  it('rejects a bad or missing token with 401', async () => {
    const bad = new Redis({ url, token: 'wrong-token', enableTelemetry: false, retry: false });
    await expect(bad.get(`${ns}a`)).rejects.toThrow(/Unauthorized/);
    const res = await fetch(`${url}/`, { method: 'POST', body: JSON.stringify(['PING']) });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toMatch(/Unauthorized/);
  });

  it('holds large values (1 MiB)', async () => {
    const big = 'x€'.repeat(350_000); // ~1 MiB of UTF-8
    await redis.set(`${ns}big`, big);
    expect(await redis.get(`${ns}big`)).toBe(big);
  });
});

describe('@upstash/ratelimit through the bridge (its Lua scripts run in Redis)', () => {
  it('slidingWindow: 10 of 15 allowed, remaining counts down', async () => {
    const limiter = new Ratelimit({ redis, limiter: Ratelimit.slidingWindow(10, '30 s'), prefix: `${ns}rl-sw`, ephemeralCache: false });
    const results = [];
    for (let i = 0; i < 15; i++) results.push(await limiter.limit('user-1'));
    expect(results.filter((r) => r.success)).toHaveLength(10);
    expect(results.slice(0, 10).map((r) => r.remaining)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    expect(results.slice(10).filter((r) => !(!r.success && r.limit === 10))).toEqual([]);
    expect((await limiter.limit('user-2')).success).toBe(true); // another identifier, its own window
  });

  it('tokenBucket: a burst of 15 against a bucket of 10 admits 10', async () => {
    const limiter = new Ratelimit({ redis, limiter: Ratelimit.tokenBucket(1, '60 s', 10), prefix: `${ns}rl-tb`, ephemeralCache: false });
    const results = await Promise.all(Array.from({ length: 15 }, () => limiter.limit('burst')));
    expect(results.filter((r) => r.success)).toHaveLength(10);
    expect(results.find((r) => !r.success)!.reset).toBeGreaterThan(Date.now());
  });

  it('fixedWindow with concurrent callers: exactly the limit', async () => {
    const limiter = new Ratelimit({ redis, limiter: Ratelimit.fixedWindow(10, '30 s'), prefix: `${ns}rl-fw`, ephemeralCache: false });
    const results = await Promise.all(Array.from({ length: 50 }, () => limiter.limit('c')));
    expect(results.filter((r) => r.success)).toHaveLength(10);
  });
});

describe('the redis global setup', () => {
  it('fails loudly (does not skip) when redis-server cannot be found', async () => {
    const saved = process.env.REDIS_SERVER;
    process.env.REDIS_SERVER = '/nonexistent/redis-server';
    try {
      await expect(startRedis()).rejects.toThrow(/redis-server not found.*apt-get install -y redis-server/);
    } finally {
      if (saved === undefined) delete process.env.REDIS_SERVER;
      else process.env.REDIS_SERVER = saved;
    }
  });
});
