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

/** The series keys every record counts in, for one set of its label values. */
interface RecordKeys {
  requests: string;
  errors: string | null;
  duration: string;
  ttft: string;
  tokensIn: string;
  tokensOut: string;
  cachedTokens: string;
  cost: string;
  saved: string;
  cache: string;
  answers: string;
  refusals: string;
  truncations: string;
  outputTokens: string;
}

/**
 * Series keys by label values: a steady stream of records repeats a few label sets (tenant, model,
 * backend, outcome), so each set's dozen keys are built once, not a dozen JSON strings a record.
 * Bounded: past the cap it starts again (label values are bounded, config and tenants, but a cap
 * costs nothing).
 */
const recordKeyMemo = new Map<string, RecordKeys>();
const RECORD_KEY_MEMO_MAX = 1024;

function recordKeys(r: UsageRecord, model: string): RecordKeys {
  const region = none(r.region);
  const backend = none(r.backend);
  const tier = none(r.tier);
  const deployment = none(r.deployment ?? null);
  const version = none(r.deployment_version ?? null);
  const memo = JSON.stringify([r.tenant, model, region, backend, r.status, r.outcome, r.error_code, tier, r.cache, deployment, version]);
  let k = recordKeyMemo.get(memo);
  if (k) return k;
  const where = [r.tenant, model, region, backend];
  const quality = [r.tenant, model, deployment, version];
  k = {
    requests: seriesKey(M.requests.name, [...where, String(r.status), r.outcome]),
    errors: r.error_code ? seriesKey(M.errors.name, [r.tenant, model, r.error_code]) : null,
    duration: seriesKey(M.duration.name, where),
    ttft: seriesKey(M.ttft.name, where),
    tokensIn: seriesKey(M.tokens.name, [r.tenant, model, 'in']),
    tokensOut: seriesKey(M.tokens.name, [r.tenant, model, 'out']),
    cachedTokens: seriesKey(M.cachedTokens.name, [r.tenant, model]),
    cost: seriesKey(M.cost.name, [r.tenant, model]),
    saved: seriesKey(M.saved.name, [r.tenant, model]),
    cache: seriesKey(M.cache.name, [r.tenant, tier, r.cache]),
    answers: seriesKey(M.answers.name, quality),
    refusals: seriesKey(M.refusals.name, quality),
    truncations: seriesKey(M.truncations.name, quality),
    outputTokens: seriesKey(M.outputTokens.name, quality),
  };
  if (recordKeyMemo.size >= RECORD_KEY_MEMO_MAX) recordKeyMemo.clear();
  recordKeyMemo.set(memo, k);
  return k;
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
    this.addTo(seriesKey(metric.name, values), by);
  }

  private addTo(k: string, by = 1): void {
    if (by === 0 || !Number.isFinite(by)) return;
    this.counters.set(k, (this.counters.get(k) ?? 0) + by);
  }

  observe(metric: RequestMetric, values: readonly string[], ms: number): void {
    this.observeAt(seriesKey(metric.name, values), ms);
  }

  private observeAt(k: string, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    let h = this.histograms.get(k);
    if (!h) this.histograms.set(k, (h = { buckets: emptyBuckets(), sum: 0 }));
    h.buckets[bucketIndex(ms)]!++;
    h.sum += ms / 1000;
  }

  /** A histogram observation in the metric's own unit and bounds (e.g. tokens). */
  observeIn(metric: RequestMetric, values: readonly string[], value: number, bounds: readonly number[]): void {
    this.observeInAt(seriesKey(metric.name, values), value, bounds);
  }

  private observeInAt(k: string, value: number, bounds: readonly number[]): void {
    if (!Number.isFinite(value) || value < 0) return;
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
  private observeQuality(r: UsageRecord, k: RecordKeys): void {
    if (r.refused === null || r.refused === undefined) return;
    const truncated = r.finish_reason === 'length';
    this.addTo(k.answers);
    if (r.refused) this.addTo(k.refusals);
    if (truncated) this.addTo(k.truncations);
    this.observeInAt(k.outputTokens, r.completion_tokens, OUTPUT_TOKEN_BUCKETS);
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
    const k = recordKeys(r, model);
    this.addTo(k.requests);
    if (k.errors !== null) this.addTo(k.errors);
    this.observeAt(k.duration, r.latency_ms);
    if (r.ttft_ms !== null) this.observeAt(k.ttft, r.ttft_ms);
    this.addTo(k.tokensIn, r.prompt_tokens);
    this.addTo(k.tokensOut, r.completion_tokens);
    this.addTo(k.cachedTokens, r.cached_tokens);
    this.addTo(k.cost, r.cost_usd);
    this.addTo(k.saved, r.saved_usd);
    this.addTo(k.cache);
    if (r.outcome === 'rate_limited' || (r.status === 429 && r.error_code !== null && LIMIT_CODES.has(r.error_code))) {
      this.add(M.rateLimited, [r.tenant, r.error_code ?? 'rate_limit_exceeded']);
    }
    this.observePath(r, model);
    this.observeMinute(r);
    this.observeQuality(r, k);
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
