import { createExecutionContext, env as testEnv, evictDurableObject, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import type { MetricsSnapshot } from '../../worker/protocol/metrics';
import type { Env } from '../../worker/env';
import { renderExposition } from '../../worker/telemetry/exposition';
import { MetricsIsolate, type Send } from '../../worker/telemetry/metrics';
import { minuteOf } from '../../worker/protocol/rules/minute-series';
import { upstashHealth } from '../../worker/cache/upstash-health';
import { requestFamilies } from '../../worker/telemetry/scrape';
import { parseExposition, record, valueOf } from './metrics-support';

const env = testEnv as unknown as Env;
/** An aggregator of this test's own, so no counts leak between tests. */
const fresh = () => env.METRICS.get(env.METRICS.idFromName(`test-${crypto.randomUUID()}`));

async function scrape(stub: ReturnType<typeof fresh>) {
  const snap = (await stub.snapshot()) as unknown as MetricsSnapshot;
  return parseExposition(renderExposition(requestFamilies([snap])));
}

describe('MetricsAggregator', () => {
  it('sums what two isolates counted; each flushes when due (interval or batch size), one flush at a time, and a timer sends the rest with no further traffic', async () => {
    const stub = fresh();
    const send: Send = (d) => stub.merge(d);
    const [a, b] = [new MetricsIsolate(), new MetricsIsolate()];
    const contexts: ExecutionContext[] = [];
    const observe = (iso: MetricsIsolate, r: ReturnType<typeof record>, settings: { flush_interval_ms: number; flush_max_records: number }) => {
      const ctx = createExecutionContext();
      contexts.push(ctx);
      iso.observe(r, ctx, settings, send);
      return iso.acc.records; // what is still waiting in the isolate, right after the request
    };
    // a: 300 ms between flushes, or 3 records. Its first record goes at once (nothing sent yet).
    const batched = { flush_interval_ms: 300, flush_max_records: 3 };
    const pending = [];
    for (let i = 0; i < 4; i++) {
      pending.push(observe(a, record({ latency_ms: 100 }), batched));
      if (i === 0) await waitOnExecutionContext(contexts[0]!); // one flush at a time: let the first land
    }
    expect(pending).toEqual([0, 1, 2, 0]);
    // A fifth waits for the interval: the timer, held in its request's waitUntil, sends it.
    expect(observe(a, record({ latency_ms: 100 }), batched)).toBe(1);
    for (const ctx of contexts) await waitOnExecutionContext(ctx);
    expect(a.acc.records).toBe(0);
    // b: after every request.
    const eager = { flush_interval_ms: 0, flush_max_records: 1000 };
    expect(observe(b, record({ latency_ms: 3_000, completion_tokens: 5 }), eager)).toBe(0);
    await waitOnExecutionContext(contexts.at(-1)!);
    expect(observe(b, record({ tenant: 'acme', status: 502, outcome: 'error', error_code: 'upstream_error' }), eager)).toBe(0);
    for (const ctx of contexts) await waitOnExecutionContext(ctx);

    const e = await scrape(stub);
    const demo = { tenant: 'demo', model: 'llama-3.1-8b', region: 'us-east', backend: 'vllm-us-east-8b' };
    expect(valueOf(e, 'router_requests_total', { ...demo, status: '200', outcome: 'ok' })).toBe(6);
    expect(valueOf(e, 'router_requests_total', { tenant: 'acme', status: '502', outcome: 'error' })).toBe(1);
    expect(valueOf(e, 'router_tokens_total', { tenant: 'demo', model: 'llama-3.1-8b', direction: 'out' })).toBe(5 * 20 + 5);
    expect(valueOf(e, 'router_request_duration_seconds_bucket', { ...demo, le: '0.1' })).toBe(5);
    expect(valueOf(e, 'router_request_duration_seconds_bucket', { ...demo, le: '5' })).toBe(6);
    expect(valueOf(e, 'router_request_duration_seconds_count', demo)).toBe(6);
  });

  it('records that end while a flush is in flight go with the next one, none lost or doubled', async () => {
    const stub = fresh();
    const send: Send = (d) => stub.merge(d);
    const iso = new MetricsIsolate();
    const eager = { flush_interval_ms: 0, flush_max_records: 1000 };
    const first = createExecutionContext();
    iso.observe(record(), first, eager, send); // starts a flush
    iso.observe(record(), first, eager, send); // one is in flight: waits
    expect(iso.acc.records).toBe(1);
    // When the flush in flight ends, the one that waited goes too, in the same waitUntil.
    await waitOnExecutionContext(first);
    expect(iso.acc.empty).toBe(true);
    const second = createExecutionContext();
    iso.observe(record(), second, eager, send);
    await waitOnExecutionContext(second);
    expect(iso.acc.empty).toBe(true);
    expect(valueOf(await scrape(stub), 'router_requests_total', { tenant: 'demo', status: '200' })).toBe(3);
  });

  it('applies a resent flush once, and keeps its totals across a restart', async () => {
    const stub = fresh();
    const sent: Parameters<Send>[0][] = [];
    let fail = true;
    const send: Send = async (d) => {
      sent.push(structuredClone(d));
      const applied = await stub.merge(d);
      if (fail) throw new Error('reply lost'); // applied, but the isolate cannot know
      return applied;
    };
    const iso = new MetricsIsolate();
    iso.acc.observeRecord(record());
    await expect(iso.flushNow(send)).rejects.toThrow('reply lost');
    fail = false;
    iso.acc.observeRecord(record());
    await iso.flushNow(send); // resends seq 1 (ignored), then sends seq 2
    expect(sent.map((d) => d.seq)).toEqual([1, 1, 2]);
    expect(await stub.merge(sent[0]!)).toBe(false);

    await evictDurableObject(stub);
    const e = await scrape(stub);
    expect(valueOf(e, 'router_requests_total', { tenant: 'demo', status: '200' })).toBe(2);
  });

  it('Upstash errors and fallbacks (per-isolate totals) reach the aggregator as their growth', async () => {
    const stub = fresh();
    const send: Send = (d) => stub.merge(d);
    const iso = new MetricsIsolate();
    upstashHealth.reset();
    upstashHealth.fellBack('cache', 'get');
    upstashHealth.fellBack('cache', 'get');
    await iso.flushNow(send);
    upstashHealth.fellBack('cache', 'get');
    upstashHealth.failed('http://127.0.0.1:1', 'ratelimit', 'limit', new Error('down'), 0);
    await iso.flushNow(send);
    upstashHealth.reset();
    const e = await scrape(stub);
    expect(valueOf(e, 'router_upstash_fallbacks_total', { component: 'cache', op: 'get' })).toBe(3);
    expect(valueOf(e, 'router_upstash_errors_total', { component: 'ratelimit', op: 'limit' })).toBe(1);
  });

  it('minutes(): per (tenant, key, model) buckets from both isolates, since a time, the last hour only', async () => {
    const stub = fresh();
    const now = Date.now();
    const thisMinute = minuteOf(now);
    const a = new MetricsIsolate();
    const b = new MetricsIsolate();
    a.acc.observeRecord(record({ ts: now, ttft_ms: 30, latency_ms: 90, cost_usd: 0.5 }));
    a.acc.observeRecord(record({ ts: now - 5 * 60_000 }));
    a.acc.observeRecord(record({ ts: now - 61 * 60_000 })); // older than the kept hour
    b.acc.observeRecord(record({ ts: now, ttft_ms: 30_001, latency_ms: 90, cost_usd: 0.25, outcome: 'stream_error' }));
    b.acc.observeRecord(record({ ts: now, key_id: null, model: null, tenant: 'acme' }));
    await a.flushNow((d) => stub.merge(d, now));
    await b.flushNow((d) => stub.merge(d, now));

    const all = await stub.minutes(now - 60 * 60_000);
    expect(all.map((m) => m.minute)).toEqual([thisMinute - 5 * 60_000, thisMinute, thisMinute]);
    const recent = await stub.minutes(now - 60_000);
    const demo = recent.find((m) => m.tenant === 'demo')!;
    expect(demo).toMatchObject({ minute: thisMinute, key_id: 'key_1', model: 'llama-3.1-8b', requests: 2, errors: 1, prompt_tokens: 20, completion_tokens: 40 });
    expect(demo.cost_usd).toBeCloseTo(0.75, 9);
    expect(demo.ttft_ms_buckets[1]).toBe(1); // 30 ms
    expect(demo.ttft_ms_buckets[10]).toBe(1); // 30 001 ms: (30 s, 60 s]
    expect(demo.latency_ms_buckets[2]).toBe(2); // 90 ms: (50, 100]
    expect(recent.find((m) => m.tenant === 'acme')).toMatchObject({ key_id: null, model: null, requests: 1 });
    // Queried an hour later, nothing of this hour is left.
    expect(await stub.minutes(0, now + 61 * 60_000)).toEqual([]);
  });
});
