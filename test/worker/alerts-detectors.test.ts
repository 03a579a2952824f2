import { describe, expect, it } from 'vitest';
import { detectAll, detectCostWithoutTraffic, detectErrorRate, detectKeySpikes, detectSloWindow, detectTtft, histogramQuantile, lookbackMs, type DetectorInput } from '../../worker/alerts/detectors';
import type { Alert } from '../../worker/protocol/alerts';
import { alertsSchema, sloSchema, type AlertsConfig, type SloConfig } from '../../worker/config/alerts';
import { routerConfigSchema } from '../../worker/config/schema';
import { LATENCY_BUCKETS_MS, bucketIndex, type MinuteBucket } from '../../worker/protocol/rules/minute-series';

const MIN = 60_000;
// Mid-minute: the minute NOW is in is incomplete and must be ignored.
const NOW = Date.UTC(2030, 0, 1, 12, 0, 30);
const CURRENT = NOW - 30_000;
/** Start of the i-th complete minute before NOW (1 = the last complete one). */
const ago = (i: number) => CURRENT - i * MIN;

/** Counts per histogram bucket: `n` samples of `ms`. */
function hist(ms: number, n: number): number[] {
  const h = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);
  h[bucketIndex(ms)] = n;
  return h;
}

interface Shape {
  key?: string | null;
  tenant?: string;
  requests?: number;
  errors?: number;
  tokensPerRequest?: number;
  costPerRequest?: number;
  ttftMs?: number;
  latencyMs?: number;
}

function bucket(minute: number, s: Shape = {}): MinuteBucket {
  const requests = s.requests ?? 100;
  const tpr = s.tokensPerRequest ?? 500;
  return {
    minute,
    tenant: s.tenant ?? 'acme',
    key_id: s.key === undefined ? 'key_a' : s.key,
    model: 'm',
    requests,
    errors: s.errors ?? 0,
    prompt_tokens: Math.round((requests * tpr) / 2),
    completion_tokens: Math.round((requests * tpr) / 2),
    cost_usd: requests * (s.costPerRequest ?? 0.001),
    ttft_ms_buckets: hist(s.ttftMs ?? 300, requests),
    latency_ms_buckets: hist(s.latencyMs ?? 2_000, requests),
  };
}

/** One bucket per complete minute from `from` minutes ago to `to` minutes ago, shaped by `shape(i)`. */
function series(from: number, to: number, shape: (i: number) => Shape = () => ({})): MinuteBucket[] {
  const out: MinuteBucket[] = [];
  for (let i = from; i >= to; i--) out.push(bucket(ago(i), shape(i)));
  return out;
}

const input = (buckets: MinuteBucket[], a: Partial<AlertsConfig> = {}, s: Partial<SloConfig> = {}): DetectorInput => ({
  buckets,
  alerts: alertsSchema.parse(a),
  slo: sloSchema.parse(s),
  now: NOW,
});
const ids = (alerts: Alert[]) => alerts.map((a) => a.id).sort();

describe('histogramQuantile', () => {
  it('interpolates inside the bucket holding the rank, caps at the last finite bound, and is null without samples', () => {
    // 100 samples in (250, 500]: p50 is half way, p95 near the top.
    expect(histogramQuantile(hist(300, 100), 0.5)).toBeCloseTo(375, 5);
    expect(histogramQuantile(hist(300, 100), 0.95)).toBeCloseTo(487.5, 5);
    // 90 fast, 10 in the overflow: p95 is the last finite bound.
    const h = hist(10, 90);
    h[LATENCY_BUCKETS_MS.length] = 10;
    expect(histogramQuantile(h, 0.95)).toBe(LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 1]);
    expect(histogramQuantile(h, 0.5)).toBeLessThanOrEqual(LATENCY_BUCKETS_MS[0]!);
    expect(histogramQuantile(hist(300, 0), 0.95)).toBeNull();
    expect(histogramQuantile([], 0.95)).toBeNull();
  });
});

describe('a normal hour', () => {
  it('raises nothing', () => {
    const normal = [...series(64, 1), ...series(64, 1, () => ({ key: 'key_b', tenant: 'demo', requests: 5, tokensPerRequest: 80 }))];
    expect(detectAll(input(normal))).toEqual([]);
  });

  it('raises nothing without data, and reads far enough back for every window', () => {
    expect(detectAll(input([]))).toEqual([]);
    const a = alertsSchema.parse({});
    expect(lookbackMs(a)).toBeGreaterThanOrEqual((a.key_window_minutes + a.key_baseline_minutes) * MIN);
  });
});

describe('key tokens per request', () => {
  it('fires when the last 5 minutes average more than 3× the key’s trailing norm', () => {
    const b = series(64, 1, (i) => ({ tokensPerRequest: i <= 5 ? 2_000 : 500 }));
    const found = detectKeySpikes(input(b));
    expect(ids(found)).toEqual(['key_tokens_spike:key_a']);
    expect(found[0]).toMatchObject({ severity: 'warning', details: { key_id: 'key_a', tenant: 'acme', tokens_per_request: 2_000, baseline_tokens_per_request: 500, ratio: 4 } });
  });

  it('stays quiet below the ratio, in the incomplete minute, and with too few requests on either side', () => {
    expect(detectKeySpikes(input(series(64, 1, (i) => ({ tokensPerRequest: i <= 5 ? 1_400 : 500 }))))).toEqual([]);
    // The spike only in the minute still filling.
    expect(detectKeySpikes(input([...series(64, 1), bucket(CURRENT, { tokensPerRequest: 50_000 })]))).toEqual([]);
    // 1 request a minute: 5 in the window, below key_tokens_min_requests (10).
    expect(detectKeySpikes(input(series(64, 1, (i) => ({ requests: 1, tokensPerRequest: i <= 5 ? 5_000 : 500 }))))).toEqual([]);
    // Enough in the window, but the baseline has only 3 requests.
    const thin = [...series(64, 6, (i) => ({ requests: i % 20 === 0 ? 1 : 0 })), ...series(5, 1, () => ({ tokensPerRequest: 5_000 }))];
    expect(ids(detectKeySpikes(input(thin)))).not.toContain('key_tokens_spike:key_a');
  });

  it('is skipped when the history is too short to hold a norm', () => {
    // Only 8 complete minutes of data: 3 of baseline is less than a quarter of 60.
    expect(detectKeySpikes(input(series(8, 1, (i) => ({ tokensPerRequest: i <= 5 ? 5_000 : 500 }))))).toEqual([]);
    // 25 minutes is enough (20 of baseline ≥ 15).
    expect(ids(detectKeySpikes(input(series(25, 1, (i) => ({ tokensPerRequest: i <= 5 ? 5_000 : 500 })))))).toEqual(['key_tokens_spike:key_a']);
  });
});

describe('key request rate', () => {
  it('fires when a key’s last 5 minutes run more than 5× its norm and above the minimum rate', () => {
    const b = series(64, 1, (i) => ({ requests: i <= 5 ? 60 : 4 }));
    const found = detectKeySpikes(input(b));
    expect(ids(found)).toEqual(['key_requests_spike:key_a']);
    expect(found[0]).toMatchObject({ severity: 'critical', details: { requests_per_minute: 60, baseline_requests_per_minute: 4 } });
  });

  it('holds a key with no history to 1 request/minute: a dormant key that wakes up hot fires, a slow one does not', () => {
    const others = series(64, 1, () => ({ key: 'key_other' }));
    expect(ids(detectKeySpikes(input([...others, ...series(5, 1, () => ({ key: 'key_new', requests: 40 }))])))).toEqual(['key_requests_spike:key_new']);
    expect(detectKeySpikes(input([...others, ...series(5, 1, () => ({ key: 'key_new', requests: 10 }))]))).toEqual([]);
  });

  it('stays quiet for a steady busy key, a 4× rise, and buckets without a key', () => {
    expect(detectKeySpikes(input(series(64, 1, () => ({ requests: 500 }))))).toEqual([]);
    expect(detectKeySpikes(input(series(64, 1, (i) => ({ requests: i <= 5 ? 40 : 10 }))))).toEqual([]);
    expect(detectKeySpikes(input(series(64, 1, (i) => ({ key: null, requests: i <= 5 ? 500 : 1 }))))).toEqual([]);
  });
});

describe('cost without traffic', () => {
  it('fires when cost per request rises by more than 50% while requests do not', () => {
    const b = series(60, 1, (i) => ({ costPerRequest: i <= 15 ? 0.002 : 0.001 }));
    const found = detectCostWithoutTraffic(input(b));
    expect(ids(found)).toEqual(['cost_without_traffic']);
    expect(found[0]!.details).toMatchObject({ cost_per_request_usd: 0.002, baseline_cost_per_request_usd: 0.001, requests_per_minute: 100, baseline_requests_per_minute: 100 });
  });

  it('stays quiet when traffic rose too, when the rise is small, and with too little traffic', () => {
    expect(detectCostWithoutTraffic(input(series(60, 1, (i) => (i <= 15 ? { costPerRequest: 0.002, requests: 200 } : {}))))).toEqual([]);
    expect(detectCostWithoutTraffic(input(series(60, 1, (i) => ({ costPerRequest: i <= 15 ? 0.0014 : 0.001 }))))).toEqual([]);
    expect(detectCostWithoutTraffic(input(series(60, 1, (i) => ({ requests: 2, costPerRequest: i <= 15 ? 0.01 : 0.001 }))))).toEqual([]);
    // Less history than one window: no baseline to compare with.
    expect(detectCostWithoutTraffic(input(series(20, 1, (i) => ({ costPerRequest: i <= 15 ? 0.01 : 0.001 }))))).toEqual([]);
  });
});

describe('error rate', () => {
  it('fires when each of the last 5 minutes is above 1%', () => {
    const b = series(30, 1, (i) => ({ errors: i <= 5 ? 2 : 0 }));
    const found = detectErrorRate(input(b));
    expect(ids(found)).toEqual(['error_rate']);
    expect(found[0]).toMatchObject({ severity: 'critical', details: { errors: 10, requests: 500, error_rate: 0.02 } });
  });

  it('needs all 5 minutes above the threshold (strictly), each with enough requests', () => {
    expect(detectErrorRate(input(series(30, 1, (i) => ({ errors: i <= 4 ? 50 : 0 }))))).toEqual([]); // 4 of 5
    expect(detectErrorRate(input(series(30, 1, (i) => ({ errors: i <= 5 ? 1 : 0 }))))).toEqual([]); // exactly 1%
    // A minute with 10 requests (below error_min_requests) breaks the run however bad it is.
    expect(detectErrorRate(input(series(30, 1, (i) => (i === 3 ? { requests: 10, errors: 5 } : { errors: i <= 5 ? 5 : 0 }))))).toEqual([]);
    // A minute with no data at all breaks it too.
    expect(detectErrorRate(input(series(30, 1, (i) => ({ errors: i <= 5 ? 5 : 0 })).filter((b) => b.minute !== ago(2))))).toEqual([]);
  });

  it('adds up every key and model of a minute', () => {
    const b = [...series(5, 1, () => ({ key: 'key_a', requests: 50, errors: 1 })), ...series(5, 1, () => ({ key: 'key_b', requests: 50, errors: 1 }))];
    expect(ids(detectErrorRate(input(b)))).toEqual(['error_rate']);
  });
});

describe('p95 time to first token', () => {
  it('fires when p95 TTFT is above the SLO in each of the last 15 minutes', () => {
    const found = detectTtft(input(series(30, 1, (i) => ({ ttftMs: i <= 15 ? 3_000 : 300 })), {}, { p95_ttft_ms: 2_000 }));
    expect(ids(found)).toEqual(['slo_p95_ttft']);
    expect(found[0]!.details.lowest_minute_p95_ms).toBeGreaterThan(2_000);
  });

  it('stays quiet for 14 minutes above, below the SLO, and with too few samples', () => {
    expect(detectTtft(input(series(30, 1, (i) => ({ ttftMs: i <= 14 ? 3_000 : 300 })), {}, { p95_ttft_ms: 2_000 }))).toEqual([]);
    expect(detectTtft(input(series(30, 1, () => ({ ttftMs: 1_500 })), {}, { p95_ttft_ms: 2_500 }))).toEqual([]);
    expect(detectTtft(input(series(30, 1, () => ({ requests: 5, ttftMs: 9_000 })), {}, { p95_ttft_ms: 2_000 }))).toEqual([]);
  });
});

describe('SLO window', () => {
  it('checks availability, p95 latency and cost per request over the last hour', () => {
    const b = series(60, 1, (i) => ({ errors: i % 10 === 0 ? 5 : 0, latencyMs: 40_000, costPerRequest: 0.02 }));
    const found = detectSloWindow(input(b, {}, { availability: 0.999, p95_latency_ms: 30_000, cost_per_request_usd: 0.01 }));
    expect(ids(found)).toEqual(['slo_availability', 'slo_cost_per_request', 'slo_p95_latency']);
    expect(found.find((a) => a.id === 'slo_availability')!.details).toMatchObject({ availability: 0.995, errors: 30, requests: 6_000 });
  });

  it('stays quiet within the SLOs, without a cost SLO, and below the minimum traffic', () => {
    expect(detectSloWindow(input(series(60, 1, () => ({ costPerRequest: 0.02 }))))).toEqual([]);
    expect(detectSloWindow(input(series(60, 1, () => ({ requests: 1, errors: 1 }))))).toEqual([]);
  });
});

describe('config', () => {
  const base = {
    regions: [{ id: 'r', latitude: 0, longitude: 0 }],
    models: [{ id: 'm' }],
    backends: [{ id: 'b', kind: 'vllm', region: 'r', url: 'http://127.0.0.1:9', models: ['m'] }],
  };

  it('has defaults for every threshold and validates [slo] and [alerts]', () => {
    const ok = routerConfigSchema.parse({ ...base, slo: { p95_ttft_ms: 1_500 }, alerts: { webhooks: [{ url: 'https://hooks.example.com/a', secret: 'ALERT_KEY' }] } });
    expect(ok.slo).toEqual({ availability: 0.999, p95_ttft_ms: 1_500, p95_latency_ms: 30_000 });
    expect(ok.alerts).toMatchObject({ error_rate: 0.01, error_minutes: 5, ttft_minutes: 15, key_tokens_ratio: 3, key_requests_ratio: 5 });
    const bad = routerConfigSchema.safeParse({ ...base, slo: { availability: 1.5 }, alerts: { webhooks: [{ url: 'ftp://x', secret: 'lower' }], error_rate: 0, nope: 1 } });
    expect(bad.success).toBe(false);
    const paths = bad.error!.issues.map((i) => i.path.join('.'));
    for (const p of ['slo.availability', 'alerts.webhooks.0.url', 'alerts.webhooks.0.secret', 'alerts.error_rate']) expect(paths).toContain(p);
  });
});
