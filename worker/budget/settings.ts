// Which tenants have a budget, and the settings their Durable Object gets (TOML: [budgets] with the
// tenant's own `budget` table on top). Resolved once per config object; a tenant without a budget
// table resolves to null here (an admin may still create one at run time: worker/budget/runtime.ts).
// Also which feature a request counts under (x-router-feature), validated here for every use.

import type { QuotaScope, QuotaSettings } from '../protocol/quota';
import type { TenantQuota } from '../env';
import type { CompiledConfig } from '../config/compiled';
import type { TenantBudget } from '../config/schema';
import { errors } from '../http/errors';
import { runbookUrl } from '../alerts/runbooks';

/** After a request's deadline, its report may still take this long to reach the tenant's object. */
const REPORT_GRACE_MS = 60_000;
const FEATURE_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
export const FEATURE_HEADER = 'x-router-feature';
export const DEFAULT_FEATURE = 'default';

export interface TenantBudgetConfig {
  tenant: string;
  /** config: the tenant's [tenants.<id>.budget] table; admin: none in the config, made through the admin API. */
  source: 'config' | 'admin';
  settings: QuotaSettings;
  perFeature: boolean;
  /** [budgets] knobs the isolate side uses. */
  reportIntervalMs: number;
  reportMaxBatch: number;
  refreshMs: number;
  defaultMaxTokens: number;
  nonTextPartTokens: number;
}

type Source = TenantBudgetConfig['source'];
const cache = new WeakMap<CompiledConfig, Record<Source, Map<string, TenantBudgetConfig | null>>>();

function cached(config: CompiledConfig, source: Source, tenantId: string, make: () => TenantBudgetConfig | null): TenantBudgetConfig | null {
  let bySource = cache.get(config);
  if (!bySource) cache.set(config, (bySource = { config: new Map(), admin: new Map() }));
  const byTenant = bySource[source];
  let b = byTenant.get(tenantId);
  if (b === undefined) {
    b = make();
    byTenant.set(tenantId, b);
  }
  return b;
}

/** The tenant's budget settings from its config table, or null when it has none (or budgets are switched off). */
export function tenantBudget(config: CompiledConfig, tenantId: string): TenantBudgetConfig | null {
  return cached(config, 'config', tenantId, () => {
    const t = config.raw.tenants[tenantId]?.budget;
    return config.raw.budgets.enabled && t ? resolve(config, tenantId, t, 'config') : null;
  });
}

/**
 * The settings of a budget an admin creates at run time for a tenant of the config without a
 * budget table: [budgets] defaults, no limits until the admin sets some. null when budgets are
 * off, the tenant is unknown, or the config gives it a budget (that one applies).
 */
export function adminBudgetSettings(config: CompiledConfig, tenantId: string): TenantBudgetConfig | null {
  return cached(config, 'admin', tenantId, () => {
    const tenant = config.raw.tenants[tenantId];
    return config.raw.budgets.enabled && tenant && !tenant.budget ? resolve(config, tenantId, {}, 'admin') : null;
  });
}

function resolve(config: CompiledConfig, tenantId: string, t: TenantBudget, source: Source): TenantBudgetConfig {
  const d = config.raw.budgets;
  return {
    tenant: tenantId,
    source,
    perFeature: t.per_feature ?? d.per_feature,
    reportIntervalMs: d.report_interval_ms,
    reportMaxBatch: d.report_max_batch,
    refreshMs: d.refresh_ms,
    defaultMaxTokens: d.default_max_tokens,
    nonTextPartTokens: d.non_text_part_tokens,
    settings: {
      limits: {
        monthly_tokens: t.monthly_tokens ?? null,
        monthly_usd: t.monthly_usd ?? null,
        daily_tokens: t.daily_tokens ?? null,
        daily_usd: t.daily_usd ?? null,
      },
      soft_limit_policy: t.soft_limit_policy ?? d.soft_limit_policy,
      hard_limit_ratio: d.hard_limit_ratio,
      warning_ratio: d.warning_ratio,
      alert_thresholds: t.alert_thresholds ?? d.alert_thresholds,
      alert_webhook_url: t.alert_webhook_url ?? d.alert_webhook_url ?? null,
      alert_webhook_secret: t.alert_webhook_url ? (t.alert_webhook_secret ?? null) : (t.alert_webhook_secret ?? d.alert_webhook_secret ?? null),
      alert_retry_base_ms: d.alert_retry_base_ms,
      alert_retry_max_ms: d.alert_retry_max_ms,
      alert_max_attempts: d.alert_max_attempts,
      alert_runbook_url: runbookUrl(config.raw.alerts.runbook_base_url, 'budget-exhausted'),
      lease_fraction: d.lease_fraction,
      lease_ttl_ms: d.lease_ttl_ms,
      lease_hold_ms: config.raw.timeouts.total_ms + REPORT_GRACE_MS,
    },
  };
}

export type ScopeKey = QuotaScope & { key: string };

/**
 * The most specific budget a request counts against: the tenant's, or with per_feature the
 * tenant's for one feature (x-router-feature; 400 when malformed). With per_feature the request
 * counts against the tenant's own budget too: budgetScopes().
 */
export function budgetScope(b: TenantBudgetConfig, featureHeader: string | undefined | null): ScopeKey {
  const scopes = budgetScopes(b, featureHeader);
  return scopes[scopes.length - 1]!;
}

/**
 * Every budget a request counts against, the tenant's first: with per_feature also its feature's,
 * nested inside (charged to both, so no feature name a client makes up gets past the tenant's limits).
 */
export function budgetScopes(b: TenantBudgetConfig, featureHeader: string | undefined | null): ScopeKey[] {
  const tenant: ScopeKey = { key: b.tenant, tenant: b.tenant, feature: null };
  if (!b.perFeature) return [tenant];
  const feature = checkedFeature(featureHeader ?? DEFAULT_FEATURE);
  return [tenant, { key: `${b.tenant}/${feature}`, tenant: b.tenant, feature }];
}

/** The scope an admin call names: `?feature=` (or x-router-feature) for one feature's budget, else the tenant's. */
export function adminScope(b: TenantBudgetConfig, feature: string | undefined | null): ScopeKey {
  if (!b.perFeature || feature === undefined || feature === null) return { key: b.tenant, tenant: b.tenant, feature: null };
  const f = checkedFeature(feature);
  return { key: `${b.tenant}/${f}`, tenant: b.tenant, feature: f };
}

/**
 * 400 unless x-router-feature is acceptable for the tenant: when the tenant lists its `features`,
 * one of them (a request without the header counts as "default", always allowed). The value is
 * hostile input: checked for length and characters before it is compared, logged or echoed.
 */
export function checkFeatureAllowed(config: CompiledConfig, tenantId: string, featureHeader: string | undefined | null): void {
  const allowed = config.raw.tenants[tenantId]?.features;
  if (!allowed || featureHeader === undefined || featureHeader === null) return;
  const feature = checkedFeature(featureHeader);
  if (feature !== DEFAULT_FEATURE && !allowed.includes(feature)) {
    throw errors.badRequest(`${FEATURE_HEADER} "${feature}" is not one of this tenant's features (${allowed.join(', ') || 'none'}); leave it out to count as "${DEFAULT_FEATURE}".`, FEATURE_HEADER, 'unknown_feature');
  }
}

function checkedFeature(value: string): string {
  if (value.length > 64 || !FEATURE_RE.test(value)) {
    throw errors.badRequest(`${FEATURE_HEADER} must be 1-64 letters, digits, ".", "_", ":" or "-", starting with a letter or digit.`, FEATURE_HEADER, 'invalid_header');
  }
  return value;
}

/** The Durable Object of a budget scope. */
export function quotaStub(env: Record<string, unknown>, key: string) {
  const ns = env.QUOTAS as DurableObjectNamespace<TenantQuota> | undefined;
  if (!ns) throw errors.unavailable('Budgets are configured but the QUOTAS binding is missing.', 'budget_unavailable');
  return ns.get(ns.idFromName(key));
}
