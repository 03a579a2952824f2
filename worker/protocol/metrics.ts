// The wire contract of MetricsAggregator (durable-objects/metrics-aggregator.ts): the deltas
// isolates send (worker/telemetry/metrics.ts) and the snapshot GET /metrics reads. Deltas are
// additive, so the aggregator can sum them from any number of isolates (applyDelta).

import { addBuckets, emptyBuckets, mergeMinute, minuteKey, type MinuteBucket } from './rules/minute-series';
import { mergeQuality, qualityKey, type QualityMinute } from './rules/quality-minutes';

/** One isolate's flush. (isolate, seq) makes a resent flush harmless: the aggregator applies each seq once. */
export interface MetricsDelta {
  isolate: string;
  seq: number;
  /** [series key, increment]. */
  counters: [string, number][];
  /** [series key, counts per bucket (LATENCY_BUCKETS_MS + overflow), sum of the values in seconds]. */
  histograms: [string, number[], number][];
  minutes: MinuteBucket[];
  /** Quality signals per minute and deployment version / model (absent from an older build's isolates). */
  quality?: QualityMinute[];
}

export type DeltaBody = Omit<MetricsDelta, 'isolate' | 'seq'>;

export interface MetricsSnapshot {
  counters: [string, number][];
  histograms: [string, number[], number][];
  /** This object's clock. */
  at: number;
}

/** Adds a delta body into cumulative maps (the aggregator's, or a test's). */
export function applyDelta(
  into: { counters: Map<string, number>; histograms: Map<string, { buckets: number[]; sum: number }>; minutes: Map<string, MinuteBucket>; quality?: Map<string, QualityMinute> },
  d: DeltaBody,
): { counters: Set<string>; histograms: Set<string>; minutes: Set<string>; quality: Set<string> } {
  const touched = { counters: new Set<string>(), histograms: new Set<string>(), minutes: new Set<string>(), quality: new Set<string>() };
  if (into.quality) {
    for (const q of d.quality ?? []) {
      const k = qualityKey(q);
      const have = into.quality.get(k);
      if (have) mergeQuality(have, q);
      else into.quality.set(k, { ...q });
      touched.quality.add(k);
    }
  }
  for (const [k, v] of d.counters) {
    into.counters.set(k, (into.counters.get(k) ?? 0) + v);
    touched.counters.add(k);
  }
  for (const [k, buckets, sum] of d.histograms) {
    const h = into.histograms.get(k);
    if (h) {
      addBuckets(h.buckets, buckets);
      h.sum += sum;
    } else into.histograms.set(k, { buckets: addBuckets(emptyBuckets(), buckets), sum });
    touched.histograms.add(k);
  }
  for (const m of d.minutes) {
    const k = minuteKey(m);
    const have = into.minutes.get(k);
    if (have) mergeMinute(have, m);
    else into.minutes.set(k, { ...m, ttft_ms_buckets: addBuckets(emptyBuckets(), m.ttft_ms_buckets), latency_ms_buckets: addBuckets(emptyBuckets(), m.latency_ms_buckets) });
    touched.minutes.add(k);
  }
  return touched;
}
