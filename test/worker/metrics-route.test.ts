import { createExecutionContext, env as testEnv, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { breakerSchema } from '../../worker/config/schema';
import { loadConfig } from '../../worker/config/compiled';
import type { Env } from '../../worker/env';
import { observeRequest } from '../../worker/telemetry/metrics';
import { parseExposition, record, valueOf } from './metrics-support';
import { spawnSim } from './sims';
import { ADMIN_TOKEN, baseConfig, call, chat, createKey, envWith } from './support';
import { ledgerRecords } from './usage-support';

const env = testEnv as unknown as Env;
const METRICS_TOKEN = 'scrape-token-for-tests';

/** The base config with a scrape token, and the secret it names. */
function tokenEnv(): Env {
  const router = baseConfig();
  router.metrics = { token_secret: 'METRICS_TOKEN' };
  return { ...envWith(router), METRICS_TOKEN };
}

const scrape = (token: string | null, e: Env = env) => call('/metrics', { headers: token ? { authorization: `Bearer ${token}` } : {}, env: e });

describe('GET /metrics', () => {
  it('401 without a token or with a wrong one; 200 with the admin token or the metrics token', async () => {
    const e = tokenEnv();
    const none = await scrape(null, e);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe('invalid_metrics_token');
    expect((await scrape('wrong', e)).status).toBe(401);
    expect((await scrape(`${METRICS_TOKEN}x`, e)).status).toBe(401);
    // The metrics token is only good where the config names its secret.
    expect((await scrape(METRICS_TOKEN, { ...env, METRICS_TOKEN })).status).toBe(401);
    for (const token of [ADMIN_TOKEN, METRICS_TOKEN]) {
      const res = await scrape(token, e);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
      parseExposition(await res.text());
    }
  });

  it('shows what observeRequest counted, aggregated, in a well-formed exposition', async () => {
    const router = baseConfig();
    router.metrics = { flush_interval_ms: 0 }; // a flush after every request
    const config = loadConfig(router);
    if (!config.ok) throw new Error(config.errors.join('; '));
    const tenant = `t-${crypto.randomUUID().slice(0, 8)}`; // the "global" aggregator is shared by the tests of this file
    for (const r of [record({ tenant, ttft_ms: 80 }), record({ tenant, ttft_ms: 700, status: 504, outcome: 'error', error_code: 'upstream_timeout' })]) {
      const ctx = createExecutionContext();
      observeRequest(r, env, ctx, config.config);
      await waitOnExecutionContext(ctx); // the flush runs in waitUntil
    }

    const res = await scrape(ADMIN_TOKEN);
    const e = parseExposition(await res.text());
    expect(valueOf(e, 'router_requests_total', { tenant, status: '200', outcome: 'ok' })).toBe(1);
    expect(valueOf(e, 'router_requests_total', { tenant, status: '504', outcome: 'error' })).toBe(1);
    expect(valueOf(e, 'router_errors_total', { tenant, code: 'upstream_timeout' })).toBe(1);
    expect(valueOf(e, 'router_ttft_seconds_bucket', { tenant, le: '0.1' })).toBe(1);
    expect(valueOf(e, 'router_ttft_seconds_bucket', { tenant, le: '1' })).toBe(2);
    expect(valueOf(e, 'router_ttft_seconds_count', { tenant })).toBe(2);
    // Gauges for every configured backend: the breaker (closed here) and the lifecycle.
    expect(valueOf(e, 'router_breaker_state', { backend: 'vllm-eu-west-8b', state: 'closed' })).toBe(1);
    expect(valueOf(e, 'router_breaker_state', { backend: 'vllm-eu-west-8b', state: 'open' })).toBe(0);
    const lifecycle = e.samples.filter((s) => s.name === 'router_backend_state' && s.labels.backend === 'vllm-us-east-8b');
    expect(lifecycle.map((s) => s.labels.state).sort()).toEqual(['cold', 'unknown', 'waking', 'warm']);
    expect(lifecycle.reduce((n, s) => n + s.value, 0)).toBe(1);
  });

  it('router_breaker_state shows a breaker opened by failures', async () => {
    const router = baseConfig();
    const id = `vllm-breaker-${crypto.randomUUID().slice(0, 8)}`; // a breaker object of this test's own
    router.backends[0].id = id;
    const e = envWith(router);
    const stub = env.BREAKERS.get(env.BREAKERS.idFromName(id));
    const settings = breakerSchema.parse({ consecutive_failures: 3 });
    const opened = await stub.report({ backend: id, settings, outcomes: 'fff', cause: 'HTTP 503' });
    expect(opened.state).toBe('open');

    const text = await (await scrape(ADMIN_TOKEN, e)).text();
    const parsed = parseExposition(text);
    expect(valueOf(parsed, 'router_breaker_state', { backend: id, state: 'open' })).toBe(1);
    expect(valueOf(parsed, 'router_breaker_state', { backend: id, state: 'closed' })).toBe(0);
    expect(valueOf(parsed, 'router_breaker_trips', { backend: id })).toBe(1);
  });
});

describe('through the router', () => {
  const hi = [{ role: 'user', content: 'Say hello.' }];

  it('a request that fell back shows in requests, attempt failures and fallbacks', async () => {
    const [sa, sb] = await Promise.all([spawnSim({ name: 'met-a', models: ['m'] }), spawnSim({ name: 'met-b', models: ['m'] })]);
    await sa.faults({ error_rate: 1, status: 503 });
    const tenant = `m${crypto.randomUUID().slice(0, 8)}`;
    const [a, b] = [`met-${tenant}-a`, `met-${tenant}-b`];
    const e = envWith({
      max_attempts: 2,
      // Without a location, regions are tried in config order: a first, then b.
      regions: [
        { id: 'first', latitude: 0, longitude: 0 },
        { id: 'second', latitude: 10, longitude: 10 },
      ],
      models: [{ id: 'm' }],
      backends: [
        { id: a, kind: 'vllm', region: 'first', url: sa.url, models: ['m'] },
        { id: b, kind: 'vllm', region: 'second', url: sb.url, models: ['m'] },
      ],
      tenants: { [tenant]: { models: ['*'] } },
      metrics: { flush_interval_ms: 0 },
    });
    const key = (await createKey(tenant, e)).key;
    const res = await chat(key, { model: 'm', messages: hi, max_tokens: 2 }, { env: e });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-router-backend')).toBe(b);
    await res.text();

    const parsed = parseExposition(await (await scrape(ADMIN_TOKEN, e)).text());
    expect(valueOf(parsed, 'router_requests_total', { tenant, model: 'm', region: 'second', backend: b, status: '200', outcome: 'ok' })).toBe(1);
    expect(valueOf(parsed, 'router_attempt_failures_total', { backend: a, cause: 'http_5xx' })).toBe(1);
    expect(valueOf(parsed, 'router_fallbacks_total', { model: 'm', from: a, to: b })).toBe(1);
    expect(valueOf(parsed, 'router_tokens_total', { tenant, model: 'm', direction: 'out' })).toBeGreaterThan(0);
  });

  it('[usage] enabled = false: the request is still counted in /metrics, and not in the ledger', async () => {
    const sim = await spawnSim({ name: 'met-off', models: ['m'] });
    const tenant = `off${crypto.randomUUID().slice(0, 8)}`;
    const backend = `met-${tenant}`;
    const router = (usage: boolean) => ({
      models: [{ id: 'm' }],
      backends: [{ id: backend, kind: 'vllm', region: 'here', url: sim.url, models: ['m'] }],
      regions: [{ id: 'here', latitude: 0, longitude: 0 }],
      tenants: { [tenant]: { models: ['*'] } },
      metrics: { flush_interval_ms: 0 },
      usage: { enabled: usage, flush_interval_ms: 0 },
    });
    const off = envWith(router(false));
    const key = (await createKey(tenant, off)).key;
    const ok = await chat(key, { model: 'm', messages: hi, max_tokens: 2 }, { env: off });
    expect(ok.status).toBe(200);
    await ok.text();
    // Refused by the route (a 400 after authentication): counted too.
    const bad = await chat(key, { model: 'm', messages: hi, temperature: 9 }, { env: off });
    expect(bad.status).toBe(400);
    await bad.text();

    const parsed = parseExposition(await (await scrape(ADMIN_TOKEN, off)).text());
    expect(valueOf(parsed, 'router_requests_total', { tenant, model: 'm', backend, status: '200', outcome: 'ok' })).toBe(1);
    expect(parsed.samples.filter((x) => x.name === 'router_requests_total' && x.labels.tenant === tenant && x.labels.status === '400').reduce((n, x) => n + x.value, 0)).toBe(1);
    expect(valueOf(parsed, 'router_tokens_total', { tenant, model: 'm', direction: 'out' })).toBeGreaterThan(0);
    expect(await ledgerRecords(tenant)).toHaveLength(0);

    // The control: the same request with [usage] on lands in the ledger.
    const on = envWith(router(true));
    const res = await chat(key, { model: 'm', messages: hi, max_tokens: 2 }, { env: on });
    expect(res.status).toBe(200);
    await res.text();
    expect((await ledgerRecords(tenant)).map((r) => [r.tenant, r.backend, r.status])).toEqual([[tenant, backend, 200]]);
  });
});
