// The wire contract of TenantQuota (durable-objects/tenant-quota.ts): what isolates
// (worker/budget/lease.ts) and the admin routes send it and what it answers.

/** The x-router-event of a budget alert webhook (signed by rules/signed-webhook.ts). */
export const ALERT_EVENT = 'budget.threshold_reached';

export const LIMIT_NAMES = ['monthly_tokens', 'monthly_usd', 'daily_tokens', 'daily_usd'] as const;
export type LimitName = (typeof LIMIT_NAMES)[number];
export type SoftLimitPolicy = 'block' | 'downgrade';
export type BudgetState = 'ok' | 'warning' | 'soft_limited' | 'hard_limited';
/** Money is counted in integer nano-dollars. */
export const NANO_PER_USD = 1e9;

export interface QuotaScope {
  tenant: string;
  feature: string | null;
}

/** The router's resolved budget settings for one tenant (TOML); every call carries them, the last ones are kept. */
export interface QuotaSettings {
  limits: Record<LimitName, number | null>;
  soft_limit_policy: SoftLimitPolicy;
  hard_limit_ratio: number;
  warning_ratio: number;
  alert_thresholds: number[];
  alert_webhook_url: string | null;
  /** Name of the Worker secret holding the HMAC key (unsigned deliveries without one). */
  alert_webhook_secret: string | null;
  alert_retry_base_ms: number;
  alert_retry_max_ms: number;
  alert_max_attempts: number;
  /** The budget runbook's URL, sent as `runbook_url` in each alert ([alerts].runbook_base_url). */
  alert_runbook_url?: string;
  lease_fraction: number;
  lease_ttl_ms: number;
  /** How long past its use-by a lease's rest stays held: the longest a request admitted on it can run, plus the report delay. */
  lease_hold_ms: number;
}

/** Admin changes: a limit set to null is removed; keys left out keep the TOML value. */
export type BudgetOverrides = Partial<Record<LimitName, number | null>> & { soft_limit_policy?: SoftLimitPolicy };

export interface Amount {
  tokens: number;
  nano: number;
}
/** null: unlimited (no limit in force counts in that unit). */
export interface MaybeAmount {
  tokens: number | null;
  nano: number | null;
}

/** One settled request: its real usage, by a router-made id unique per admitted request. */
export interface Debit {
  id: string;
  tokens: number;
  nano: number;
}

/** What every call may carry. */
export interface Base {
  scope?: QuotaScope;
  settings?: QuotaSettings;
  now?: number;
}

export interface SyncRequest extends Base {
  scope: QuotaScope;
  settings: QuotaSettings;
  /** The lease this call is about (an id the isolate made up). */
  lease: string;
  /** First contact for this lease: create it. A later call for an id the object no longer holds answers lost. */
  create?: boolean;
  debits?: Debit[];
  /** What a waiting request needs beyond the lease's free part (0: a background top-up or renewal). */
  need?: Amount;
  /** A typical request's worst case: near the limit, leases shrink to a few of these ("tight"). */
  hint?: Amount;
  /** Give the lease back (after the debits): its unspent part returns to the pool. */
  close?: boolean;
  /** The waiting request's whole worst case (need is only what the lease lacks): tells hard from reserved refusals. */
  worst?: Amount;
  /** ms until this lease's requests in flight are expected to have ended (the isolate's estimate; 0: none in flight). */
  settle_in_ms?: number;
  /** Only the debits: neither grow nor renew the lease (one the isolate no longer admits on). */
  report_only?: boolean;
}

export interface SyncReply {
  /** The lease is gone (expired, revoked by a limit change): drop it and take a new one. */
  lost: boolean;
  /** Answer to a report_only call: the lease was neither grown nor renewed. */
  report_only?: boolean;
  /** Added to the lease by this call (null: unlimited in that unit). */
  granted: MaybeAmount;
  denied: null | Denial;
  /** Admit on the lease for this long from now (0 when closed or lost). */
  lease_ms: number;
  /** Headroom is small: leases are about one request big, return them when idle. */
  tight: boolean;
  /** Headroom to the hard limit left in the pool after this call. */
  free: MaybeAmount;
  /** Headroom to the hard limit above settled usage alone (leases not subtracted). */
  headroom?: MaybeAmount;
  view: BudgetView;
}

/**
 * Why a sync granted nothing. soft: the limit is reached under policy "block". hard: settled usage
 * leaves less than the request's worst case below the hard limit. reserved: it would fit, but
 * leases hold the headroom; retry_after_ms is when enough of it is expected back.
 */
export type Denial = { kind: 'soft' | 'hard'; limit: LimitName } | { kind: 'reserved'; limit: LimitName; retry_after_ms: number };

export interface LimitView {
  name: LimitName;
  /** Tokens, or nano-dollars for the *_usd limits. */
  limit: number;
  used: number;
}

/** What an isolate needs to decide locally: warning header, soft limit, period staleness. */
export interface BudgetView {
  version: number;
  /** ms from this answer until the next period boundary that resets a limit in force. */
  rollover_in_ms: number;
  policy: SoftLimitPolicy;
  overage_approved: boolean;
  warning_ratio: number;
  hard_limit_ratio: number;
  limits: LimitView[];
  state: BudgetState;
}

export interface AlertRecord {
  id: string;
  limit: string;
  threshold: number;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  created_at: string;
  last_error: string | null;
}

/** GET /admin/tenants/:tenant/budget. */
export interface BudgetDetails {
  object: 'budget';
  tenant: string | null;
  feature: string | null;
  monthly_tokens: number | null;
  monthly_usd: number | null;
  daily_tokens: number | null;
  daily_usd: number | null;
  soft_limit_policy: SoftLimitPolicy;
  /** The keys set through the admin API (they win over the TOML until cleared). */
  overrides: BudgetOverrides;
  /** This month's usage (UTC). */
  used_tokens: number;
  used_usd: number;
  /** Held by leases: requests in flight and isolates' unspent slices (not usage: `state` ignores it). */
  reserved_tokens: number;
  reserved_usd: number;
  /** When everything reserved is expected back (settled or returned); null when nothing is. */
  reserved_until: string | null;
  /** Made through the admin API for a tenant the config gives no budget (PUT on it; DELETE removes it). */
  created_by_admin: boolean;
  period_start: string;
  daily: { used_tokens: number; used_usd: number; period_start: string };
  state: BudgetState;
  overage_approved: boolean;
  hard_limit_ratio: number;
  warning_ratio: number;
  /** Share of each limit in force used (1 = 100%). */
  usage: Partial<Record<LimitName, number>>;
  alerts: { thresholds: number[]; fired: string[]; recent: AlertRecord[] };
  leases: number;
  updated_at: string | null;
}
