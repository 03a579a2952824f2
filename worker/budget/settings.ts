// Which tenants have a budget, and the settings their Durable Object gets (TOML: [budgets] with the
// tenant's own `budget` table on top). Resolved once per config object; a tenant without a budget
// resolves to null, the whole cost of budgets on its hot path.

import type { QuotaScope, QuotaSettings, TenantQuota } from '../../durable-objects/tenant-quota';
import type { CompiledConfig } from '../config/compiled';
import { errors } from '../http/errors';
import { runbookUrl } from '../alerts/runbooks';

/** After a request's deadline, its report may still take this long to reach the tenant's object. */
const REPORT_GRACE_MS = 60_000;
const FEATURE_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
export const FEATURE_HEADER = 'x-router-feature';
export const DEFAULT_FEATURE = 'default';

export interface TenantBudgetConfig {
  tenant: string;
  settings: QuotaSettings;
  perFeature: boolean;
  /** [budgets] knobs the isolate side uses. */
  reportIntervalMs: number;
  reportMaxBatch: number;
  refreshMs: number;
  defaultMaxTokens: number;
  nonTextPartTokens: number;
}

const cache = new WeakMap<CompiledConfig, Map<string, TenantBudgetConfig | null>>();

/** The tenant's budget settings, or null when it has none (or budgets are switched off). */
export function tenantBudget(config: CompiledConfig, tenantId: string): TenantBudgetConfig | null {
  let byTenant = cache.get(config);
  if (!byTenant) cache.set(config, (byTenant = new Map()));
  let b = byTenant.get(tenantId);
  if (b === undefined) {
    b = resolve(config, tenantId);
    byTenant.set(tenantId, b);
  }
  return b;
}

function resolve(config: CompiledConfig, tenantId: string): TenantBudgetConfig | null {
  const d = config.raw.budgets;
  const t = config.raw.tenants[tenantId]?.budget;
  if (!d.enabled || !t) return null;
  return {
    tenant: tenantId,
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

/** The budget a request counts against: the tenant's, or the tenant's for one feature (x-router-feature). */
export function budgetScope(b: TenantBudgetConfig, featureHeader: string | undefined | null): QuotaScope & { key: string } {
  if (!b.perFeature) return { key: b.tenant, tenant: b.tenant, feature: null };
  const feature = featureHeader ?? DEFAULT_FEATURE;
  if (!FEATURE_RE.test(feature)) {
    throw errors.badRequest(`${FEATURE_HEADER} must be 1-64 letters, digits, ".", "_", ":" or "-", starting with a letter or digit.`, FEATURE_HEADER, 'invalid_header');
  }
  return { key: `${b.tenant}/${feature}`, tenant: b.tenant, feature };
}

/** The Durable Object of a budget scope. */
export function quotaStub(env: Record<string, unknown>, key: string) {
  const ns = env.QUOTAS as DurableObjectNamespace<TenantQuota> | undefined;
  if (!ns) throw errors.unavailable('Budgets are configured but the QUOTAS binding is missing.', 'budget_unavailable');
  return ns.get(ns.idFromName(key));
}
