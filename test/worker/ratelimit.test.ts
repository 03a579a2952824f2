import { env as testEnv } from 'cloudflare:test';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Env } from '../../worker/env';
import { backgroundSettled } from '../../worker/isolate/background';
import { admin, fiftyAgainstTen, HI, limitStack, remaining, RESERVED, uid, USED } from './ratelimit-support';
import { call, chat, errorOf } from './support';

const env = testEnv as unknown as Env;
const HOUR = 3_600;

afterEach(() => vi.restoreAllMocks());

describe('rate limits on the embedded store (RateLimiter Durable Objects)', () => {
  it('50 concurrent requests against 10 per window: exactly 10 admitted, headers counting 9…0, 429s in OpenAI format', async () => {
    const s = await limitStack({ key: { requests: 10, window_s: HOUR } });
    await fiftyAgainstTen(s);
    // Another key of the tenant has its own allowance.
    const other = await s.newKey();
    const res = await s.ask({}, {}, other.key);
    expect(res.status).toBe(200);
    expect(remaining(res, 'requests')).toBe(9);
  });

  it('tokens: the reservation (prompt bound + max_tokens) is taken, corrected to the real usage after the answer; too much is 429 (tokens)', async () => {
    const s = await limitStack({ key: { requests: 100, tokens: 300, window_s: HOUR } });
    const first = await s.ask();
    expect(first.status).toBe(200);
    expect(first.headers.get('x-ratelimit-limit-tokens')).toBe('300');
    expect(remaining(first, 'tokens')).toBe(300 - RESERVED);
    expect(((await first.json()) as any).usage.total_tokens).toBe(USED);
    // The answer's usage (33) replaced the reservation (102): the next request sees it.
    const second = await s.ask({ stream: true });
    expect(remaining(second, 'tokens')).toBe(300 - USED - RESERVED);
    await second.text(); // a stream settles when it ends…
    await backgroundSettled(); // …and its correction goes out in the background
    const third = await s.ask();
    expect(remaining(third, 'tokens')).toBe(300 - 2 * USED - RESERVED);
    expect(remaining(third, 'requests')).toBe(97);
    await third.arrayBuffer();

    // 300 − 3 × 33 = 201 left: a reservation of 82 + 200 does not fit.
    const tooMuch = await s.ask({ max_tokens: 200 });
    expect(tooMuch.status).toBe(429);
    expect(tooMuch.headers.get('x-ratelimit-remaining-tokens')).toBe('0');
    expect(tooMuch.headers.get('x-ratelimit-remaining-requests')).toBe('96');
    const err = await errorOf(tooMuch);
    expect(err).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded' });
    expect(err.message).toContain(`tokens per 1h0m0s on API key ${s.key.id}: limit 300, this request may use up to 282`);
    // More than the whole limit: told so.
    const huge = await s.ask({ max_tokens: 1_000 });
    expect(huge.status).toBe(429);
    expect((await errorOf(huge)).message).toMatch(/Request too large for the tokens per 1h0m0s limit/);
    // Refused requests took nothing: neither tokens nor the request itself.
    const after = await s.ask();
    expect(remaining(after, 'tokens')).toBe(300 - 3 * USED - RESERVED);
    expect(remaining(after, 'requests')).toBe(96);
  });

  it('a failed upstream gives the whole reservation back; errors after the check carry the headers', async () => {
    const s = await limitStack({ key: { requests: 100, tokens: 1_000, window_s: HOUR } }, { patch: (cfg) => (cfg.backends[0].url = 'http://127.0.0.1:9') });
    const failed = await s.ask();
    expect(failed.status).toBe(502);
    expect(remaining(failed, 'requests')).toBe(99);
    expect(remaining(failed, 'tokens')).toBe(1_000 - RESERVED);
    expect((await s.ask()).headers.get('x-ratelimit-remaining-tokens')).toBe(String(1_000 - RESERVED));
  });

  it('cache hits count as requests, use no tokens, and are served even when the tokens would not fit', async () => {
    const s = await limitStack({ key: { requests: 10, tokens: 1_000, window_s: HOUR } });
    const body = { temperature: 0, messages: [{ role: 'user', content: `cache me ${uid()}` }] };
    const miss = await s.ask(body);
    expect(miss.headers.get('x-router-cache')).toBe('miss');
    const reserved = 1_000 - remaining(miss, 'tokens');
    const used = ((await miss.json()) as any).usage.total_tokens as number;
    await backgroundSettled();
    const hit = await s.ask(body);
    expect(hit.headers.get('x-router-cache')).toBe('hit');
    expect(remaining(hit, 'requests')).toBe(8);
    expect(remaining(hit, 'tokens')).toBe(1_000 - used - reserved); // reserved while it looked…
    const next = await s.ask(); // not cacheable (temperature 1): reserves RESERVED
    expect(remaining(next, 'tokens')).toBe(1_000 - used - RESERVED); // …and given back: the hit used none
    await next.arrayBuffer();

    // The key's tokens cut below one reservation: the hit is still served, a miss is refused.
    expect((await admin(`/admin/keys/${s.key.id}/limits`, { method: 'PUT', body: JSON.stringify({ tokens: 50 }), env: s.e })).status).toBe(200);
    const stillHit = await s.ask(body);
    expect(stillHit.status).toBe(200);
    expect(stillHit.headers.get('x-router-cache')).toBe('hit');
    expect(stillHit.headers.get('x-ratelimit-limit-tokens')).toBe('50');
    const refused = await s.ask({ ...body, messages: [{ role: 'user', content: `a miss ${uid()}` }] });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('x-router-cache')).toBeNull();
    expect((await errorOf(refused)).message).toContain('tokens per 1h0m0s');
  });

  it('per-key overrides through the admin API take effect at once on this isolate; DELETE goes back to the config', async () => {
    const s = await limitStack({ key: { requests: 10, tokens: 100_000, window_s: HOUR } });
    const path = `/admin/keys/${s.key.id}/limits`;
    const got = await (await admin(path, { env: s.e })).json();
    expect(got).toMatchObject({ object: 'key.limits', id: s.key.id, tenant: s.t, override: null, effective: { requests: 10, tokens: 100_000, window_s: HOUR } });

    const put = await admin(path, { method: 'PUT', body: JSON.stringify({ requests: 2, tokens: null }), env: s.e });
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({ override: { requests: 2, tokens: null }, effective: { requests: 2, tokens: null, window_s: HOUR } });
    const a = await s.ask();
    expect(a.headers.get('x-ratelimit-limit-requests')).toBe('2');
    expect(a.headers.get('x-ratelimit-limit-tokens')).toBeNull(); // tokens lifted for this key
    expect((await s.ask()).status).toBe(200);
    expect((await s.ask()).status).toBe(429);
    // Other keys of the tenant keep the config's limit.
    const other = await s.newKey();
    expect((await s.ask({}, {}, other.key)).headers.get('x-ratelimit-limit-requests')).toBe('10');

    expect((await admin(path, { method: 'DELETE', env: s.e })).status).toBe(200);
    const back = await s.ask();
    expect(back.status).toBe(200);
    expect(back.headers.get('x-ratelimit-limit-requests')).toBe('10');

    // A key without a config limit can be given one.
    const free = await limitStack({ tenant: { requests: 1_000, window_s: HOUR } });
    await admin(`/admin/keys/${free.key.id}/limits`, { method: 'PUT', body: JSON.stringify({ requests: 1, window_s: 120 }), env: free.e });
    expect((await free.ask()).status).toBe(200);
    const limited = await free.ask();
    expect(limited.status).toBe(429);
    expect((await errorOf(limited)).message).toContain(`requests per 2m0s on API key ${free.key.id}: limit 1`);
  });

  it('the admin API validates its input and knows which keys exist', async () => {
    const s = await limitStack({});
    const path = `/admin/keys/${s.key.id}/limits`;
    for (const [body, param] of [
      [{ requests: 0 }, 'requests'],
      [{ requests: 1.5 }, 'requests'],
      [{ tokens: 'many' }, 'tokens'],
      [{ window_s: 0 }, 'window_s'],
      [{ burst: 3 }, null],
      [{}, null],
    ] as const) {
      const res = await admin(path, { method: 'PUT', body: JSON.stringify(body), env: s.e });
      expect(res.status).toBe(400);
      const err = await errorOf(res);
      expect(err.code).toBe('invalid_value');
      if (param) expect(err.param).toBe(param);
    }
    expect((await admin(path, { method: 'PUT', body: 'nope', env: s.e })).status).toBe(400);
    expect((await admin('/admin/keys/key_nope/limits', { method: 'PUT', body: JSON.stringify({ requests: 1 }), env: s.e })).status).toBe(404);
    expect((await errorOf(await admin('/admin/keys/key_nope/limits', { env: s.e }))).code).toBe('key_not_found');
    expect((await admin('/admin/keys/key_nope/limits', { method: 'DELETE', env: s.e })).status).toBe(404);
    expect((await call(path, { env: s.e })).status).toBe(401); // no admin token
    // Rate limits off: the override is kept but nothing is limited.
    const off = await limitStack({ enabled: false, key: { requests: 1, window_s: HOUR } });
    await admin(`/admin/keys/${off.key.id}/limits`, { method: 'PUT', body: JSON.stringify({ requests: 1 }), env: off.e });
    expect(await (await admin(`/admin/keys/${off.key.id}/limits`, { env: off.e })).json()).toMatchObject({ enabled: false, override: { requests: 1 }, effective: null });
    expect((await off.ask()).status).toBe(200);
    const second = await off.ask();
    expect(second.status).toBe(200);
    expect(second.headers.get('x-ratelimit-limit-requests')).toBeNull();
  });

  it('end users: per `user` (or x-router-user), per tenant; requests without a user are not counted per user', async () => {
    const s = await limitStack({ user: { requests: 2, window_s: HOUR } });
    expect((await s.ask({ user: 'alice' })).status).toBe(200);
    expect((await s.ask({}, { 'x-router-user': 'alice' })).status).toBe(200);
    const third = await s.ask({ user: 'alice' });
    expect(third.status).toBe(429);
    expect((await errorOf(third)).message).toContain(`on user ${s.t}/alice`);
    expect((await s.ask({ user: 'bob' })).status).toBe(200);
    const anon = await s.ask();
    expect(anon.status).toBe(200);
    expect(anon.headers.get('x-ratelimit-limit-requests')).toBeNull();
    // A long or odd user id counts by its hash, still per user.
    const odd = 'ü'.repeat(100);
    expect((await s.ask({ user: odd })).status).toBe(200);
    expect((await s.ask({ user: odd })).status).toBe(200);
    expect((await s.ask({ user: odd })).status).toBe(429);
    // Another tenant's alice is another user.
    const k2 = await s.newKey(`other-${s.t}`);
    expect((await s.ask({ user: 'alice' }, {}, k2.key)).status).toBe(200);
  });

  it('features: per x-router-feature (absent: "default"); a malformed header is a 400', async () => {
    const s = await limitStack({ feature: { requests: 1, window_s: HOUR } });
    expect((await s.ask({}, { 'x-router-feature': 'search' })).status).toBe(200);
    const again = await s.ask({}, { 'x-router-feature': 'search' });
    expect(again.status).toBe(429);
    expect((await errorOf(again)).message).toContain(`on feature ${s.t}/search`);
    expect((await s.ask({}, { 'x-router-feature': 'chat' })).status).toBe(200);
    expect((await s.ask()).status).toBe(200);
    expect((await s.ask({}, { 'x-router-feature': 'default' })).status).toBe(429);
    const bad = await s.ask({}, { 'x-router-feature': '../etc' });
    expect(bad.status).toBe(400);
    expect(await errorOf(bad)).toMatchObject({ code: 'invalid_header', param: 'x-router-feature' });
  });

  it('tenant and global limits are shared by keys and by tenants; a tenant table replaces the default one', async () => {
    const window = 3_000 + Math.floor(Math.random() * 500); // a global bucket of this test's own
    const s = await limitStack({ tenant: { requests: 3, window_s: HOUR }, global: { requests: 5, window_s: window } }, {
      patch: (cfg) => (cfg.tenants[Object.keys(cfg.tenants)[1]!].limits = { tenant: { requests: 100, window_s: HOUR } }),
    });
    const k2 = await s.newKey();
    expect((await s.ask()).status).toBe(200);
    expect((await s.ask({}, {}, k2.key)).status).toBe(200);
    const third = await s.ask();
    expect(third.status).toBe(200);
    expect(remaining(third, 'requests')).toBe(0); // the tenant's 3 (tighter than the global 5)
    const fourth = await s.ask({}, {}, k2.key);
    expect(fourth.status).toBe(429);
    expect((await errorOf(fourth)).message).toContain(`on tenant ${s.t}: limit 3`);
    // The other tenant has its own tenant limit (100) but shares the global one: 2 of 5 left.
    const other = await s.newKey(`other-${s.t}`);
    expect((await s.ask({}, {}, other.key)).status).toBe(200);
    expect((await s.ask({}, {}, other.key)).status).toBe(200);
    const over = await s.ask({}, {}, other.key);
    expect(over.status).toBe(429);
    expect((await errorOf(over)).message).toContain('on the router: limit 5');
  });

  it('costs nothing when no limit applies: no Durable Object call, no headers', async () => {
    const touched: string[] = [];
    const throwing = new Proxy({}, { get: (_, p) => () => { touched.push(String(p)); throw new Error('RATE_LIMITER touched'); } });
    // Only the other tenant has limits; this one has none.
    const s = await limitStack({}, { patch: (cfg) => (cfg.tenants[Object.keys(cfg.tenants)[1]!].limits = { key: { requests: 1 } }) });
    const e = { ...s.e, RATE_LIMITER: throwing } as unknown as Env;
    for (const extra of [{}, { stream: true }, { temperature: 0 }]) {
      const res = await chat(s.key.key, { model: 'm', messages: HI, max_tokens: 5, ...extra }, { env: e });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      expect([...res.headers.keys()].filter((h) => h.startsWith('x-ratelimit'))).toEqual([]);
    }
    expect(touched).toEqual([]);
  });

  it('never fails a request because the limiter is down: let through, logged, no headers', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const s = await limitStack({ key: { requests: 1, window_s: HOUR } });
    const broken = { idFromName: (n: string) => env.RATE_LIMITER.idFromName(n), get: () => ({ limit: () => Promise.reject(new Error('object unreachable')) }) };
    const e = { ...s.e, RATE_LIMITER: broken } as unknown as Env;
    for (let i = 0; i < 3; i++) {
      const res = await chat(s.key.key, { model: 'm', messages: HI, max_tokens: 5 }, { env: e });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-ratelimit-limit-requests')).toBeNull();
    }
    // A hanging object: let through after [limits].timeout_ms.
    const hanging = { idFromName: broken.idFromName, get: () => ({ limit: () => new Promise(() => {}) }) };
    const cfg = structuredClone(s.cfg);
    cfg.limits.timeout_ms = 50;
    const slow = await chat(s.key.key, { model: 'm', messages: HI, max_tokens: 5 }, { env: { ...s.e, ROUTER: cfg, RATE_LIMITER: hanging } as unknown as Env });
    expect(slow.status).toBe(200);
    expect(warn).toHaveBeenCalledWith(expect.stringContaining('no store could decide'));
  });
});
