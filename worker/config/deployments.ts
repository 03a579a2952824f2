import { z } from 'zod';

// [deployments.<name>] (README "Rollouts and quality"): what a client-facing model name resolves
// to, in versions; how rollouts of a new version proceed and when they roll back; the defaults of
// A/B tests; and the regression gate a version must pass first. Run-time changes (new versions,
// rollouts, blue-green switches) live in the deployment's Durable Object; this is the default.

const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, 'must be letters, digits, ".", "_", ":" or "-"').max(64);
const semver = z.string().regex(/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/, 'must be a semantic version (1.2.3)');

/** A prompt template version: a system prompt and parameters applied to every request of the version. */
export const promptTemplateSchema = z.strictObject({
  version: semver,
  /** Put first in `messages` (chat), before the client's own system message, if any. */
  system: z.string().min(1).max(32_000).optional(),
  /** Used when the client sends none. */
  temperature: z.number().min(0).max(2).optional(),
  top_p: z.number().gt(0).max(1).optional(),
  /** A cap: the client's max_tokens (or max_completion_tokens) is lowered to it, and it is set when the client sends none. */
  max_tokens: z.number().int().positive().max(1_000_000).optional(),
});

export const deploymentVersionSchema = z.strictObject({
  /** A model id or alias of [[models]]. */
  model: z.string().min(1).max(256),
  prompt: promptTemplateSchema.optional(),
  metadata: z.record(z.string().max(64), z.union([z.string().max(1024), z.number(), z.boolean()])).default({}),
});

const steps = z
  .array(z.number().gt(0).max(100))
  .min(1)
  .max(20)
  .refine((s) => s.every((v, i) => i === 0 || v > s[i - 1]!), 'must increase')
  .refine((s) => s[s.length - 1] === 100, 'must end at 100');

export const rolloutPolicySchema = z.strictObject({
  /** Shares (percent) of the candidate, in order; each held for dwell_seconds and min_requests. */
  steps: steps.default([5, 25, 50, 100]),
  dwell_seconds: z.number().int().min(0).max(86_400 * 7).default(300),
  /** Candidate requests a step needs before the next. */
  min_requests: z.number().int().min(0).max(10_000_000).default(200),
  /** Requests each arm needs before a rollback verdict can be reached. */
  min_samples: z.number().int().min(5).max(1_000_000).default(30),
  /** How often the object compares the arms while a rollout runs. */
  evaluate_interval_ms: z.number().int().min(200).max(600_000).default(5_000),
  /** How often an isolate sends its batch of rollout outcomes to the deployment's object (at most). */
  report_interval_ms: z.number().int().min(0).max(60_000).default(500),
  /** How old an isolate's copy of the split may get before it is re-read in the background. */
  refresh_ms: z.number().int().min(100).max(600_000).default(2_000),
  /** One-sided confidence a difference in a rate or mean needs to count as worse. */
  confidence: z.number().gt(0.5).lt(1).default(0.95),
  thresholds: z
    .strictObject({
      /** Candidate error rate above stable by more than this many percentage points. */
      error_rate_points: z.number().min(0).max(100).default(1),
      /** Candidate p95 latency above stable by more than this percent. */
      p95_latency_pct: z.number().min(0).max(10_000).default(20),
      p95_ttft_pct: z.number().min(0).max(10_000).default(20),
      /** A p95 difference smaller than this is never worse, whatever the percent (milliseconds of jitter are not a regression). */
      latency_floor_ms: z.number().min(0).max(600_000).default(25),
      /** Refusal, truncation, negative feedback rates higher (or mean output length lower) by more than this percent. */
      quality_pct: z.number().min(0).max(10_000).default(5),
    })
    .prefault({}),
});

export const abPolicySchema = z.strictObject({
  /** "positive_feedback" (share of feedback with a positive score) or a custom metric sent with /v1/feedback. */
  metric: id.default('positive_feedback'),
  alpha: z.number().gt(0).lt(0.5).default(0.05),
  /** "sequential" (mSPRT: may be checked at any time) or "fixed" (a two-proportion / Welch test: read once, at the planned size). */
  test: z.enum(['sequential', 'fixed']).default('sequential'),
  /** Share of traffic (percent) the candidate gets in an A/B test. */
  share: z.number().gt(0).lt(100).default(50),
});

export const gatePolicySchema = z.strictObject({
  /** A rollout (and a promotion) needs a passing gate result for the version, unless forced with a reason. */
  required: z.boolean().default(true),
  min_mean_similarity: z.number().min(0).max(1).default(0.9),
  /** No metric worse than the stable version's by more than this (relative). */
  max_regression: z.number().min(0).max(1).default(0.05),
});

export const deploymentSchema = z.strictObject({
  description: z.string().max(1024).optional(),
  /** The stable version, unless changed at run time (a promotion, a blue-green switch). */
  serving: id,
  /** Assignment is sticky per user (body.user or x-router-user, else the key) or per key. */
  sticky: z.enum(['user', 'key']).default('user'),
  versions: z.record(id, deploymentVersionSchema).refine((v) => Object.keys(v).length > 0, 'at least one version'),
  rollout: rolloutPolicySchema.prefault({}),
  ab: abPolicySchema.prefault({}),
  gate: gatePolicySchema.prefault({}),
});

export const deploymentsSchema = z.record(id, deploymentSchema).default({});

export type PromptTemplate = z.infer<typeof promptTemplateSchema>;
export type DeploymentVersion = z.infer<typeof deploymentVersionSchema>;
export type DeploymentConfig = z.infer<typeof deploymentSchema>;
export type RolloutPolicy = z.infer<typeof rolloutPolicySchema>;
