// Per-minute series kept by the MetricsAggregator (durable-objects/metrics-aggregator.ts) for the
// last hour, per (tenant, key_id, model): what the alerts read through its minutes() RPC. Shared
// here so the alerts import the type and the bucket boundaries without importing the object.

/**
 * Upper bounds (ms, inclusive) of the latency and TTFT histograms, the same for /metrics (in
 * seconds there) and the minute buckets. A bucket array has one more slot: the overflow (+Inf).
 */
export const LATENCY_BUCKETS_MS: readonly number[] = [25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 120_000];

/** Minutes kept by the aggregator. */
export const MINUTES_KEPT = 60;

export interface MinuteBucket {
  /** Epoch ms at the start of the minute. */
  minute: number;
  tenant: string;
  key_id: string | null;
  model: string | null;
  requests: number;
  /** Requests whose outcome was not ok (errors, stream errors, degraded answers; rate-limited and client-closed excluded). */
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: number;
  /** Counts per bucket (not cumulative): index i counts values ≤ LATENCY_BUCKETS_MS[i] and above the previous bound; the last slot is the overflow. */
  ttft_ms_buckets: number[];
  latency_ms_buckets: number[];
}

export const minuteOf = (ms: number): number => ms - (ms % 60_000);

/** Index of the bucket a value falls in (the last index: overflow). */
export function bucketIndex(valueMs: number, bounds: readonly number[] = LATENCY_BUCKETS_MS): number {
  // Linear: a dozen bounds, and most values fall in the first few.
  for (let i = 0; i < bounds.length; i++) if (valueMs <= bounds[i]!) return i;
  return bounds.length;
}

export const emptyBuckets = (): number[] => new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);

/** Adds b's counts into a (same length), returning a. */
export function addBuckets(a: number[], b: readonly number[]): number[] {
  for (let i = 0; i < a.length; i++) a[i]! += b[i] ?? 0;
  return a;
}

/** The identity of a minute bucket's series, for maps. */
export const minuteKey = (b: Pick<MinuteBucket, 'minute' | 'tenant' | 'key_id' | 'model'>): string => JSON.stringify([b.minute, b.tenant, b.key_id, b.model]);

/** Merges b into a (same key), returning a. */
export function mergeMinute(a: MinuteBucket, b: MinuteBucket): MinuteBucket {
  a.requests += b.requests;
  a.errors += b.errors;
  a.prompt_tokens += b.prompt_tokens;
  a.completion_tokens += b.completion_tokens;
  a.cost_usd += b.cost_usd;
  addBuckets(a.ttft_ms_buckets, b.ttft_ms_buckets);
  addBuckets(a.latency_ms_buckets, b.latency_ms_buckets);
  return a;
}

/** Merges lists of buckets from several aggregator shards into one list, sorted by minute. */
export function mergeMinuteLists(lists: readonly (readonly MinuteBucket[])[]): MinuteBucket[] {
  const byKey = new Map<string, MinuteBucket>();
  for (const list of lists) {
    for (const b of list) {
      const k = minuteKey(b);
      const have = byKey.get(k);
      if (have) mergeMinute(have, b);
      else byKey.set(k, { ...b, ttft_ms_buckets: [...b.ttft_ms_buckets], latency_ms_buckets: [...b.latency_ms_buckets] });
    }
  }
  return [...byKey.values()].sort((x, y) => x.minute - y.minute);
}
