// Turns the aggregators' cumulative series (one snapshot per shard) into exposition families.

import type { MetricsSnapshot } from '../protocol/metrics';
import type { Family, HistogramSample, Sample } from './exposition';
import { parseSeriesKey, REQUEST_METRICS, type MetricDef } from './metric-catalog';
import { addBuckets, emptyBuckets, LATENCY_BUCKETS_MS } from '../protocol/rules/minute-series';

const BOUNDS_SECONDS = LATENCY_BUCKETS_MS.map((ms) => ms / 1000);

/** The request families, shards added up. A series of a name not in the catalog (an older build's) is left out. */
export function requestFamilies(snapshots: readonly MetricsSnapshot[]): Family[] {
  const counters = new Map<string, number>();
  const histograms = new Map<string, { buckets: number[]; sum: number }>();
  for (const s of snapshots) {
    for (const [k, v] of s.counters) counters.set(k, (counters.get(k) ?? 0) + v);
    for (const [k, buckets, sum] of s.histograms) {
      const h = histograms.get(k) ?? { buckets: emptyBuckets(), sum: 0 };
      addBuckets(h.buckets, buckets);
      h.sum += sum;
      histograms.set(k, h);
    }
  }
  const samples = new Map<string, Sample[]>();
  const hists = new Map<string, HistogramSample[]>();
  for (const [k, value] of counters) {
    const { name, values } = parseSeriesKey(k);
    let list = samples.get(name);
    if (!list) samples.set(name, (list = []));
    list.push({ values, value });
  }
  for (const [k, h] of histograms) {
    const { name, values } = parseSeriesKey(k);
    let list = hists.get(name);
    if (!list) hists.set(name, (list = []));
    list.push({ values, buckets: h.buckets, sum: h.sum });
  }
  return Object.values(REQUEST_METRICS).map((def: MetricDef): Family =>
    def.type === 'histogram' ? { def, histogram: hists.get(def.name) ?? [], boundsSeconds: def.bounds ?? BOUNDS_SECONDS } : { def, samples: samples.get(def.name) ?? [] },
  );
}
