import { beforeAll, describe, expect, it } from 'vitest';
import { backgroundSettled } from '../../worker/isolate/background';
import type { Env } from '../../worker/env';
import { budgetView } from '../../worker/budget/lease';
import { compileConfig } from '../../worker/config/compiled';
import { tokenReservation } from '../../worker/ratelimit/request';
import { isolateState } from '../../worker/routing/isolate-state';
import type { UsageRecord } from '../../worker/protocol/usage-record';
import { FAST, spawnSim } from './sims';
import { ADMIN_TOKEN, call, chat, createKey, envWith } from './support';
import { ledgerRecords, uid } from './usage-support';

// The request lifecycle (worker/pipeline/): every exit path leaves exactly one usage record, settles
// the budget and the rate limit with what was really used, frees its backend slot and is counted
// in /metrics. The client leaving (a real socket) is in test/node/lifecycle-abort.test.ts.

const TOKEN_LIMIT = 10_000_000;

describe('every exit path settles', () => {
  const t = `lc-${uid()}`;
  const backends: string[] = [];
  const statuses: Record<string, number> = {};
  const headers: Record<string, Headers> = {};
  let records: UsageRecord[] = [];
  let env: Env;
  let degradedEnv: Env;
  let key: string;

  beforeAll(async () => {
    const ok = await spawnSim({ name: `${t}-ok`, models: ['m'], latency: FAST });
    const down = await spawnSim({ name: `${t}-down`, models: ['m-down'], latency: FAST });
    await down.faults({ error_rate: 1, status: 503 });
    const hang = await spawnSim({ name: `${t}-hang`, models: ['m-hang'], latency: FAST });
    await hang.faults({ hang: true });
    const cfg = (degraded: boolean) => ({
      regions: [{ id: 'here', latitude: 0, longitude: 0 }],
      models: [{ id: 'm' }, { id: 'm-down' }, { id: 'm-hang' }],
      backends: [
        { id: `ok-${t}`, kind: 'vllm', region: 'here', url: ok.url, models: ['m'] },
        { id: `down-${t}`, kind: 'vllm', region: 'here', url: down.url, models: ['m-down'] },
        { id: `hang-${t}`, kind: 'vllm', region: 'here', url: hang.url, models: ['m-hang'] },
      ],
      tiers: {
        fast: { models: ['m'] },
        flaky: { models: ['m-down'], fallback_tier: 'fast' },
        stuck: { models: ['m-hang'], fallback_tier: 'fast' },
      },
      tenants: { [t]: { models: ['*'], budget: { monthly_tokens: 1_000_000_000 } } },
      prices: { m: { input: 1, output: 2 } },
      cache: { tiers: { fast: { ttl_seconds: 600 } } },
      limits: { store: 'embedded', tenant: { tokens: TOKEN_LIMIT, window_s: 31 * 86_400 } },
      budgets: { report_interval_ms: 0 },
      usage: { flush_interval_ms: 0 },
      metrics: { flush_interval_ms: 200 },
      timeouts: { connect_ms: 2_000, ttft_ms: 600, total_ms: 15_000 },
      max_attempts: 2,
      ...(degraded ? { degraded_answer: 'Service busy, try again.' } : {}),
    });
    env = envWith(cfg(false));
    degradedEnv = envWith(cfg(true));
    backends.push(`ok-${t}`, `down-${t}`, `hang-${t}`);
    key = (await createKey(t, env)).key;

    const ask = async (name: string, body: Record<string, unknown>, opts: { env?: Env; headers?: Record<string, string> } = {}) => {
      const res = await chat(key, { messages: [{ role: 'user', content: name.startsWith('cache-') ? 'Say hi.' : `Say hi (${name}).` }], max_tokens: 12, ignore_eos: true, ...body }, { env: opts.env ?? env, headers: { 'x-request-id': name, ...opts.headers } });
      statuses[name] = res.status;
      headers[name] = res.headers;
      await res.text();
    };
    await ask('ok', { model: 'm' });
    await ask('stream', { model: 'm', stream: true });
    await ask('bad-request', { model: 'm', temperature: 'hot' });
    await ask('upstream-error', { model: 'm-down' });
    await ask('fallback', { model: 'flaky' });
    await ask('hang-fallback', { model: 'stuck' });
    await ask('degraded', { model: 'm-down' }, { env: degradedEnv });
    await ask('cache-miss', { model: 'fast', temperature: 0 });
    await backgroundSettled();
    await ask('cache-hit', { model: 'fast', temperature: 0 });
    await ask('deadline', { model: 'm-hang', stream: true }, { headers: { 'x-router-timeout-ms': '400' } });
    records = await ledgerRecords(t);
  }, 60_000);

  const rec = (name: string) => {
    const found = records.filter((r) => r.client_request_id === name);
    expect(found, name).toHaveLength(1);
    return found[0]!;
  };

  it('one record per request, keyed by the router, never by the client id', () => {
    expect(records.map((r) => r.client_request_id).sort()).toEqual(Object.keys(statuses).sort());
    expect(new Set(records.map((r) => r.request_id)).size).toBe(records.length);
    for (const r of records) expect(r.request_id).toMatch(/^req_[0-9a-f]{32}$/);
    expect(headers.ok!.get('x-router-request-id')).toBe(rec('ok').request_id);
    expect(headers.ok!.get('x-request-id')).toBe('ok');
  });

  it('each exit path ends as it should', () => {
    expect(statuses).toEqual({ ok: 200, stream: 200, 'bad-request': 400, 'upstream-error': 502, fallback: 200, 'hang-fallback': 200, degraded: 200, 'cache-miss': 200, 'cache-hit': 200, deadline: 504 });
    expect(rec('ok')).toMatchObject({ outcome: 'ok', backend: `ok-${t}`, completion_tokens: 12 });
    // Upstream streaming for every request: a non-streamed answer has a time to first token too.
    expect(rec('ok').ttft_ms).not.toBeNull();
    expect(rec('stream')).toMatchObject({ outcome: 'ok', completion_tokens: 12 });
    expect(rec('bad-request')).toMatchObject({ outcome: 'error', attempts: 0, cost_usd: 0 });
    expect(rec('upstream-error')).toMatchObject({ outcome: 'error', error_code: 'upstream_error', backend: null, cost_usd: 0 });
    expect(rec('fallback')).toMatchObject({ outcome: 'ok', backend: `ok-${t}`, path: [`down-${t}`, `ok-${t}`] });
    expect(rec('hang-fallback')).toMatchObject({ outcome: 'ok', backend: `ok-${t}`, path: [`hang-${t}`, `ok-${t}`] });
    // ttft_ms (600 ms) bounds the hanging attempt, not total_ms (15 s): a correctness bound, not a speed claim.
    expect(rec('hang-fallback').latency_ms).toBeLessThan(10_000);
    expect(rec('degraded')).toMatchObject({ outcome: 'degraded', cost_usd: 0, completion_tokens: 0 });
    expect(rec('cache-miss')).toMatchObject({ cache: 'miss', outcome: 'ok' });
    expect(rec('cache-hit')).toMatchObject({ cache: 'hit', cost_usd: 0, prompt_tokens: 0, completion_tokens: 0, attempts: 0 });
    expect(rec('deadline')).toMatchObject({ outcome: 'error', error_code: 'upstream_timeout', cost_usd: 0 });
  });

  it('no backend slot is left held', () => {
    for (const b of backends) expect({ b, inFlight: isolateState.inFlight(b) }).toEqual({ b, inFlight: 0 });
  });

  it('the budget holds exactly what the ledger recorded, nothing held for a request', async () => {
    const ledgerTokens = records.reduce((n, r) => n + r.prompt_tokens + r.completion_tokens, 0);
    expect(ledgerTokens).toBeGreaterThan(0);
    let last: { used_tokens: number; reserved_tokens: number } | null = null;
    for (const end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
      const res = await call(`/admin/tenants/${t}/budget`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, env });
      last = (await res.json()) as { used_tokens: number; reserved_tokens: number };
      if (last.used_tokens === ledgerTokens) break;
    }
    expect(last).toMatchObject({ used_tokens: ledgerTokens });
    // What the object still reserves is this isolate's lease; none of it is held for a request.
    expect(budgetView(t)?.lease?.inflight).toBe(0);
  });

  it('the tokens limit was corrected to the same usage', async () => {
    await backgroundSettled();
    const probe = { model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'hi' }] };
    const res = await chat(key, probe, { env });
    await res.text();
    const ledgerTokens = records.reduce((n, r) => n + r.prompt_tokens + r.completion_tokens, 0);
    const compiled = compileConfig(env.ROUTER);
    if (!compiled.ok) throw new Error('config');
    const config = compiled.config;
    const held = tokenReservation(config, 'chat', probe, [config.raw.models.find((m) => m.id === 'm')!]);
    // The limit less every request's real usage, less the probe's own reservation (corrected after its header was made).
    expect(Number(res.headers.get('x-ratelimit-remaining-tokens'))).toBe(TOKEN_LIMIT - ledgerTokens - held);
  });

  it('/metrics counts every request, with no further traffic', async () => {
    const res = await call('/metrics', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, env });
    const text = await res.text();
    const counted = text
      .split('\n')
      .filter((l) => l.startsWith('router_requests_total{') && l.includes(`tenant="${t}"`))
      .reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
    expect(counted).toBe((await ledgerRecords(t)).length); // the probe above included
  });
});
