// Per-minute quality series kept by the MetricsAggregator (durable-objects/metrics-aggregator.ts)
// for the last hour, per deployment version (or model, for traffic not on a deployment): what the
// drift alert (worker/alerts/drift.ts) reads through its qualityMinutes() RPC. Additive, like
// minute-series.ts, so isolates' deltas and the aggregator's shards simply add up.

export interface QualityMinute {
  /** Epoch ms at the start of the minute. */
  minute: number;
  deployment: string | null;
  version: string | null;
  /** The model that answered (the request's; for feedback, the record's). */
  model: string | null;
  /** Answered requests (judged answers: usage record `refused` not null). */
  answered: number;
  refusals: number;
  /** Answered requests with finish_reason "length". */
  truncations: number;
  /** Sum of completion_tokens over the answered requests. */
  output_tokens: number;
  /** Default feedback (no custom metric) received in the minute, and how much of it was negative (score < 0). */
  feedback: number;
  feedback_negative: number;
}

export const qualityKey = (q: Pick<QualityMinute, 'minute' | 'deployment' | 'version' | 'model'>): string => JSON.stringify([q.minute, q.deployment, q.version, q.model]);

export const emptyQuality = (key: Pick<QualityMinute, 'minute' | 'deployment' | 'version' | 'model'>): QualityMinute => ({
  minute: key.minute,
  deployment: key.deployment,
  version: key.version,
  model: key.model,
  answered: 0,
  refusals: 0,
  truncations: 0,
  output_tokens: 0,
  feedback: 0,
  feedback_negative: 0,
});

/** Adds b into a (same key), returning a. */
export function mergeQuality(a: QualityMinute, b: QualityMinute): QualityMinute {
  a.answered += b.answered;
  a.refusals += b.refusals;
  a.truncations += b.truncations;
  a.output_tokens += b.output_tokens;
  a.feedback += b.feedback;
  a.feedback_negative += b.feedback_negative;
  return a;
}

/** Merges the lists of several aggregator shards into one, sorted by minute. */
export function mergeQualityLists(lists: readonly (readonly QualityMinute[])[]): QualityMinute[] {
  const byKey = new Map<string, QualityMinute>();
  for (const list of lists) {
    for (const q of list) {
      const k = qualityKey(q);
      const have = byKey.get(k);
      if (have) mergeQuality(have, q);
      else byKey.set(k, { ...q });
    }
  }
  return [...byKey.values()].sort((x, y) => x.minute - y.minute);
}
