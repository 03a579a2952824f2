/**
 * What the operator scripts and their tests read from the deployments admin API (contract of
 * issue 14; the types of arms, comparison and A/B result are worker/protocol/rules/rollout-stats.ts).
 * Loose on purpose: fields the scripts show are checked, anything else passes through, and a
 * figure the router does not (yet) report shows as "—" rather than failing the command.
 */
import { z } from 'zod';

const num = z.number().nullable().optional();
const time = z.union([z.string(), z.number()]).nullable().optional();

export const armSummarySchema = z.looseObject({
  requests: z.number().optional(),
  errors: z.number().optional(),
  error_rate: num,
  p95_latency_ms: num,
  p95_ttft_ms: num,
  refusal_rate: num,
  truncation_rate: num,
  mean_output_tokens: num,
  feedback: z.looseObject({ count: z.number().optional(), negative_rate: num, positive_rate: num, mean_score: num }).optional(),
  metrics: z.record(z.string(), z.looseObject({ n: z.number(), mean: z.number() })).optional(),
});
export type ArmView = z.infer<typeof armSummarySchema>;

export const comparisonSchema = z.looseObject({
  verdict: z.string(),
  reasons: z.array(z.string()).default([]),
  checks: z
    .array(z.looseObject({ signal: z.string(), stable: num, candidate: num, limit: num, worse: z.boolean().optional(), significant: z.boolean().optional(), p_value: num }))
    .default([]),
});

export const abSchema = z.looseObject({
  metric: z.string(),
  test: z.string().optional(),
  alpha: num,
  stable: z.looseObject({ n: z.number(), value: num }),
  candidate: z.looseObject({ n: z.number(), value: num }),
  diff: num,
  ci: z.tuple([z.number(), z.number()]).nullable().optional(),
  p_value: num,
  significant: z.boolean().optional(),
  winner: z.string().nullable().optional(),
});

export const rolloutSchema = z.looseObject({
  id: z.string(),
  deployment: z.string(),
  mode: z.string(),
  stable: z.string(),
  candidate: z.string(),
  state: z.string(),
  step: z.number().nullable().optional(),
  steps: z.array(z.number()).nullable().optional(),
  share: z.number().nullable().optional(),
  step_started_at: time,
  started_at: time,
  ended_at: time,
  reason: z.string().nullable().optional(),
  arms: z.object({ stable: armSummarySchema, candidate: armSummarySchema }).nullable().optional(),
  comparison: comparisonSchema.nullable().optional(),
  ab: abSchema.nullable().optional(),
  /** Canary: what the next step still waits for. */
  next: z.looseObject({ share: z.number(), wait_seconds: z.number(), requests_needed: z.number() }).nullable().optional(),
});
export type RolloutView = z.infer<typeof rolloutSchema>;

export const gateSchema = z.looseObject({ version: z.string(), passed: z.boolean(), at: time, actor: z.string().optional(), summary: z.record(z.string(), z.unknown()).optional() });

export const deploymentSchema = z.looseObject({
  name: z.string(),
  serving: z.string(),
  previous: z.string().nullable().optional(),
  sticky: z.string().optional(),
  versions: z.array(z.looseObject({ name: z.string(), model: z.string().optional(), source: z.string().optional(), gate: gateSchema.nullable().optional() })),
  rollout: rolloutSchema.nullable().optional(),
  rollouts: z.array(rolloutSchema).optional(),
  history: z.array(z.looseObject({ at: time, actor: z.string().optional(), action: z.string(), version: z.string().nullable().optional(), reason: z.string().nullable().optional() })).optional(),
  /** The [gate] settings, if the router shows them. */
  gate: z.looseObject({ min_mean_similarity: z.number().optional(), max_regression: z.number().optional() }).nullable().optional(),
});
export type DeploymentView = z.infer<typeof deploymentSchema>;

export const deploymentListSchema = z.object({
  data: z.array(z.looseObject({ name: z.string(), serving: z.string(), versions: z.array(z.string()).optional(), rollout: rolloutSchema.nullable().optional() })),
});
