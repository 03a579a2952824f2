import type { CompiledConfig } from '../config/compiled';
import type { Env } from '../env';
import type { WaitUntil } from '../isolate/background';
import type { ArmSample } from '../protocol/rules/rollout-stats';
import type { UsageRecord } from '../protocol/usage-record';
import type { DeploymentAssignment } from './assign';
import { background, errorMessage } from '../isolate/background';
import { onFeedback } from '../quality/feedback';
import { deploymentDef, reportOutcome, stub } from './view';

/**
 * A rollout request's sample, from its usage record, or null when it says nothing about the
 * version: a cache hit (the version did not run), a rate-limit or budget refusal, a client that
 * left, or a 4xx the router gave before any backend was tried (the client's own mistake).
 */
export function sampleOf(record: UsageRecord): ArmSample | null {
  if (record.cache === 'hit' || record.cache === 'semantic-hit') return null;
  if (record.outcome === 'rate_limited' || record.outcome === 'client_closed') return null;
  const failed = record.outcome === 'error' || record.outcome === 'stream_error' || record.outcome === 'degraded';
  if (failed && record.status < 500 && record.attempts === 0 && record.outcome === 'error') return null;
  return {
    error: failed,
    latencyMs: record.latency_ms,
    ttftMs: record.ttft_ms,
    truncated: record.finish_reason === 'length',
    refused: record.refused === true,
    outputTokens: failed ? null : record.completion_tokens,
  };
}

/** Reports a finished request of a running rollout to the deployment's object (batched, in waitUntil). */
export function recordDeploymentOutcome(env: Env, ctx: WaitUntil, config: CompiledConfig, d: DeploymentAssignment, record: UsageRecord): void {
  if (d.rolloutId === null) return;
  const sample = sampleOf(record);
  if (!sample) return;
  reportOutcome(env, ctx, config, d.name, { rolloutId: d.rolloutId, arm: d.arm, requestId: record.request_id, at: record.ts, sample });
}

/** Feedback on a request that ran on a deployment: to its object, for the running rollout's arms (in waitUntil). */
export function recordDeploymentFeedback(env: Env, ctx: WaitUntil, config: CompiledConfig, record: UsageRecord, score: number, metric: string | null): void {
  const name = record.deployment;
  const version = record.deployment_version;
  const ns = env.DEPLOYMENTS;
  if (!name || !version || !ns || !Object.hasOwn(config.raw.deployments, name)) return;
  const call = stub(ns, name)
    .feedback(deploymentDef(config, name), { requestId: record.request_id, version, at: record.ts, score, ...(metric ? { metric } : {}) })
    .catch((e: unknown) => console.warn(`deployment ${name}: feedback not counted: ${errorMessage(e)}`));
  background(ctx, call, 'deployment feedback');
}

// Feedback on a deployment's request counts for its running rollout (a replacement replaces it there too).
onFeedback((f, env, ctx, config) => recordDeploymentFeedback(env, ctx, config, f.record, f.score, f.metric));
