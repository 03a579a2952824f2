// Alert detectors: pure functions over the per-minute metrics (worker/protocol/rules/minute-series.ts).
//
// Every window is made of complete minutes: the minute `now` falls in is still filling, so it is
// left out. Baselines are clipped to the oldest minute the data holds (the aggregator's horizon,
// or a fresh deploy), so a short history is never read as a quiet one; too short a history and
// the comparison is skipped. Sustained conditions ("for 5 minutes") need every minute of the
// window to qualify, with a minimum of samples in each: a sparse minute cannot show a rate, so it
// breaks the run rather than pass it (low traffic is covered by the SLO-window checks instead).

import type { AlertsConfig, SloConfig } from '../config/alerts';
import type { Alert, Severity } from '../protocol/alerts';
import { LATENCY_BUCKETS_MS, type MinuteBucket } from '../protocol/rules/minute-series';
import type { QualityMinute } from '../protocol/rules/quality-minutes';
import { detectDrift } from './drift';

export interface DetectorInput {
  buckets: readonly MinuteBucket[];
  /** Per-minute quality signals per deployment version / model (the drift detector's input); absent: no drift check. */
  quality?: readonly QualityMinute[];
  slo: SloConfig;
  alerts: AlertsConfig;
  now: number;
}

export const MINUTE_MS = 60_000;

interface Sums {
  requests: number;
  errors: number;
  tokens: number;
  cost: number;
  ttft: number[];
  latency: number[];
}

const empty = (): Sums => ({ requests: 0, errors: 0, tokens: 0, cost: 0, ttft: [], latency: [] });

function addHist(into: number[], from: readonly number[]): void {
  for (let i = 0; i < from.length; i++) into[i] = (into[i] ?? 0) + (from[i] ?? 0);
}

function add(into: Sums, b: MinuteBucket): void {
  into.requests += b.requests;
  into.errors += b.errors;
  into.tokens += b.prompt_tokens + b.completion_tokens;
  into.cost += b.cost_usd;
  addHist(into.ttft, b.ttft_ms_buckets);
  addHist(into.latency, b.latency_ms_buckets);
}

/** Sums of the buckets with from ≤ minute < to (and matching `keep`). */
function sumRange(buckets: readonly MinuteBucket[], from: number, to: number, keep?: (b: MinuteBucket) => boolean): Sums {
  const s = empty();
  for (const b of buckets) if (b.minute >= from && b.minute < to && (!keep || keep(b))) add(s, b);
  return s;
}

const total = (counts: readonly number[]) => counts.reduce((a, c) => a + c, 0);

/**
 * The q-quantile of a histogram (counts per bucket, not cumulative), interpolated linearly inside
 * its bucket as Prometheus' histogram_quantile does; in the +Inf bucket, the last finite bound.
 * Null without samples.
 */
export function histogramQuantile(counts: readonly number[], q: number, bounds: readonly number[] = LATENCY_BUCKETS_MS): number | null {
  const n = total(counts);
  if (n <= 0) return null;
  const rank = q * n;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] ?? 0;
    if (c > 0 && seen + c >= rank) {
      const upper = bounds[i];
      if (upper === undefined) return bounds[bounds.length - 1] ?? null;
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      return lower + ((upper - lower) * (rank - seen)) / c;
    }
    seen += c;
  }
  return bounds[bounds.length - 1] ?? null;
}

const r = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;
const pct = (x: number) => `${r(x * 100, 2)}%`;
/** USD amounts: six significant digits (sums of floats drift in the last places). */
const usd = (x: number) => Number(x.toPrecision(6));

/** Start of the minute `now` is in: every window ends there (exclusive). */
const windowEnd = (now: number) => Math.floor(now / MINUTE_MS) * MINUTE_MS;

/** Minutes of history a baseline [from, to) really has, given the oldest minute in the data. */
function baselineMinutes(from: number, to: number, horizon: number): { from: number; minutes: number } {
  const start = Math.max(from, horizon);
  return { from: start, minutes: Math.max(0, (to - start) / MINUTE_MS) };
}

/** The oldest minute in the data (a loop: a spread of many thousand buckets would overflow the stack). */
function horizonOf(buckets: readonly MinuteBucket[]): number {
  let h = Number.POSITIVE_INFINITY;
  for (const b of buckets) if (b.minute < h) h = b.minute;
  return h;
}

// ------------------------------------------------------------------ per key

/** Tokens per request and request rate of each key: its last key_window_minutes against the key_baseline_minutes before. */
export function detectKeySpikes({ buckets, alerts: a, now }: DetectorInput): Alert[] {
  if (buckets.length === 0) return [];
  const end = windowEnd(now);
  const winStart = end - a.key_window_minutes * MINUTE_MS;
  const horizon = horizonOf(buckets);
  const base = baselineMinutes(winStart - a.key_baseline_minutes * MINUTE_MS, winStart, horizon);
  // A baseline shorter than a quarter of its configured length (or the window itself) says too little.
  if (base.minutes < Math.max(a.key_window_minutes, a.key_baseline_minutes / 4)) return [];

  const keys = new Map<string, { tenant: string; win: Sums; base: Sums }>();
  for (const b of buckets) {
    if (b.key_id === null || b.minute < base.from || b.minute >= end) continue;
    let k = keys.get(b.key_id);
    if (!k) keys.set(b.key_id, (k = { tenant: b.tenant, win: empty(), base: empty() }));
    add(b.minute >= winStart ? k.win : k.base, b);
  }

  const out: Alert[] = [];
  for (const [key, { tenant, win, base: bs }] of [...keys].sort(([x], [y]) => (x < y ? -1 : 1))) {
    // Tokens per request: needs enough requests on both sides for a mean to mean something.
    if (win.requests >= a.key_tokens_min_requests && bs.requests >= a.key_tokens_min_requests && bs.tokens > 0) {
      const now_ = win.tokens / win.requests;
      const norm = bs.tokens / bs.requests;
      if (now_ > a.key_tokens_ratio * norm) {
        out.push({
          id: `key_tokens_spike:${key}`,
          severity: 'warning',
          summary: `Key ${key} (tenant ${tenant}): ${r(now_, 0)} tokens/request over the last ${a.key_window_minutes} min, ${r(now_ / norm, 1)}× its ${base.minutes}-min norm of ${r(norm, 0)}`,
          details: { key_id: key, tenant, tokens_per_request: r(now_), baseline_tokens_per_request: r(norm), ratio: r(now_ / norm), window_requests: win.requests, baseline_requests: bs.requests },
        });
      }
    }
    // Request rate: a key with no baseline traffic (new, or dormant and now leaked) is held to a
    // floor of 1 request/minute, so only min_per_minute and the ratio decide.
    const rate = win.requests / a.key_window_minutes;
    const normRate = bs.requests / base.minutes;
    if (rate >= a.key_requests_min_per_minute && rate > a.key_requests_ratio * Math.max(normRate, 1)) {
      out.push({
        id: `key_requests_spike:${key}`,
        severity: 'critical',
        summary: `Key ${key} (tenant ${tenant}): ${r(rate, 1)} requests/min over the last ${a.key_window_minutes} min against ${r(normRate, 2)}/min in the ${base.minutes} min before`,
        details: { key_id: key, tenant, requests_per_minute: r(rate), baseline_requests_per_minute: r(normRate), window_requests: win.requests, baseline_requests: bs.requests },
      });
    }
  }
  return out;
}

// ------------------------------------------------------------------ all traffic

/** Cost per request up by more than cost_increase while the request rate is not (a model, price or caching change). */
export function detectCostWithoutTraffic({ buckets, alerts: a, now }: DetectorInput): Alert[] {
  if (buckets.length === 0) return [];
  const end = windowEnd(now);
  const winStart = end - a.cost_window_minutes * MINUTE_MS;
  const horizon = horizonOf(buckets);
  const base = baselineMinutes(winStart - a.cost_baseline_minutes * MINUTE_MS, winStart, horizon);
  if (base.minutes < Math.min(a.cost_window_minutes, a.cost_baseline_minutes)) return [];
  const win = sumRange(buckets, winStart, end);
  const bs = sumRange(buckets, base.from, winStart);
  if (win.requests < a.cost_min_requests || bs.requests < a.cost_min_requests || bs.cost <= 0) return [];
  const cpr = win.cost / win.requests;
  const baseCpr = bs.cost / bs.requests;
  const rate = win.requests / a.cost_window_minutes;
  const baseRate = bs.requests / base.minutes;
  if (cpr <= baseCpr * (1 + a.cost_increase) || rate > baseRate * (1 + a.cost_traffic_tolerance)) return [];
  return [
    {
      id: 'cost_without_traffic',
      severity: 'warning',
      summary: `Cost per request up ${pct(cpr / baseCpr - 1)} ($${cpr.toPrecision(3)} vs $${baseCpr.toPrecision(3)}) over the last ${a.cost_window_minutes} min while requests/min went ${r(baseRate, 1)} → ${r(rate, 1)}`,
      details: { cost_per_request_usd: usd(cpr), baseline_cost_per_request_usd: usd(baseCpr), requests_per_minute: r(rate), baseline_requests_per_minute: r(baseRate), window_minutes: a.cost_window_minutes, baseline_minutes: base.minutes },
    },
  ];
}

/** Per-minute sums of all traffic for each of the last `n` complete minutes, oldest first (empty sums for minutes without data). */
function lastMinutes(buckets: readonly MinuteBucket[], now: number, n: number): Sums[] {
  const end = windowEnd(now);
  const from = end - n * MINUTE_MS;
  const out = Array.from({ length: n }, empty);
  for (const b of buckets) if (b.minute >= from && b.minute < end) add(out[Math.floor((b.minute - from) / MINUTE_MS)]!, b);
  return out;
}

/** Error rate above alerts.error_rate in each of the last error_minutes minutes. */
export function detectErrorRate({ buckets, alerts: a, now }: DetectorInput): Alert[] {
  const minutes = lastMinutes(buckets, now, a.error_minutes);
  const rates = minutes.map((m) => (m.requests >= a.error_min_requests ? m.errors / m.requests : null));
  if (!rates.every((x) => x !== null && x > a.error_rate)) return [];
  const errors = minutes.reduce((s, m) => s + m.errors, 0);
  const requests = minutes.reduce((s, m) => s + m.requests, 0);
  return [
    {
      id: 'error_rate',
      severity: 'critical',
      summary: `Error rate above ${pct(a.error_rate)} for ${a.error_minutes} min: ${pct(errors / requests)} (${errors} of ${requests} requests)`,
      details: { error_rate: r(errors / requests, 4), threshold: a.error_rate, minutes: a.error_minutes, errors, requests, lowest_minute_rate: r(Math.min(...(rates as number[])), 4) },
    },
  ];
}

/** p95 time to first token above slo.p95_ttft_ms in each of the last ttft_minutes minutes. */
export function detectTtft({ buckets, slo, alerts: a, now }: DetectorInput): Alert[] {
  const minutes = lastMinutes(buckets, now, a.ttft_minutes);
  const p95s = minutes.map((m) => (total(m.ttft) >= a.ttft_min_samples ? histogramQuantile(m.ttft, 0.95) : null));
  if (!p95s.every((x) => x !== null && x > slo.p95_ttft_ms)) return [];
  const best = Math.min(...(p95s as number[]));
  return [
    {
      id: 'slo_p95_ttft',
      severity: 'critical',
      summary: `p95 time to first token above the ${slo.p95_ttft_ms} ms SLO in each of the last ${a.ttft_minutes} min (lowest minute ${r(best, 0)} ms)`,
      details: { slo_ms: slo.p95_ttft_ms, minutes: a.ttft_minutes, lowest_minute_p95_ms: r(best, 0), highest_minute_p95_ms: r(Math.max(...(p95s as number[])), 0) },
    },
  ];
}

/** Availability, p95 total latency and cost per request over the SLO window (all traffic). */
export function detectSloWindow({ buckets, slo, alerts: a, now }: DetectorInput): Alert[] {
  const end = windowEnd(now);
  const w = sumRange(buckets, end - a.slo_window_minutes * MINUTE_MS, end);
  if (w.requests < a.slo_min_requests) return [];
  const out: Alert[] = [];
  const span = `${a.slo_window_minutes} min`;
  const availability = 1 - w.errors / w.requests;
  if (availability < slo.availability) {
    out.push({
      id: 'slo_availability',
      severity: 'critical',
      summary: `Availability ${pct(availability)} over the last ${span}, below the ${pct(slo.availability)} SLO`,
      details: { availability: r(availability, 5), slo: slo.availability, requests: w.requests, errors: w.errors, window_minutes: a.slo_window_minutes },
    });
  }
  const p95 = total(w.latency) >= a.slo_min_requests ? histogramQuantile(w.latency, 0.95) : null;
  if (p95 !== null && p95 > slo.p95_latency_ms) {
    out.push({
      id: 'slo_p95_latency',
      severity: 'warning',
      summary: `p95 latency ${r(p95, 0)} ms over the last ${span}, above the ${slo.p95_latency_ms} ms SLO`,
      details: { p95_ms: r(p95, 0), slo_ms: slo.p95_latency_ms, samples: total(w.latency), window_minutes: a.slo_window_minutes },
    });
  }
  const cpr = w.cost / w.requests;
  if (slo.cost_per_request_usd !== undefined && cpr > slo.cost_per_request_usd) {
    out.push({
      id: 'slo_cost_per_request',
      severity: 'warning',
      summary: `Cost per request $${cpr.toPrecision(3)} over the last ${span}, above the $${slo.cost_per_request_usd} SLO`,
      details: { cost_per_request_usd: usd(cpr), slo_usd: slo.cost_per_request_usd, requests: w.requests, window_minutes: a.slo_window_minutes },
    });
  }
  return out;
}

/**
 * The batch queue's oldest unfinished line older than [batch].alert_oldest_age_seconds (README
 * "Batch and async"), or the async queue's oldest unfinished job older than [async].alert_oldest_age_seconds:
 * the consumer is not keeping up, is held back by interactive load, or is failing.
 */
export function detectQueueBacklog(q: { queue: string; depth: number; oldest_age_seconds: number | null }, maxAgeSeconds: number, unit: 'line' | 'job' = 'line'): Alert[] {
  if (q.oldest_age_seconds === null || q.oldest_age_seconds <= maxAgeSeconds) return [];
  return [
    {
      id: `queue_backlog:${q.queue}`,
      severity: 'warning',
      summary: `Queue ${q.queue}: oldest ${unit} waiting ${q.oldest_age_seconds} s (limit ${maxAgeSeconds} s), ${q.depth} ${unit}s pending`,
      details: { queue: q.queue, oldest_age_seconds: q.oldest_age_seconds, limit_seconds: maxAgeSeconds, depth: q.depth },
    },
  ];
}

/** Every detector; ids are unique across them. */
export function detectAll(input: DetectorInput): Alert[] {
  return [
    ...detectErrorRate(input),
    ...detectTtft(input),
    ...detectSloWindow(input),
    ...detectKeySpikes(input),
    ...detectCostWithoutTraffic(input),
    ...detectDrift(input.quality ?? [], input.alerts, input.now),
  ];
}

/** How far back the detectors read (the longest window plus its baseline). */
export function lookbackMs(a: AlertsConfig): number {
  const minutes = Math.max(
    a.key_window_minutes + a.key_baseline_minutes,
    a.cost_window_minutes + a.cost_baseline_minutes,
    a.error_minutes,
    a.ttft_minutes,
    a.slo_window_minutes,
    a.drift_enabled ? a.drift_window_minutes + a.drift_baseline_minutes : 0,
  );
  return (minutes + 1) * MINUTE_MS;
}
