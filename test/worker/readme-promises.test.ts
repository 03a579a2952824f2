// Promises the README makes that no other test held it to: /readyz, max_concurrency, fail-closed
// budgets, /metrics without its aggregator, the ledger's retention alarm, collector_secret, and the
// admin API's refusals (no ADMIN_TOKEN; no or a wrong token on every writing route).
import { env as testEnv, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test';
import { beforeEach, describe, expect, it } from 'vitest';
import type { UsageLedger } from '../../durable-objects/usage-ledger';
import { compileConfig } from '../../worker/config/compiled';
import type { Env } from '../../worker/env';
import { resetBudgetView } from '../../worker/budget/lease';
import { resetIsolate } from '../../worker/isolate/registry';
import { isolateState } from '../../worker/routing/isolate-state';
import { usageWritesSettled } from '../../worker/telemetry/batch-queue';
import { ledgerName, recordUsage } from '../../worker/telemetry/record';
import type { UsageRecord } from '../../worker/protocol/usage-record';
import { withAdmin } from '../support/admin';
import { uid } from '../support/uid';
import { spawnWebhook } from '../support/webhook';
import { FAST, spawnSim } from './sims';
import { admin, baseConfig, call, chat, createKey, envWith, errorOf } from './support';

const env = testEnv as unknown as Env;
const hi = [{ role: 'user', content: 'Say hello.' }];

beforeEach(() => {
  resetIsolate();
  resetBudgetView();
});

/** A router of this test's own: one region, the given backends (each its own simulator serving "m"), one tenant. */
async function stack(backends: { id: string; max_concurrency?: number }[], extra: Record<string, unknown> = {}) {
  const t = `rp-${uid()}`;
  const sims = await Promise.all(backends.map((b) => spawnSim({ name: `${t}-${b.id}`, models: ['m'], latency: FAST })));
  const cfg: Record<string, any> = {
    regions: [{ id: 'here', latitude: 0, longitude: 0 }],
    models: [{ id: 'm' }],
    backends: backends.map((b, i) => ({ kind: 'vllm', region: 'here', models: ['m'], ...b, id: `${t}-${b.id}`, url: sims[i]!.url })),
    tenants: { [t]: { models: ['*'] } },
    breaker: { enabled: false },
    routing: { policy: 'round-robin' },
    ...extra,
  };
  const e = envWith(cfg);
  const key = (await createKey(t, e)).key;
  return { t, cfg, e, id: (b: string) => `${t}-${b}`, ask: (on: Env = e) => chat(key, { model: 'm', messages: hi, max_tokens: 2 }, { env: on }) };
}

describe('GET /readyz', () => {
  it('200 while a backend is usable; 503 no_backend_available once this isolate skips every one; 200 again after a success', async () => {
    const s = await stack([{ id: 'a' }, { id: 'b' }]);
    const ready = await call('/readyz', { env: s.e });
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', backends: 2, usable: 2 });
    // Three failures in a row make this isolate skip a backend (for 10 s).
    for (let i = 0; i < 3; i++) isolateState.failure(s.id('a'));
    expect(await (await call('/readyz', { env: s.e })).json()).toEqual({ status: 'ready', backends: 2, usable: 1 });
    for (let i = 0; i < 3; i++) isolateState.failure(s.id('b'));
    const down = await call('/readyz', { env: s.e });
    expect(down.status).toBe(503);
    expect(await errorOf(down)).toMatchObject({ code: 'no_backend_available' });
    isolateState.success(s.id('b'));
    expect((await call('/readyz', { env: s.e })).status).toBe(200);
  });
});

describe('max_concurrency per backend', () => {
  it('a backend at its max_concurrency goes to the end of the chain, not out of it', async () => {
    const s = await stack([{ id: 'a', max_concurrency: 1 }, { id: 'b' }]);
    // Round-robin over both while a has room.
    const free = new Set<string | null>();
    for (let i = 0; i < 4; i++) free.add((await s.ask()).headers.get('x-router-backend'));
    expect([...free].sort()).toEqual([s.id('a'), s.id('b')]);
    // One request in flight on a (this isolate's count, as the executor keeps it): a is full.
    const release = isolateState.begin(s.id('a'));
    const full: (string | null)[] = [];
    for (let i = 0; i < 4; i++) full.push((await s.ask()).headers.get('x-router-backend'));
    expect(full).toEqual(Array(4).fill(s.id('b')));
    // b failing: a, full, is the last resort and still answers.
    for (let i = 0; i < 3; i++) isolateState.failure(s.id('b'));
    const lastResort = await s.ask();
    expect(lastResort.status).toBe(200);
    expect(lastResort.headers.get('x-router-backend')).toBe(s.id('a'));
    release();
  });
});

describe('budgets fail closed', () => {
  it('503 budget_unavailable when the tenant quota object cannot answer a hop it needs', async () => {
    const s = await stack([{ id: 'a' }]);
    const cfg = structuredClone(s.cfg); // a new object: compiled configs are cached per object
    cfg.tenants[s.t].budget = { monthly_tokens: 1_000_000 };
    const e = envWith(cfg);
    // Every call to the tenant's object fails, as when it is unreachable.
    const unreachable = {
      idFromName: (n: string) => env.QUOTAS.idFromName(n),
      get: () => new Proxy({}, { get: () => async () => Promise.reject(new Error('Durable Object unreachable (test)')) }),
    } as unknown as Env['QUOTAS'];
    const res = await s.ask({ ...e, QUOTAS: unreachable });
    expect(res.status).toBe(503);
    expect(await errorOf(res)).toMatchObject({ code: 'budget_unavailable' });
    // The same tenant with its object reachable is served.
    expect((await s.ask(e)).status).toBe(200);
  });
});

describe('GET /metrics without its sources', () => {
  const scrape = (e: Env) => admin('/metrics', { env: e });

  it('an unreachable aggregator fails the scrape: 503 metrics_unavailable', async () => {
    const broken = { idFromName: (n: string) => env.METRICS.idFromName(n), get: () => new Proxy({}, { get: () => async () => Promise.reject(new Error('unreachable (test)')) }) };
    const res = await scrape({ ...env, METRICS: broken } as unknown as Env);
    expect(res.status).toBe(503);
    expect(await errorOf(res)).toMatchObject({ code: 'metrics_unavailable' });
  });

  it('an unreadable source is left out and counted in router_metrics_source_errors{source}', async () => {
    const broken = { idFromName: (n: string) => env.BREAKERS.idFromName(n), get: () => new Proxy({}, { get: () => async () => Promise.reject(new Error('unreachable (test)')) }) };
    const res = await scrape({ ...env, BREAKERS: broken } as unknown as Env);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/^router_metrics_source_errors\{source="breakers"\} 1$/m);
    expect(text).not.toMatch(/^router_metrics_source_errors\{source="backend_lifecycle"\}/m);
    expect(text).not.toMatch(/^router_breaker_state\{/m);
  });
});

const DAY_MS = 86_400_000;
function usageRecord(tenant: string, i: number, ts: number): UsageRecord {
  return {
    v: 1, request_id: `r-${tenant}-${i}`, ts, tenant, key_id: 'k1', user: null, feature: null, endpoint: 'chat',
    requested_model: 'm', model: 'm', backend: 'b', region: 'here', tier: null, prompt_tokens: 10, cached_tokens: 0, completion_tokens: 5,
    tokens_estimated: false, cost_usd: 0.001, saved_usd: 0, latency_ms: 100, ttft_ms: null, tokens_per_s: null, status: 200, outcome: 'ok',
    cache: 'miss', attempts: 1, path: ['b'], error_code: null,
  };
}

describe('the usage ledger', () => {
  it('arms a daily retention alarm that deletes rows older than retention_days, and re-arms it', async () => {
    const t = `ret-${uid()}`;
    const stub = env.USAGE_LEDGER.get(env.USAGE_LEDGER.idFromName(ledgerName(t)));
    const now = Date.now();
    const rows = [usageRecord(t, 0, now - 10 * DAY_MS), usageRecord(t, 1, now - 8 * DAY_MS), usageRecord(t, 2, now - 6 * DAY_MS), usageRecord(t, 3, now - DAY_MS)];
    expect(await stub.append(rows, 7)).toEqual({ inserted: 4 });
    const armed = await runInDurableObject(stub, (_o: UsageLedger, state) => state.storage.getAlarm());
    expect(armed).not.toBeNull();
    expect(armed! - now).toBeGreaterThan(DAY_MS - 60_000); // a day out (within the test's own minute)
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect((await stub.records()).map((r) => r.request_id)).toEqual([`r-${t}-2`, `r-${t}-3`]);
    expect(await runInDurableObject(stub, (_o: UsageLedger, state) => state.storage.getAlarm())).not.toBeNull();
  });
});

describe('[usage] collector_secret', () => {
  it('is sent to the collector as authorization: Bearer <the secret it names>', async () => {
    const hook = await spawnWebhook();
    const cfg = baseConfig();
    cfg.usage = { flush_interval_ms: 0, retry_base_ms: 5, ledger: false, collector_url: hook.url, collector_secret: 'USAGE_COLLECTOR_TOKEN' };
    const compiled = compileConfig(cfg);
    if (!compiled.ok) throw new Error(compiled.errors.join('; '));
    const t = `col-${uid()}`;
    recordUsage({ ...env, USAGE_COLLECTOR_TOKEN: 'collector-s3cret' } as Env, { waitUntil: () => {} }, compiled.config, usageRecord(t, 0, Date.now()));
    await usageWritesSettled();
    const calls = await hook.calls();
    expect(calls).toHaveLength(1);
    expect(calls[0]!.headers.authorization).toBe('Bearer collector-s3cret');
    expect((JSON.parse(calls[0]!.body) as { records: UsageRecord[] }).records.map((r) => r.request_id)).toEqual([`r-${t}-0`]);
  });
});

/** Every admin route with a method that changes something (README "Admin API"), with a body it would accept. */
const WRITES: { method: 'POST' | 'PUT' | 'DELETE'; path: string; body?: unknown }[] = [
  { method: 'POST', path: '/admin/keys', body: { tenant: 'demo', name: 'nope' } },
  { method: 'DELETE', path: '/admin/keys/KEY' },
  { method: 'PUT', path: '/admin/keys/KEY/limits', body: { requests: 1, window_s: 60 } },
  { method: 'DELETE', path: '/admin/keys/KEY/limits' },
  { method: 'POST', path: '/admin/breakers/vllm-us-east-8b/reset' },
  { method: 'POST', path: '/admin/backends/vllm-us-east-8b/events', body: { type: 'scaled_down' } },
  { method: 'PUT', path: '/admin/tenants/demo/budget', body: { monthly_tokens: 1 } },
  { method: 'DELETE', path: '/admin/tenants/demo/budget' },
  { method: 'POST', path: '/admin/tenants/demo/budget/approve-overage' },
];
const READS = ['/admin/keys', '/admin/keys/KEY/limits', '/admin/breakers', '/admin/breakers/vllm-us-east-8b', '/admin/backends', '/admin/backends/vllm-us-east-8b', '/admin/tenants/demo/budget', '/admin/usage'];

describe('the admin API refuses', () => {
  it('everything, with the right token too, when ADMIN_TOKEN is not set (admin_disabled)', async () => {
    const off = { ...env, ADMIN_TOKEN: undefined } as unknown as Env;
    const all = [...READS.map((path) => ({ method: 'GET', path, body: undefined as unknown })), ...WRITES];
    for (const r of all) {
      const res = await call(r.path, withAdmin({ method: r.method, env: off, ...(r.body ? { body: JSON.stringify(r.body) } : {}) }));
      expect(`${r.method} ${r.path}: ${res.status}`).toBe(`${r.method} ${r.path}: 401`);
      expect((await errorOf(res)).code, `${r.method} ${r.path}`).toBe('admin_disabled');
    }
  });

  it('every write without a token or with a wrong one (401), and changes nothing', async () => {
    const { id } = await createKey('demo');
    const before = await (await admin('/admin/keys?tenant=demo')).json();
    for (const r of WRITES) {
      const path = r.path.replace('KEY', id);
      const body = r.body ? { body: JSON.stringify(r.body), headers: { 'content-type': 'application/json' } } : {};
      const none = await call(path, { method: r.method, ...body });
      expect(`${r.method} ${path}: ${none.status}`).toBe(`${r.method} ${path}: 401`);
      expect((await errorOf(none)).code).toBe('invalid_admin_token');
      const wrong = await call(path, withAdmin({ method: r.method, ...(r.body ? { body: JSON.stringify(r.body) } : {}) }, 'not-the-admin-token'));
      expect(`${r.method} ${path}: ${wrong.status}`).toBe(`${r.method} ${path}: 401`);
    }
    expect(await (await admin('/admin/keys?tenant=demo')).json()).toEqual(before);
    expect((await admin(`/admin/keys/${id}/limits`)).status).not.toBe(401);
  });
});
