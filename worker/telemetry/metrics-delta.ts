// What an isolate counted since its last flush: counters, fixed-bucket histograms and minute
// buckets, all additive, so the aggregator can sum deltas from any number of isolates
// (the delta's shape and applyDelta() are worker/protocol/metrics.ts).

import type { DeltaBody } from '../protocol/metrics';
import { bucketIndex, emptyBuckets, minuteKey, minuteOf, type MinuteBucket } from '../protocol/rules/minute-series';
import { emptyQuality, qualityKey, type QualityMinute } from '../protocol/rules/quality-minutes';
import type { UsageRecord } from '../protocol/usage-record';
import { OUTPUT_TOKEN_BUCKETS, REQUEST_METRICS as M, seriesKey, type RequestMetric } from './metric-catalog';

/** One feedback, as /metrics and the drift series count it (labels already bounded by worker/quality/feedback.ts). */
export interface FeedbackObservation {
  /** When the feedback arrived (epoch ms): its minute in the drift series. */
  at: number;
  tenant: string;
  model: string | null;
  deployment: string | null;
  version: string | null;
  /** Label value: a listed feature, "none" or "other". */
  feature: string;
  /** Label value: "default", a configured metric name, or "custom". */
  metric: string;
  /** True for the default score (no custom metric): only that feeds the negative feedback rate. */
  isDefault: boolean;
  score: number;
}

/** Codes of 429s that a limit or a budget gave (not the backend's). */
const LIMIT_CODES = new Set(['rate_limit_exceeded', 'budget_exceeded', 'insufficient_quota']);
/** Outcomes the minute series count as errors: the service failed the request (client-side ones are not). */
const ERROR_OUTCOMES = new Set<UsageRecord['outcome']>(['error', 'stream_error', 'degraded']);

const none = (v: string | null): string => v ?? 'none';

export class MetricsAccumulator {
  private counters = new Map<string, number>();
  private histograms = new Map<string, { buckets: number[]; sum: number }>();
  private minutes = new Map<string, MinuteBucket>();
  private quality = new Map<string, QualityMinute>();
  /** Requests observed since the last take(). */
  records = 0;

  get empty(): boolean {
    return this.counters.size === 0 && this.histograms.size === 0 && this.minutes.size === 0 && this.quality.size === 0;
  }

  add(metric: RequestMetric, values: readonly string[], by = 1): void {
    if (by === 0 || !Number.isFinite(by)) return;
    const k = seriesKey(metric.name, values);
    this.counters.set(k, (this.counters.get(k) ?? 0) + by);
  }

  observe(metric: RequestMetric, values: readonly string[], ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    const k = seriesKey(metric.name, values);
    let h = this.histograms.get(k);
    if (!h) this.histograms.set(k, (h = { buckets: emptyBuckets(), sum: 0 }));
    h.buckets[bucketIndex(ms)]!++;
    h.sum += ms / 1000;
  }

  /** A histogram observation in the metric's own unit and bounds (e.g. tokens). */
  observeIn(metric: RequestMetric, values: readonly string[], value: number, bounds: readonly number[]): void {
    if (!Number.isFinite(value) || value < 0) return;
    const k = seriesKey(metric.name, values);
    let h = this.histograms.get(k);
    if (!h) this.histograms.set(k, (h = { buckets: emptyBuckets(), sum: 0 }));
    h.buckets[bucketIndex(value, bounds)]!++;
    h.sum += value;
  }

  /** One feedback: the /metrics counters and the drift series' minute. */
  observeFeedback(f: FeedbackObservation): void {
    this.records++;
    const labels = [f.tenant, none(f.model), none(f.deployment), none(f.version), f.feature, f.metric];
    this.add(M.feedback, [...labels, f.score > 0 ? 'positive' : f.score < 0 ? 'negative' : 'neutral']);
    this.add(M.feedbackScore, labels, f.score);
    if (!f.isDefault) return;
    const q = this.qualityMinute(f.at, f.deployment, f.version, f.model);
    q.feedback++;
    if (f.score < 0) q.feedback_negative++;
  }

  private qualityMinute(ts: number, deployment: string | null, version: string | null, model: string | null): QualityMinute {
    const key = { minute: minuteOf(ts), deployment, version, model };
    const k = qualityKey(key);
    let q = this.quality.get(k);
    if (!q) this.quality.set(k, (q = emptyQuality(key)));
    return q;
  }

  /** Refusals, truncations and output length of a judged answer (README "Quality signals and drift"). */
  private observeQuality(r: UsageRecord, model: string): void {
    if (r.refused === null || r.refused === undefined) return;
    const labels = [r.tenant, model, none(r.deployment ?? null), none(r.deployment_version ?? null)];
    const truncated = r.finish_reason === 'length';
    this.add(M.answers, labels);
    if (r.refused) this.add(M.refusals, labels);
    if (truncated) this.add(M.truncations, labels);
    this.observeIn(M.outputTokens, labels, r.completion_tokens, OUTPUT_TOKEN_BUCKETS);
    const q = this.qualityMinute(r.ts, r.deployment ?? null, r.deployment_version ?? null, r.model);
    q.answered++;
    if (r.refused) q.refusals++;
    if (truncated) q.truncations++;
    q.output_tokens += r.completion_tokens;
  }

  /** Everything one usage record counts for. */
  observeRecord(r: UsageRecord): void {
    this.records++;
    const model = none(r.model);
    const where = [r.tenant, model, none(r.region), none(r.backend)];
    this.add(M.requests, [...where, String(r.status), r.outcome]);
    if (r.error_code) this.add(M.errors, [r.tenant, model, r.error_code]);
    this.observe(M.duration, where, r.latency_ms);
    if (r.ttft_ms !== null) this.observe(M.ttft, where, r.ttft_ms);
    this.add(M.tokens, [r.tenant, model, 'in'], r.prompt_tokens);
    this.add(M.tokens, [r.tenant, model, 'out'], r.completion_tokens);
    this.add(M.cachedTokens, [r.tenant, model], r.cached_tokens);
    this.add(M.cost, [r.tenant, model], r.cost_usd);
    this.add(M.saved, [r.tenant, model], r.saved_usd);
    this.add(M.cache, [r.tenant, none(r.tier), r.cache]);
    if (r.outcome === 'rate_limited' || (r.status === 429 && r.error_code !== null && LIMIT_CODES.has(r.error_code))) {
      this.add(M.rateLimited, [r.tenant, r.error_code ?? 'rate_limit_exceeded']);
    }
    this.observePath(r, model);
    this.observeMinute(r);
    this.observeQuality(r, model);
  }

  /**
   * Retries and fallbacks from the attempts' path: a backend seen earlier in the path is a retry;
   * a change of backend a fallback (from → to); a degraded answer after attempts, a fallback to
   * "degraded". Their causes are router_attempt_failures_total (the executor's count).
   */
  private observePath(r: UsageRecord, model: string): void {
    const seen = new Set<string>();
    r.path.forEach((backend, i) => {
      if (seen.has(backend)) this.add(M.retries, [model, backend]);
      seen.add(backend);
      const prev = i > 0 ? r.path[i - 1]! : null;
      if (prev !== null && prev !== backend) this.add(M.fallbacks, [model, prev, backend]);
    });
    if (r.outcome === 'degraded' && r.path.length > 0) this.add(M.fallbacks, [model, r.path[r.path.length - 1]!, 'degraded']);
  }

  private observeMinute(r: UsageRecord): void {
    const key = { minute: minuteOf(r.ts), tenant: r.tenant, key_id: r.key_id, model: r.model };
    const k = minuteKey(key);
    let b = this.minutes.get(k);
    if (!b) {
      b = { ...key, requests: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0, cost_usd: 0, ttft_ms_buckets: emptyBuckets(), latency_ms_buckets: emptyBuckets() };
      this.minutes.set(k, b);
    }
    b.requests++;
    if (ERROR_OUTCOMES.has(r.outcome)) b.errors++;
    b.prompt_tokens += r.prompt_tokens;
    b.completion_tokens += r.completion_tokens;
    b.cost_usd += r.cost_usd;
    b.latency_ms_buckets[bucketIndex(r.latency_ms)]!++;
    if (r.ttft_ms !== null) b.ttft_ms_buckets[bucketIndex(r.ttft_ms)]!++;
  }

  /** Hands over what was counted and starts again from zero. */
  take(): DeltaBody {
    const body: DeltaBody = {
      counters: [...this.counters],
      histograms: [...this.histograms].map(([k, h]) => [k, h.buckets, h.sum]),
      minutes: [...this.minutes.values()],
      ...(this.quality.size ? { quality: [...this.quality.values()] } : {}),
    };
    this.counters = new Map();
    this.histograms = new Map();
    this.minutes = new Map();
    this.quality = new Map();
    this.records = 0;
    return body;
  }
}
