import { describe, expect, it } from 'vitest';
import { escapeLabel, renderExposition } from '../../worker/telemetry/exposition';
import { REQUEST_METRICS as M } from '../../worker/telemetry/metric-catalog';
import { attemptCause } from '../../worker/telemetry/metrics';
import { MetricsAccumulator } from '../../worker/telemetry/metrics-delta';
import { bucketIndex, LATENCY_BUCKETS_MS, mergeMinuteLists } from '../../worker/protocol/rules/minute-series';
import { requestFamilies } from '../../worker/telemetry/scrape';
import { parseExposition, record, valueOf } from './metrics-support';

/** Renders what one accumulator counted, as the aggregator would after a single flush. */
function render(acc: MetricsAccumulator) {
  const d = acc.take();
  return renderExposition(requestFamilies([{ counters: d.counters, histograms: d.histograms, at: 0 }]));
}

describe('histogram bucket math', () => {
  it('places a value in the first bucket whose bound is at or above it; past the last bound in the overflow', () => {
    expect(LATENCY_BUCKETS_MS[0]).toBe(25);
    expect(bucketIndex(0)).toBe(0);
    expect(bucketIndex(25)).toBe(0);
    expect(bucketIndex(25.5)).toBe(1);
    expect(bucketIndex(100)).toBe(2);
    expect(bucketIndex(LATENCY_BUCKETS_MS.at(-1)!)).toBe(LATENCY_BUCKETS_MS.length - 1);
    expect(bucketIndex(LATENCY_BUCKETS_MS.at(-1)! + 1)).toBe(LATENCY_BUCKETS_MS.length);
  });

  it('exposes cumulative buckets in seconds, +Inf, _sum and _count', () => {
    const acc = new MetricsAccumulator();
    for (const latency_ms of [20, 30, 100, 400, 999_999]) acc.observeRecord(record({ latency_ms, ttft_ms: null }));
    const text = render(acc);
    const e = parseExposition(text);
    const where = { tenant: 'demo', model: 'llama-3.1-8b', region: 'us-east', backend: 'vllm-us-east-8b' };
    const bucket = (le: string) => valueOf(e, 'router_request_duration_seconds_bucket', { ...where, le });
    expect(bucket('0.025')).toBe(1);
    expect(bucket('0.05')).toBe(2);
    expect(bucket('0.1')).toBe(3);
    expect(bucket('0.25')).toBe(3);
    expect(bucket('0.5')).toBe(4);
    expect(bucket('120')).toBe(4);
    expect(bucket('+Inf')).toBe(5);
    expect(valueOf(e, 'router_request_duration_seconds_count', where)).toBe(5);
    expect(valueOf(e, 'router_request_duration_seconds_sum', where)).toBeCloseTo(0.02 + 0.03 + 0.1 + 0.4 + 999.999, 6);
    // No TTFT was measured: the family is declared but has no series.
    expect(e.types.get('router_ttft_seconds')).toBe('histogram');
    expect(e.samples.filter((s) => s.name.startsWith('router_ttft_seconds'))).toEqual([]);
  });
});

describe('exposition format', () => {
  it('escapes backslash, double quote and line feed in label values', () => {
    expect(escapeLabel('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
    const acc = new MetricsAccumulator();
    const tenant = 'we\\ird "tenant"\nname';
    acc.observeRecord(record({ tenant }));
    const text = render(acc);
    expect(text).toContain('tenant="we\\\\ird \\"tenant\\"\\nname"');
    const e = parseExposition(text);
    expect(valueOf(e, 'router_requests_total', { tenant, status: '200', outcome: 'ok' })).toBe(1);
  });

  it('gives every family HELP and TYPE once, counters end in _total, and the parser rejects malformed text', () => {
    const acc = new MetricsAccumulator();
    acc.observeRecord(record());
    const text = render(acc);
    for (const def of Object.values(M)) {
      expect(text.split('\n').filter((l) => l === `# TYPE ${def.name} ${def.type}`)).toHaveLength(1);
      expect(text).toContain(`# HELP ${def.name} `);
    }
    expect(() => parseExposition('router_x_total 1\n')).toThrow(/without a TYPE/);
    expect(() => parseExposition('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_count 1\n')).toThrow(/not cumulative/);
    expect(() => parseExposition('# TYPE h histogram\nh_bucket{le="1"} 1\nh_count 1\n')).toThrow(/\+Inf/);
  });
});

describe('scrape of several aggregator shards', () => {
  it('adds counters and histogram buckets of the same series', () => {
    const [a, b] = [new MetricsAccumulator(), new MetricsAccumulator()];
    a.observeRecord(record({ latency_ms: 10 }));
    b.observeRecord(record({ latency_ms: 10 }));
    b.observeRecord(record({ latency_ms: 700 }));
    const snap = (acc: MetricsAccumulator) => ({ ...acc.take(), at: 0 });
    const e = parseExposition(renderExposition(requestFamilies([snap(a), snap(b)])));
    expect(valueOf(e, 'router_requests_total', { tenant: 'demo', status: '200' })).toBe(3);
    expect(valueOf(e, 'router_request_duration_seconds_bucket', { tenant: 'demo', le: '0.025' })).toBe(2);
    expect(valueOf(e, 'router_request_duration_seconds_count', { tenant: 'demo' })).toBe(3);
  });
});

describe('what a record counts', () => {
  it('tokens, cost, cache results, rate limits, retries and fallbacks', () => {
    const acc = new MetricsAccumulator();
    acc.observeRecord(record({ prompt_tokens: 7, cached_tokens: 3, completion_tokens: 11, cost_usd: 0.25 }));
    acc.observeRecord(record({ cache: 'hit', cost_usd: 0, saved_usd: 0.5, backend: null, region: null, path: [], attempts: 0 }));
    acc.observeRecord(record({ status: 429, outcome: 'rate_limited', error_code: 'rate_limit_exceeded', model: null, backend: null, region: null, path: [], attempts: 0, prompt_tokens: 0, completion_tokens: 0, cost_usd: 0 }));
    // Retried the first backend once, then moved to a second one, then to the degraded answer.
    acc.observeRecord(
      record({ status: 200, outcome: 'degraded', error_code: null, path: ['vllm-us-east-8b', 'vllm-us-east-8b', 'vllm-eu-west-8b'], attempts: 3, backend: null, region: null, prompt_tokens: 0, completion_tokens: 0, cost_usd: 0 }),
    );
    const e = parseExposition(render(acc));
    const m = { tenant: 'demo', model: 'llama-3.1-8b' };
    expect(valueOf(e, 'router_tokens_total', { ...m, direction: 'in' })).toBe(7 + 10);
    expect(valueOf(e, 'router_tokens_total', { ...m, direction: 'out' })).toBe(11 + 20);
    expect(valueOf(e, 'router_cached_prompt_tokens_total', m)).toBe(3);
    expect(valueOf(e, 'router_cost_usd_total', m)).toBeCloseTo(0.25, 9);
    expect(valueOf(e, 'router_cache_saved_usd_total', m)).toBeCloseTo(0.5, 9);
    expect(valueOf(e, 'router_cache_requests_total', { tenant: 'demo', tier: 'fast', result: 'hit' })).toBe(1);
    expect(valueOf(e, 'router_cache_requests_total', { tenant: 'demo', tier: 'fast', result: 'miss' })).toBe(3);
    expect(valueOf(e, 'router_rate_limited_total', { tenant: 'demo', code: 'rate_limit_exceeded' })).toBe(1);
    expect(valueOf(e, 'router_requests_total', { tenant: 'demo', model: 'none', backend: 'none', status: '429', outcome: 'rate_limited' })).toBe(1);
    expect(valueOf(e, 'router_errors_total', { tenant: 'demo', model: 'none', code: 'rate_limit_exceeded' })).toBe(1);
    expect(valueOf(e, 'router_retries_total', { model: 'llama-3.1-8b', backend: 'vllm-us-east-8b' })).toBe(1);
    expect(valueOf(e, 'router_fallbacks_total', { model: 'llama-3.1-8b', from: 'vllm-us-east-8b', to: 'vllm-eu-west-8b' })).toBe(1);
    expect(valueOf(e, 'router_fallbacks_total', { model: 'llama-3.1-8b', from: 'vllm-eu-west-8b', to: 'degraded' })).toBe(1);
  });

  it('records that differ in one label only count in series of their own (the per-label-set key memo)', () => {
    // Each record repeats the first one's labels but one; the memo of series keys must not mix them up.
    const base = { refused: false, finish_reason: 'stop' } as const;
    const variants = [
      {},
      { tenant: 'other' },
      { backend: 'vllm-us-east-8b-b' },
      { region: 'eu-west' },
      { status: 502, outcome: 'error', error_code: 'upstream_error' },
      { status: 502, outcome: 'error', error_code: 'upstream_timeout' },
      { status: 504, outcome: 'error', error_code: 'upstream_timeout' },
      { outcome: 'client_closed' },
      { model: 'llama-3.1-70b' },
      { tier: 'strong' },
      { cache: 'hit' },
      { deployment: 'support-bot', deployment_version: 'v1' },
      { deployment: 'support-bot', deployment_version: 'v2' },
    ] as const;
    const acc = new MetricsAccumulator();
    for (const v of variants) for (let i = 0; i < 2; i++) acc.observeRecord(record({ ...base, ...v }));
    const e = parseExposition(render(acc));
    const sum = (name: string, labels: Record<string, string>) => e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
    expect(sum('router_requests_total', { tenant: 'other' })).toBe(2);
    expect(sum('router_requests_total', { backend: 'vllm-us-east-8b-b' })).toBe(2);
    expect(sum('router_requests_total', { region: 'eu-west' })).toBe(2);
    expect(sum('router_requests_total', { tenant: 'demo', status: '502' })).toBe(4);
    expect(sum('router_errors_total', { code: 'upstream_error' })).toBe(2);
    expect(sum('router_errors_total', { code: 'upstream_timeout' })).toBe(4);
    expect(sum('router_requests_total', { status: '504' })).toBe(2);
    expect(sum('router_requests_total', { outcome: 'client_closed' })).toBe(2);
    expect(sum('router_requests_total', { model: 'llama-3.1-70b' })).toBe(2);
    expect(sum('router_cache_requests_total', { tenant: 'demo', tier: 'strong' })).toBe(2);
    expect(sum('router_cache_requests_total', { tenant: 'demo', result: 'hit' })).toBe(2);
    expect(sum('router_answers_total', { deployment: 'support-bot', version: 'v1' })).toBe(2);
    expect(sum('router_answers_total', { deployment: 'support-bot', version: 'v2' })).toBe(2);
    expect(sum('router_answers_total', { tenant: 'demo', deployment: 'none' })).toBe(2 * 11 - 2);
  });

  it('classifies attempt failures into a few causes', () => {
    expect(attemptCause({ kind: 'timeout' })).toBe('timeout');
    expect(attemptCause({ kind: 'connect' })).toBe('connect');
    expect(attemptCause({ kind: 'status', status: 429 })).toBe('http_429');
    expect(attemptCause({ kind: 'status', status: 503 })).toBe('http_5xx');
    expect(attemptCause({ kind: 'status', status: 401 })).toBe('http_4xx');
  });

  it('minute buckets: per tenant, key and model; errors exclude client-side endings; shards merge', () => {
    const acc = new MetricsAccumulator();
    const ts = Date.UTC(2030, 0, 1, 12, 0, 30);
    acc.observeRecord(record({ ts, latency_ms: 30, ttft_ms: 10 }));
    acc.observeRecord(record({ ts, outcome: 'error', status: 502, error_code: 'upstream_error', ttft_ms: null, latency_ms: 200_000 }));
    acc.observeRecord(record({ ts, outcome: 'client_closed', status: 400 }));
    acc.observeRecord(record({ ts, key_id: 'key_2' }));
    const { minutes } = acc.take();
    expect(minutes).toHaveLength(2);
    const k1 = minutes.find((m) => m.key_id === 'key_1')!;
    expect(k1).toMatchObject({ minute: Date.UTC(2030, 0, 1, 12, 0, 0), tenant: 'demo', model: 'llama-3.1-8b', requests: 3, errors: 1, prompt_tokens: 30, completion_tokens: 60 });
    expect(k1.latency_ms_buckets).toHaveLength(LATENCY_BUCKETS_MS.length + 1);
    expect(k1.latency_ms_buckets[1]).toBe(1); // 30 ms
    expect(k1.latency_ms_buckets[LATENCY_BUCKETS_MS.length]).toBe(1); // 200 s: overflow
    expect(k1.ttft_ms_buckets.slice(0, 3)).toEqual([1, 1, 0]); // 10 ms, 40 ms; the error had none
    const merged = mergeMinuteLists([minutes, [k1]]);
    expect(merged.find((m) => m.key_id === 'key_1')!.requests).toBe(6);
    expect(k1.requests).toBe(3); // inputs are not mutated
  });
});
