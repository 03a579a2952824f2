// Which limits apply to a tenant's requests: [limits] with the tenant's own tables on top
// (resolved once per config object), and a key's admin override on top of that (per request,
// from the key record the auth step already holds: no I/O).

import type { CompiledConfig } from '../config/compiled';
import type { KeyLimits, RateLimitConfig } from '../config/limits';
import type { Dimension } from './store';

export interface LimitSpec {
  requests: number | null;
  tokens: number | null;
  windowS: number;
}

export type ResolvedLimits = Partial<Record<Dimension, LimitSpec>>;

const TENANT_DIMENSIONS = ['key', 'user', 'feature', 'tenant'] as const;
const DEFAULT_WINDOW_S = 60;

const cache = new WeakMap<CompiledConfig, Map<string, ResolvedLimits>>();

/** The tenant's limits from the config (empty when none applies, or rate limits are off). */
export function tenantLimits(config: CompiledConfig, tenantId: string): ResolvedLimits {
  let byTenant = cache.get(config);
  if (!byTenant) cache.set(config, (byTenant = new Map()));
  let limits = byTenant.get(tenantId);
  if (!limits) {
    limits = resolve(config, tenantId);
    byTenant.set(tenantId, limits);
  }
  return limits;
}

function resolve(config: CompiledConfig, tenantId: string): ResolvedLimits {
  const d = config.raw.limits;
  if (!d.enabled) return {};
  const own = config.raw.tenants[tenantId]?.limits;
  const out: ResolvedLimits = {};
  for (const dim of TENANT_DIMENSIONS) {
    const table = own?.[dim] ?? d[dim];
    if (table && (table.requests !== undefined || table.tokens !== undefined)) out[dim] = spec(table);
  }
  if (d.global) out.global = spec(d.global);
  return out;
}

/** `limits.user.required` for this tenant (its own `user` table replaces [limits].user, `required` included). */
export function userRequired(config: CompiledConfig, tenantId: string): boolean {
  const d = config.raw.limits;
  return d.enabled && (config.raw.tenants[tenantId]?.limits?.user ?? d.user)?.required === true;
}

const spec = (t: Pick<RateLimitConfig, 'requests' | 'tokens' | 'window_s'>): LimitSpec => ({ requests: t.requests ?? null, tokens: t.tokens ?? null, windowS: t.window_s });

/**
 * The limits of a request made with a key: the tenant's, with the key's override merged over
 * its `key` limit (null units lifted, others replaced). Empty when nothing limits it.
 */
export function limitsFor(config: CompiledConfig, tenantId: string, override: KeyLimits | null | undefined): ResolvedLimits {
  const base = tenantLimits(config, tenantId);
  if (!override || !config.raw.limits.enabled) return base;
  const key = mergeKeyLimit(base.key, override);
  const out: ResolvedLimits = { ...base };
  if (key) out.key = key;
  else delete out.key;
  return out;
}

/** A key's effective limit: its override merged over the config's `key` limit; undefined when no unit is limited. */
export function mergeKeyLimit(base: LimitSpec | undefined, override: KeyLimits | null | undefined): LimitSpec | undefined {
  if (!override) return base;
  const merged: LimitSpec = {
    requests: override.requests !== undefined ? override.requests : (base?.requests ?? null),
    tokens: override.tokens !== undefined ? override.tokens : (base?.tokens ?? null),
    windowS: override.window_s ?? base?.windowS ?? DEFAULT_WINDOW_S,
  };
  return merged.requests === null && merged.tokens === null ? undefined : merged;
}

export const hasLimits = (l: ResolvedLimits): boolean => Object.keys(l).length > 0;
