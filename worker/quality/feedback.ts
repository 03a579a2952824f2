// Feedback on answered requests (POST /v1/feedback, README "Feedback"): the body's schema, where
// it is stored (the caller's tenant's ledger, joined to the usage record), how it is counted in
// /metrics and the drift series, and the hook other parts subscribe to (the deployment's rollout).

import { z } from 'zod';
import type { CompiledConfig } from '../config/compiled';
import type { Env } from '../env';
import type { WaitUntil } from '../isolate/background';
import type { FeedbackResult, StoredFeedback } from '../protocol/ledger';
import type { UsageRecord } from '../protocol/usage-record';
import { observeFeedback } from '../telemetry/metrics';
import { ledgerName } from '../telemetry/record';

/** The A/B metric name that means the default score (worker/config/deployments.ts); sent as `metric`, it is the default. */
export const DEFAULT_METRIC = 'positive_feedback';
export const MAX_COMMENT_CHARS = 4_000;

const REQUEST_ID_RE = /^[\w\-=.:]{1,128}$/;

export const feedbackBodySchema = z.strictObject({
  /** The router's id (x-request-id, or x-router-request-id when the client sent its own x-request-id), or the client's own id when it names one request only. */
  request_id: z.string().regex(REQUEST_ID_RE, 'must be a request id (1-128 letters, digits, "_", "-", "=", "." or ":")'),
  /** 1 (good), -1 (bad), or a grade in [0, 1]. */
  score: z.number().refine((n) => n === -1 || (n >= 0 && n <= 1), 'must be 1, -1 or a number between 0 and 1'),
  comment: z.string().max(MAX_COMMENT_CHARS).optional(),
  /** A custom metric's name (an A/B test may use it); absent (or "positive_feedback"): the default score. */
  metric: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, 'must be 1-64 letters, digits, ".", "_", ":" or "-", starting with a letter or digit').optional(),
});
export type FeedbackBody = z.infer<typeof feedbackBodySchema>;

/** What subscribers hear: one stored feedback and the record it is about. */
export interface FeedbackEvent {
  tenant: string;
  /** The router's request id (also when the client named its own). */
  request_id: string;
  score: number;
  /** A custom metric's name; null for the default score. */
  metric: string | null;
  /** True when it replaced earlier feedback on the same request and metric. */
  replaced: boolean;
  /** When the feedback arrived (epoch ms). */
  at: number;
  record: UsageRecord;
}

type Subscriber = (f: FeedbackEvent, env: Env, ctx: WaitUntil, config: CompiledConfig) => void;
const subscribers: Subscriber[] = [];

/**
 * Another consumer of every stored feedback (e.g. the deployment's rollout object): called
 * synchronously once it is stored, before the answer. Must be cheap (send in ctx.waitUntil) and
 * should not throw (a throw is logged and ignored). Returns a function that unsubscribes.
 */
export function onFeedback(fn: Subscriber): () => void {
  subscribers.push(fn);
  return () => {
    const i = subscribers.indexOf(fn);
    if (i >= 0) subscribers.splice(i, 1);
  };
}

/** How long a lookup waits for a record not written yet: the isolates' batch interval plus room for a retried write. */
export const feedbackWaitMs = (config: CompiledConfig): number => Math.min(10_000, config.raw.usage.flush_interval_ms + 2_000);

/** Stores the feedback in the tenant's ledger (waiting briefly for a record still in a batch). */
export async function storeFeedback(env: Env, config: CompiledConfig, tenant: string, keyId: string | null, body: FeedbackBody, now: number): Promise<FeedbackResult> {
  const keep = config.raw.tenants[tenant]?.store_feedback_comments === true;
  const comment = body.comment ?? null;
  const ledger = env.USAGE_LEDGER.get(env.USAGE_LEDGER.idFromName(ledgerName(tenant)));
  return (await ledger.feedback({
    request_id: body.request_id,
    score: body.score,
    metric: body.metric === undefined || body.metric === DEFAULT_METRIC ? null : body.metric,
    comment: keep ? comment : null,
    comment_length: comment === null ? null : comment.length,
    key_id: keyId,
    ts: now,
    wait_ms: feedbackWaitMs(config),
  })) as FeedbackResult;
}

/** Counts a stored feedback (its first, per request and metric) and tells the subscribers. Never throws. */
export function announceFeedback(env: Env, ctx: WaitUntil, config: CompiledConfig, event: FeedbackEvent): void {
  if (!event.replaced) {
    const r = event.record;
    observeFeedback(
      {
        at: event.at,
        tenant: event.tenant,
        model: r.model,
        deployment: r.deployment ?? null,
        version: r.deployment_version ?? null,
        feature: featureLabel(config, event.tenant, r.feature),
        metric: metricLabel(config, event.metric),
        isDefault: event.metric === null,
        score: event.score,
      },
      env,
      ctx,
      config,
    );
  }
  for (const fn of subscribers) {
    try {
      fn(event, env, ctx, config);
    } catch (e) {
      console.error(JSON.stringify({ msg: 'feedback: subscriber failed', error: String(e) }));
    }
  }
}

/** A feature label from config only: the tenant's listed feature, "none" without one, "other" for a name the config does not list. */
export function featureLabel(config: CompiledConfig, tenant: string, feature: string | null): string {
  if (feature === null) return 'none';
  return config.raw.tenants[tenant]?.features?.includes(feature) ? feature : 'other';
}

/** A metric label from config only: "default", a metric some deployment's A/B policy names, or "custom". */
export function metricLabel(config: CompiledConfig, metric: string | null): string {
  if (metric === null) return 'default';
  return Object.values(config.raw.deployments).some((d) => d.ab.metric === metric) ? metric : 'custom';
}

/** The answer: the stored feedback joined to its record's model, deployment and version. */
export function feedbackView(f: StoredFeedback, record: UsageRecord, replaced: boolean) {
  return {
    object: 'feedback',
    request_id: record.request_id,
    client_request_id: record.client_request_id ?? null,
    score: f.score,
    metric: f.metric,
    comment_length: f.comment_length,
    comment_stored: f.comment !== null,
    created_at: new Date(f.ts).toISOString(),
    replaced,
    request: {
      created_at: new Date(record.ts).toISOString(),
      requested_model: record.requested_model,
      model: record.model,
      deployment: record.deployment ?? null,
      deployment_version: record.deployment_version ?? null,
      feature: record.feature,
      finish_reason: record.finish_reason ?? null,
      refused: record.refused ?? null,
    },
  };
}
