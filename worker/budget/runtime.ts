// Budgets an admin creates at run time (PUT /admin/tenants/:tenant/budget) for tenants the config
// gives none. The tenant's own TenantQuota object keeps the budget and the fact that it exists; an
// isolate learns of it with one call per tenant (its first request there waits for it), then keeps
// the answer and refreshes it in the background once it is older than refresh_ms. The admin route
// tells its own isolate at once. A tenant with a budget table in the config never comes here.

import type { TenantQuota } from '../env';

type WaitUntil = { waitUntil(p: Promise<unknown>): void };

interface Known {
  created: boolean;
  /** Local clock of the last lookup's end (−∞: the first is under way). */
  at: number;
  lookup: Promise<boolean> | null;
}

let known = new Map<string, Known>();

/**
 * Whether an admin created a budget for this tenant: from memory when known (refreshed in the
 * background past refresh_ms), else a promise of the first lookup. Without a QUOTAS binding there
 * are none. A lookup that fails keeps the last answer (none, the first time: the config gives the
 * tenant no budget, and the object cannot be asked) and is tried again after refresh_ms.
 */
export function adminBudgetExists(tenant: string, env: Record<string, unknown>, ctx: WaitUntil, refreshMs: number): boolean | Promise<boolean> {
  let k = known.get(tenant);
  if (!k) {
    known.set(tenant, (k = { created: false, at: Number.NEGATIVE_INFINITY, lookup: null }));
    return (k.lookup = lookup(tenant, k, env));
  }
  if (k.at === Number.NEGATIVE_INFINITY && k.lookup) return k.lookup; // the first lookup is under way
  if (Date.now() - k.at >= refreshMs && !k.lookup) {
    k.lookup = lookup(tenant, k, env);
    try {
      ctx.waitUntil(k.lookup);
    } catch {
      // No waitUntil here: the lookup still runs while the request does.
    }
  }
  return k.created;
}

async function lookup(tenant: string, k: Known, env: Record<string, unknown>): Promise<boolean> {
  const ns = env.QUOTAS as DurableObjectNamespace<TenantQuota> | undefined;
  try {
    k.created = ns ? (await ns.get(ns.idFromName(tenant)).runtimeBudget()).created === true : false;
  } catch (err) {
    console.warn(`budget ${tenant}: could not learn whether an admin created a budget: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    k.at = Date.now();
    k.lookup = null;
  }
  return k.created;
}

/** After an admin created or removed a tenant's budget on this isolate: known at once here. */
export function noteAdminBudget(tenant: string, created: boolean): void {
  known.set(tenant, { created, at: Date.now(), lookup: null });
}

/** For tests: forget what this isolate learnt. */
export function resetAdminBudgets(): void {
  known = new Map();
}
