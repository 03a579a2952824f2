import { z } from 'zod';

/**
 * A backend's scale-to-zero policy ([backends.scaling] in TOML), read by the scale scripts
 * (scripts/scale/). The router itself only reads `cold_start_ms` (on the backend) for
 * cold-start-aware routing; the rest is the scripts' business.
 */

const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be HH:MM (24 h)');
const weekday = z.enum(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']);

/** A window in which the backend is kept warm (at least `min_replicas`, at least 1), e.g. business hours. */
export const keepWarmSchema = z.strictObject({
  days: z.array(weekday).min(1).default(['mon', 'tue', 'wed', 'thu', 'fri']),
  from: hhmm,
  to: hhmm,
  /** IANA time zone, e.g. "Europe/Paris". */
  time_zone: z.string().min(1).default('UTC'),
  /** Replicas kept during the window. */
  replicas: z.number().int().min(1).default(1),
});

export const kubernetesTargetSchema = z.strictObject({
  namespace: z.string().min(1).default('default'),
  deployment: z.string().min(1),
  /** kubeconfig context; the current one when unset. */
  context: z.string().min(1).optional(),
});

export const modalTargetSchema = z.strictObject({
  app: z.string().min(1),
  function: z.string().min(1),
  environment: z.string().min(1).optional(),
});

export const replicateTargetSchema = z.strictObject({
  /** "owner/name" of a Replicate deployment. */
  deployment: z.string().regex(/^[\w.-]+\/[\w.-]+$/, 'must be owner/name'),
});

/** The local stack's simulators and stand-ins (scripts/scale/drivers/sim.ts): parked and woken through their /sim/state. */
export const simTargetSchema = z.strictObject({
  /** Where /sim/state is served; default: the backend's own url. */
  url: z.url({ protocol: /^http$/ }).optional(),
});

export const scalingSchema = z
  .strictObject({
    driver: z.enum(['kubernetes', 'modal', 'replicate', 'sim', 'none']),
    /** Park the backend after this long without a request (and none in flight). */
    idle_minutes: z.number().min(1).max(7 * 24 * 60).default(15),
    min_replicas: z.number().int().min(0).default(0),
    max_replicas: z.number().int().min(1).default(1),
    /** Replicas a wake-up starts. */
    wake_replicas: z.number().int().min(1).default(1),
    keep_warm: z.array(keepWarmSchema).default([]),
    kubernetes: kubernetesTargetSchema.optional(),
    modal: modalTargetSchema.optional(),
    replicate: replicateTargetSchema.optional(),
    sim: simTargetSchema.optional(),
  })
  .superRefine((s, ctx) => {
    if (s.min_replicas > s.max_replicas) ctx.addIssue({ code: 'custom', path: ['min_replicas'], message: 'must not exceed max_replicas' });
    if (s.wake_replicas > s.max_replicas) ctx.addIssue({ code: 'custom', path: ['wake_replicas'], message: 'must not exceed max_replicas' });
    if (s.driver !== 'none' && s.driver !== 'sim' && !s[s.driver]) ctx.addIssue({ code: 'custom', path: [s.driver], message: `driver "${s.driver}" needs a [${s.driver}] table` });
  });
export type ScalingConfig = z.infer<typeof scalingSchema>;
