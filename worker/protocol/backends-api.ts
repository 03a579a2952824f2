import { z } from 'zod';

/**
 * The wire contract of `/admin/backends` (issue 6), shared by the router (worker/routes/
 * admin-backends.ts) and the scale-to-zero scripts (scripts/scale/), which parse what the
 * router answers with these same schemas. One definition, so the two cannot drift.
 */

/** warm: answering; cold: no replica (parked or never started); waking: a start is under way; unknown: nothing known yet. */
export const backendStates = ['warm', 'cold', 'waking', 'unknown'] as const;
export type BackendState = (typeof backendStates)[number];

export const backendStatusSchema = z.object({
  id: z.string(),
  kind: z.string(),
  region: z.string(),
  state: z.enum(backendStates),
  /** Since when the backend has been in this state (ISO 8601), null when unknown. */
  state_since: z.string().nullable(),
  /** Last request the router sent it (ISO 8601), null when none since the state was created. */
  last_request_at: z.string().nullable(),
  /** Requests the router has in flight to it now (edge-wide, as last reported by isolates). */
  in_flight: z.number().int().nonnegative(),
  /** Requests per minute over the last 5 minutes. */
  request_rate_per_min: z.number().nonnegative(),
  /** Wake-ups the router has asked for and no scale event has answered yet. */
  pending_wakeups: z.number().int().nonnegative(),
  /** When the oldest pending wake-up was asked for (ISO 8601), null when none. */
  wakeup_requested_at: z.string().nullable(),
  cold_start_ms: z.object({
    /** From config ([[backends]].cold_start_ms), null when not set. */
    configured: z.number().nullable(),
    /** What routing uses now: learnt from observed starts once there are some, else configured. */
    expected: z.number().nullable(),
    /** The most recent observed starts (ms), newest last. */
    observed: z.array(z.number()),
  }),
  /** Replicas as last reported by a scale event, null when never reported. */
  replicas: z.number().int().nonnegative().nullable(),
});
export type BackendStatus = z.infer<typeof backendStatusSchema>;

/** GET /admin/backends */
export const backendListSchema = z.object({
  object: z.literal('list'),
  /** When the router answered (ISO 8601). */
  now: z.string(),
  data: z.array(backendStatusSchema),
});
export type BackendList = z.infer<typeof backendListSchema>;

/**
 * POST /admin/backends/:id/events: what the scripts report.
 * - scaled_down: replicas went to `replicas` (0 = parked: the backend is cold);
 * - waking: a scale-up from zero was started (answers pending wake-ups);
 * - ready: replicas are serving (`cold_start_ms` = observed start time, when the script measured it).
 */
export const backendEventSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('scaled_down'), replicas: z.number().int().nonnegative() }),
  z.strictObject({ type: z.literal('waking'), replicas: z.number().int().positive().optional() }),
  z.strictObject({ type: z.literal('ready'), replicas: z.number().int().positive().optional(), cold_start_ms: z.number().int().nonnegative().optional() }),
]);
export type BackendEvent = z.infer<typeof backendEventSchema>;
