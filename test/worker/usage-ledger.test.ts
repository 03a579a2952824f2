import { env as testEnv, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import type { UsageLedger } from '../../durable-objects/usage-ledger';
import { compileConfig, type CompiledConfig } from '../../worker/config/compiled';
import type { Env } from '../../worker/env';
import { usageWritesSettled } from '../../worker/telemetry/batch-queue';
import { ledgerName, recordUsage } from '../../worker/telemetry/record';
import type { UsageRecord } from '../../worker/protocol/usage-record';
import { baseConfig, envWith } from './support';
import { admin, uid } from './usage-support';

const env = testEnv as unknown as Env;
const ledger = (tenant: string) => env.USAGE_LEDGER.get(env.USAGE_LEDGER.idFromName(ledgerName(tenant)));
const waitUntil = { waitUntil: (_: Promise<unknown>) => {} }; // usageWritesSettled() tracks the writes

function record(tenant: string, i: number, over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    v: 1, request_id: `r-${tenant}-${i}`, ts: Date.UTC(2026, 4, 1, 10, 0, 0) + i, tenant, key_id: 'k1', user: null, feature: null, endpoint: 'chat',
    requested_model: 'm', model: 'm', backend: 'b', region: 'here', tier: 'fast', prompt_tokens: 10, cached_tokens: 0, completion_tokens: 5,
    tokens_estimated: false, cost_usd: 0.001, saved_usd: 0, latency_ms: 100, ttft_ms: null, tokens_per_s: null, status: 200, outcome: 'ok',
    cache: 'miss', attempts: 1, path: ['b'], error_code: null, client_request_id: `client-${i}`, ...over,
  };
}

/**
 * Runs an append inside the ledger object and aborts the object while it is in flight (after its
 * rows, before the rest of the call: retention, alarm, the answer), as the runtime does to an
 * object it kills: the call fails and the object restarts from storage.
 */
function appendThenKill(stub: DurableObjectStub<UsageLedger>, batch: UsageRecord[], days = 90): Promise<unknown> {
  return runInDurableObject(stub, (o: UsageLedger, state) => {
    const writing = o.append(batch, days);
    state.abort('killed mid-batch');
    return writing;
  });
}

function compiled(usage: Record<string, unknown>, tenants: string[] = []): CompiledConfig {
  const cfg = baseConfig();
  cfg.usage = usage;
  for (const t of tenants) cfg.tenants[t] = { models: ['*'] };
  const r = compileConfig(cfg);
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.config;
}

describe('usage ledger: idempotent, nothing lost', () => {
  it('a batch written twice lands once (INSERT OR IGNORE by request_id)', async () => {
    const t = `led-${uid()}`;
    const batch = [0, 1, 2].map((i) => record(t, i));
    expect(await ledger(t).append(batch, 90)).toEqual({ inserted: 3 });
    expect(await ledger(t).append([...batch, record(t, 3)], 90)).toEqual({ inserted: 1 });
    expect((await ledger(t).records()).map((r) => r.request_id)).toEqual([0, 1, 2, 3].map((i) => `r-${t}-${i}`));
  });

  it('a writer killed mid-batch: what landed stays, the caller sees a failure, and the retry lands every record exactly once', async () => {
    const t = `kill-${uid()}`;
    const batch = Array.from({ length: 10 }, (_, i) => record(t, i));
    const failed = await appendThenKill(ledger(t), batch).then(() => null, (e: unknown) => e);
    expect(failed).toBeInstanceOf(Error);
    // The runtime's kill: the object restarts; its storage keeps whatever committed (SQLite-backed
    // storage commits a turn's writes together, so all or none of the batch, never a torn row).
    const landed = (await ledger(t).records()).length;
    expect([0, batch.length]).toContain(landed);
    expect(await ledger(t).append(batch, 90)).toEqual({ inserted: batch.length - landed });
    expect((await ledger(t).records()).map((r) => r.request_id)).toEqual(batch.map((r) => r.request_id));
  });

  it('the isolate queue retries a batch whose writer died mid-flight: every record exactly once', async () => {
    // Through the isolate's queue (recordUsage), with a USAGE_LEDGER that forwards to the real
    // objects but kills the object during the first append (the runtime's abort), then lets the
    // queue's retry through.
    const t2 = `kill-${uid()}`;
    const appends: number[] = [];
    const ns = env.USAGE_LEDGER;
    const killing = {
      idFromName: (n: string) => ns.idFromName(n),
      get: (id: DurableObjectId) => ({
        append: (batch: UsageRecord[], days: number) => {
          appends.push(batch.length);
          return appends.length === 1 ? appendThenKill(ns.get(id), batch, days) : ns.get(id).append(batch, days);
        },
      }),
    } as unknown as Env['USAGE_LEDGER'];
    const config = compiled({ flush_interval_ms: 0, max_batch: 50, retry_base_ms: 5 }, [t2]);
    const records = Array.from({ length: 12 }, (_, i) => record(t2, i));
    for (const r of records) recordUsage({ ...env, USAGE_LEDGER: killing }, waitUntil, config, r);
    await usageWritesSettled();
    expect(appends.length).toBeGreaterThanOrEqual(2); // the first write died; the queue retried
    const stored = await ledger(t2).records();
    expect(stored.map((r) => r.request_id).sort()).toEqual(records.map((r) => r.request_id).sort());
    expect(new Set(stored.map((r) => r.request_id)).size).toBe(12);
    // Read back with the quality and batch columns a record without them has: null.
    expect(stored.find((r) => r.request_id === records[5]!.request_id)).toEqual({ ...records[5], deployment: null, deployment_version: null, finish_reason: null, refused: null, batch_id: null });
  });

  it('[usage] enabled = false: nothing is written', async () => {
    const t = `off-${uid()}`;
    recordUsage(env, waitUntil, compiled({ enabled: false }), record(t, 0));
    await usageWritesSettled();
    expect(await ledger(t).records()).toHaveLength(0);
  });
});

describe('GET /admin/usage', () => {
  const a = `rep-a-${uid()}`;
  const b = `rep-b-${uid()}`;
  const cfg = baseConfig();
  cfg.tenants[a] = { models: ['*'] };
  cfg.tenants[b] = { models: ['*'] };
  const e = envWith(cfg);
  const H = 3_600_000;
  const t0 = Date.UTC(2026, 4, 1, 10, 0, 0);
  let seeded: Promise<unknown> | null = null;
  // a: 10 requests on m (costs 0.001..0.010, latencies 10..100), one of them a 502; four have a TTFT
  // (40, 10, 30, 20: streams), one is an exact cache hit and one a semantic hit.
  // b: 4 on m-big in the next hour, none with a TTFT, the last a semantic hit.
  const aTtft = [40, 10, 30, 20];
  const aCache = (i: number) => (i === 5 ? 'hit' : i === 6 ? 'semantic-hit' : 'miss') as UsageRecord['cache'];
  const seed = () =>
    (seeded ??= Promise.all([
      ledger(a).append(Array.from({ length: 10 }, (_, i) => record(a, i, { cost_usd: (i + 1) / 1000, latency_ms: (i + 1) * 10, ttft_ms: aTtft[i] ?? null, cache: aCache(i), ...(i === 9 ? { status: 502, outcome: 'error' as const } : {}) })), 90),
      ledger(b).append(Array.from({ length: 4 }, (_, i) => record(b, i, { ts: t0 + H + i, model: 'm-big', cost_usd: 0.5, saved_usd: 0.25, latency_ms: 1000, prompt_tokens: 100, completion_tokens: 50, cache: i === 3 ? 'semantic-hit' : 'miss' })), 90),
    ]));
  const range = `from=${new Date(t0 - H).toISOString()}&to=${t0 + 3 * H}`;
  const get = async (q: string) => {
    await seed();
    return admin(`/admin/usage?${q}`, { env: e });
  };

  it('group_by=tenant,model: sums and exact percentiles per group', async () => {
    const res = await get(`group_by=tenant,model&${range}`);
    expect(res.status).toBe(200);
    const { rows } = (await res.json()) as { rows: Record<string, any>[] };
    const ra = rows.find((r) => r.tenant === a)!;
    expect(ra).toMatchObject({ tenant: a, model: 'm', requests: 10, prompt_tokens: 100, completion_tokens: 50, errors: 1, saved_usd: 0, cost_per_request_p50: 0.005, cost_per_request_p95: 0.01, cost_per_request_p99: 0.01, latency_ms_p50: 50, latency_ms_p95: 100, latency_ms_p99: 100 });
    expect(ra.cost_usd).toBeCloseTo(0.055, 12);
    expect(rows.find((r) => r.tenant === b)).toMatchObject({ model: 'm-big', requests: 4, prompt_tokens: 400, cost_usd: 2, saved_usd: 1, errors: 0, latency_ms_p50: 1000 });
  });

  it('TTFT percentiles over the records that have one (null when none does); cache hits and hit rate', async () => {
    const { rows } = (await (await get(`group_by=tenant&${range}`)).json()) as { rows: Record<string, any>[] };
    // a: TTFTs 10, 20, 30, 40 (nearest rank); 2 hits (exact + semantic) of 10 requests.
    expect(rows.find((r) => r.tenant === a)).toMatchObject({ ttft_ms_p50: 20, ttft_ms_p95: 40, ttft_ms_p99: 40, cache_hits: 2, cache_hit_rate: 0.2 });
    // b: no TTFT at all is null, not 0.
    expect(rows.find((r) => r.tenant === b)).toMatchObject({ ttft_ms_p50: null, ttft_ms_p95: null, ttft_ms_p99: null, cache_hits: 1, cache_hit_rate: 0.25 });
    // Merged across tenants: the TTFTs pool (b's missing ones do not count as 0), hits add up.
    const [all] = ((await (await get(`group_by=&${range}`)).json()) as { rows: Record<string, any>[] }).rows;
    expect(all).toMatchObject({ requests: 14, ttft_ms_p50: 20, ttft_ms_p95: 40, ttft_ms_p99: 40, cache_hits: 3, cache_hit_rate: 3 / 14 });
    const hourly = ((await (await get(`group_by=&granularity=hour&${range}`)).json()) as { rows: Record<string, any>[] }).rows;
    expect(hourly.map((r) => [r.ttft_ms_p50, r.cache_hits, r.cache_hit_rate])).toEqual([[20, 2, 0.2], [null, 1, 0.25]]);
  });

  it('groups merge across tenants (model only), and granularity=hour buckets them', async () => {
    const all = ((await (await get(`group_by=tier&${range}`)).json()) as { rows: Record<string, any>[] }).rows;
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ tier: 'fast', requests: 14, errors: 1, latency_ms_p50: 70, latency_ms_p99: 1000 });
    const hourly = ((await (await get(`group_by=tier&granularity=hour&${range}`)).json()) as { rows: Record<string, any>[] }).rows;
    expect(hourly.map((r) => [r.bucket, r.requests])).toEqual([[new Date(t0).toISOString(), 10], [new Date(t0 + H).toISOString(), 4]]);
  });

  it('format=csv: a header row, one line per row, quoted where needed', async () => {
    const res = await get(`group_by=tenant&granularity=day&format=csv&${range}&tenant=${a}`);
    expect(res.headers.get('content-type')).toContain('text/csv');
    const lines = (await res.text()).trimEnd().split('\r\n');
    expect(lines[0]).toBe('bucket,tenant,requests,prompt_tokens,completion_tokens,cost_usd,saved_usd,errors,cost_per_request_p50,cost_per_request_p95,cost_per_request_p99,latency_ms_p50,latency_ms_p95,latency_ms_p99,ttft_ms_p50,ttft_ms_p95,ttft_ms_p99,cache_hits,cache_hit_rate,' +
        'answered,refusals,refusal_rate,truncations,truncation_rate,output_tokens_mean,output_tokens_p50,output_tokens_p95,' +
        'feedback,feedback_positive,feedback_negative,negative_feedback_rate,feedback_mean_score,feedback_custom');
    expect(lines).toHaveLength(2);
    // The quality columns of records judged by none: 0 counts, empty rates and lengths.
    expect(lines[1]).toBe(`2026-05-01T00:00:00.000Z,${a},10,100,50,0.055,0,1,0.005,0.01,0.01,50,100,100,20,40,40,2,0.2,0,0,,0,,,,,0,0,0,,,0`);
    // No TTFT in the group: empty cells, as JSON's null.
    const other = (await (await get(`group_by=tenant&format=csv&${range}&tenant=${b}`)).text()).trimEnd().split('\r\n');
    expect(other[1]).toBe(`${b},4,400,200,2,1,0,0.5,0.5,0.5,1000,1000,1000,,,,1,0.25,0,0,,0,,,,,0,0,0,,,0`);
  });

  it('bad input is a 400 in OpenAI format; no admin token is a 401', async () => {
    for (const q of ['group_by=prompt', 'granularity=minute', 'from=yesterday', `from=${t0}&to=${t0 - 1}`, 'format=xml', 'colour=blue']) {
      const res = await get(q);
      expect(res.status, q).toBe(400);
      const body = (await res.json()) as { error: { type: string; code: string } };
      expect(body.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_value' });
    }
    expect((await fetchNoToken()).status).toBe(401);
  });
});

async function fetchNoToken() {
  const { call } = await import('./support');
  return call('/admin/usage');
}
