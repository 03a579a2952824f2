import { beforeAll, describe, expect, it } from 'vitest';
import { backgroundSettled } from '../../worker/isolate/background';
import type { Env } from '../../worker/env';
import { usageWritesSettled } from '../../worker/telemetry/batch-queue';
import { usageRecordSchema, type UsageRecord } from '../../worker/protocol/usage-record';
import { FAST, spawnSim } from './sims';
import { chat, createKey, envWith } from './support';
import { fakeAnalytics, ledgerRecords, spawnCollector, uid } from './usage-support';

// One seeded run through a router of this test's own: a plain chat, a stream, a cache hit, a
// rate-limited request, a failed backend, a client that leaves mid-stream and a bad request.
// Every one must leave exactly one record, in the ledger, in Analytics Engine and at the collector.

const PRICES = { m: { input: 1, output: 2 }, 'm-slow': { input: 1, output: 2 }, 'm-down': { input: 1, output: 2 } };

describe('usage records: one per request, every sink', () => {
  const t = `us-${uid()}`;
  const secret = `PROMPT-SECRET-${uid()}`;
  const messages = [{ role: 'user', content: `Say hello. ${secret}` }];
  const ids: Record<string, string> = {};
  const statuses: Record<string, number> = {};
  let records: UsageRecord[] = [];
  let ae: ReturnType<typeof fakeAnalytics>;
  let collector: Awaited<ReturnType<typeof spawnCollector>>;

  beforeAll(async () => {
    const sim = await spawnSim({ name: t, models: ['m'], latency: FAST });
    const slow = await spawnSim({ name: `${t}-slow`, models: ['m-slow'], latency: { ...FAST, itl_ms: 20 } });
    collector = await spawnCollector({ fail_first: 1 }); // the first delivery fails: retried, not lost
    ae = fakeAnalytics();
    const cfg = {
      regions: [{ id: 'here', latitude: 0, longitude: 0 }],
      models: [{ id: 'm' }, { id: 'm-slow' }, { id: 'm-down' }],
      backends: [
        { id: `b-${t}`, kind: 'vllm', region: 'here', url: sim.url, models: ['m'] },
        { id: `slow-${t}`, kind: 'vllm', region: 'here', url: slow.url, models: ['m-slow'] },
        // Nothing listens on port 9 (discard) on loopback: every attempt is a connect error.
        { id: `down-${t}`, kind: 'vllm', region: 'here', url: 'http://127.0.0.1:9', models: ['m-down'] },
      ],
      tiers: { fast: { models: ['m'] } },
      tenants: { [t]: { models: ['*'] } },
      prices: PRICES,
      cache: { tiers: { fast: { ttl_seconds: 600 } } },
      limits: { store: 'embedded', user: { requests: 1, window_s: 3600 } },
      usage: { flush_interval_ms: 0, retry_base_ms: 5, collector_url: collector.url },
      max_attempts: 1,
    };
    const e = { ...envWith(cfg), USAGE: ae.binding } as unknown as Env;
    const key = await createKey(t, e);
    const ask = async (name: string, body: Record<string, unknown>, headers: Record<string, string> = {}) => {
      ids[name] = `req-${t}-${name}`;
      const res = await chat(key.key, { messages, max_tokens: 20, ignore_eos: true, ...body }, { env: e, headers: { 'x-request-id': ids[name]!, 'x-router-feature': 'search', ...headers } });
      statuses[name] = res.status;
      return res;
    };
    await (await ask('chat', { model: 'm' }, { 'x-router-user': 'alice' })).text();
    await (await ask('stream', { model: 'm', stream: true })).text();
    await (await ask('cached-miss', { model: 'fast', temperature: 0 })).text();
    await backgroundSettled();
    await (await ask('cached-hit', { model: 'fast', temperature: 0 })).text();
    await (await ask('limited', { model: 'm' }, { 'x-router-user': 'alice' })).text(); // alice's one request per hour is used
    await (await ask('failed', { model: 'm-down' })).text();
    await (await ask('invalid', { model: 'm', temperature: 'hot' })).text();
    const cut = await ask('cut', { model: 'm-slow', stream: true, max_tokens: 500 });
    const reader = cut.body!.getReader();
    const decoder = new TextDecoder();
    let seen = '';
    while ((seen.match(/"content":"[^"]/g) ?? []).length < 3) seen += decoder.decode((await reader.read()).value);
    await reader.cancel();
    await usageWritesSettled();
    records = await ledgerRecords(t);
  });

  const rec = (name: string) => {
    const found = records.filter((r) => r.client_request_id === ids[name]);
    expect(found, name).toHaveLength(1);
    return found[0]!;
  };

  it('exactly one record per request, each valid against the shared schema', () => {
    expect(records.map((r) => r.client_request_id).sort()).toEqual(Object.values(ids).sort());
    // The ledger key is the router's own id, unique per request.
    expect(new Set(records.map((r) => r.request_id)).size).toBe(records.length);
    for (const r of records) expect(usageRecordSchema.safeParse(r).success, r.request_id).toBe(true);
  });

  it('a plain chat: who, what, which backend, tokens and cost from [prices]', () => {
    const r = rec('chat');
    expect(r).toMatchObject({ tenant: t, user: 'alice', feature: 'search', endpoint: 'chat', requested_model: 'm', model: 'm', backend: `b-${t}`, region: 'here', status: 200, outcome: 'ok', cache: 'bypass', attempts: 1, path: [`b-${t}`], error_code: null, tokens_estimated: false, saved_usd: 0 });
    expect(r.ttft_ms).not.toBeNull(); // streamed from the backend, assembled: TTFT for every request
    expect(r.key_id).toMatch(/.+/);
    expect(r.completion_tokens).toBe(20);
    expect(r.prompt_tokens).toBeGreaterThan(0);
    expect(r.cost_usd).toBeCloseTo((r.prompt_tokens * 1 + 20 * 2) / 1e6, 12);
    expect(r.latency_ms).toBeGreaterThanOrEqual(0);
  });

  it('a stream: counted from its usage chunk, with time to first token and tokens per second', () => {
    const r = rec('stream');
    expect(r).toMatchObject({ status: 200, outcome: 'ok', completion_tokens: 20, tokens_estimated: false, backend: `b-${t}` });
    expect(r.ttft_ms).not.toBeNull();
    expect(r.ttft_ms!).toBeLessThanOrEqual(r.latency_ms);
    expect(r.cost_usd).toBeGreaterThan(0);
  });

  it('a cache hit costs nothing and says what it saved', () => {
    const miss = rec('cached-miss');
    const hit = rec('cached-hit');
    expect(miss).toMatchObject({ cache: 'miss', tier: 'fast', requested_model: 'fast', model: 'm' });
    expect(hit).toMatchObject({ cache: 'hit', tier: 'fast', model: 'm', backend: null, cost_usd: 0, prompt_tokens: 0, completion_tokens: 0, attempts: 0, status: 200, outcome: 'ok' });
    expect(hit.saved_usd).toBeCloseTo(miss.cost_usd, 12);
  });

  it('refusals after authentication are recorded: 429, a failed backend, a bad request', () => {
    expect(statuses.limited).toBe(429);
    expect(rec('limited')).toMatchObject({ status: 429, outcome: 'rate_limited', error_code: 'rate_limit_exceeded', cost_usd: 0, attempts: 0, requested_model: 'm', user: 'alice' });
    expect(statuses.failed).toBe(502);
    expect(rec('failed')).toMatchObject({ status: 502, outcome: 'error', error_code: 'upstream_error', attempts: 1, path: [`down-${t}`], model: null, backend: null, cost_usd: 0 });
    expect(statuses.invalid).toBe(400);
    expect(rec('invalid')).toMatchObject({ status: 400, outcome: 'error', error_code: 'invalid_value', requested_model: '' });
  });

  it('a client that leaves mid-stream: what was produced, estimated and marked', () => {
    const r = rec('cut');
    expect(r).toMatchObject({ status: 200, outcome: 'client_closed', tokens_estimated: true, backend: `slow-${t}` });
    expect(r.completion_tokens).toBeGreaterThanOrEqual(3);
    expect(r.completion_tokens).toBeLessThan(500);
    expect(r.prompt_tokens).toBeGreaterThan(0);
    expect(r.cost_usd).toBeCloseTo((r.prompt_tokens + r.completion_tokens * 2) / 1e6, 12);
  });

  it('never the prompt: not in the ledger, Analytics Engine or the collector', async () => {
    const calls = await collector.calls();
    for (const dump of [JSON.stringify(records), JSON.stringify(ae.points), JSON.stringify(calls)]) expect(dump).not.toContain(secret);
    expect(JSON.stringify(records)).not.toContain('Say hello');
  });

  it('Analytics Engine: one point per request, indexed by tenant, in the documented columns', () => {
    const mine = ae.points.filter((p) => p.indexes?.[0] === t);
    expect(mine.map((p) => p.blobs![15]).sort()).toEqual(Object.values(ids).sort());
    const p = mine.find((x) => x.blobs![15] === ids.chat)!;
    const r = rec('chat');
    expect(p.blobs).toEqual([r.request_id, t, r.key_id, 'alice', 'search', 'chat', 'm', 'm', `b-${t}`, 'here', r.tier, 'ok', 'bypass', `b-${t}`, null, ids.chat, null, null, r.finish_reason ?? null]);
    expect(p.doubles).toEqual([r.ts, r.prompt_tokens, 0, 20, 0, r.cost_usd, 0, r.latency_ms, r.ttft_ms, r.tokens_per_s, 200, 1, r.refused === true ? 1 : r.refused === false ? 0 : -1]);
  });

  it('the collector: batches of JSON records, a failed delivery retried, every record once', async () => {
    const calls = await collector.calls();
    expect(calls[0]!.status).toBe(500);
    const delivered = calls.filter((c) => c.status === 200).flatMap((c) => (JSON.parse(c.body) as { records: UsageRecord[] }).records.map((r) => r.client_request_id));
    expect(delivered.sort()).toEqual(Object.values(ids).sort());
  });
});
