import { Hono, type Context } from 'hono';
import type { BudgetDetails } from '../protocol/quota';
import { noteBudgetChanged } from '../budget/lease';
import { noteAdminBudget } from '../budget/runtime';
import { adminBudgetSettings, adminScope, FEATURE_HEADER, quotaStub, tenantBudget, type ScopeKey, type TenantBudgetConfig } from '../budget/settings';
import { budgetPatchSchema } from '../config/schema';
import type { AppEnv } from '../env';
import { readJsonBody } from '../http/body';
import { errors } from '../http/errors';
import { objectCall } from '../http/object-call';

/**
 * /admin/tenants/:tenant/budget: a tenant's budget (limits, usage, state), admin changes to its
 * limits and policy, and overage approval. `?feature=<name>` picks one feature's budget when the
 * tenant's budgets are per feature (without it: the tenant's own, which every feature counts
 * against too). Changes apply at once on this isolate and on the others at their next sync with
 * the tenant's object (within report_interval_ms while busy, refresh_ms otherwise).
 *
 * A tenant the config gives no budget table gets one from PUT: kept by the tenant's object
 * (`source: "admin"`, [budgets] defaults under the limits the admin sets), until DELETE removes it.
 */
export const adminBudgets = new Hono<AppEnv>();

const BODY_LIMIT = 16 * 1024;
const rpc = objectCall('budget service', 'budget_unavailable');

interface Target {
  tenant: string;
  /** The tenant's budget settings (from the config, or for one an admin may create), or null when budgets are off. */
  b: TenantBudgetConfig | null;
}

function targetOf(c: Context<AppEnv>): Target {
  const config = c.get('config');
  const tenant = c.req.param('tenant') ?? '';
  if (!Object.hasOwn(config.raw.tenants, tenant)) throw errors.notFound(`No tenant "${tenant}" in the router config.`, 'tenant_not_found', 'tenant');
  return { tenant, b: tenantBudget(config, tenant) ?? adminBudgetSettings(config, tenant) };
}

function scopeOf(c: Context<AppEnv>, b: TenantBudgetConfig): { scope: ScopeKey; stub: ReturnType<typeof quotaStub> } {
  const scope = adminScope(b, c.req.query('feature') ?? c.req.header(FEATURE_HEADER));
  return { scope, stub: quotaStub(c.env, scope.key) };
}

/** Whether an admin created the budget of a tenant without one in the config (asked of its object, not this isolate's copy). */
async function adminCreated(c: Context<AppEnv>, b: TenantBudgetConfig): Promise<boolean> {
  const stub = quotaStub(c.env, b.tenant);
  const { created } = await rpc(() => stub.runtimeBudget());
  noteAdminBudget(b.tenant, created);
  return created;
}

/** The budget to change, or 400: budgets off, or a tenant without a budget in the config and none created (unless `create`). */
async function existing(c: Context<AppEnv>, opts: { create?: boolean } = {}) {
  const { tenant, b } = targetOf(c);
  if (!b) throw errors.badRequest('No budget to change: budgets are switched off ([budgets] enabled = false).', 'tenant', 'budget_not_enabled');
  const created = b.source === 'admin' && (await adminCreated(c, b));
  if (b.source === 'admin' && !created && !opts.create) {
    throw errors.badRequest(`No budget to change: tenant "${tenant}" has none (PUT /admin/tenants/${tenant}/budget creates one).`, 'tenant', 'budget_not_enabled');
  }
  return { b, created, ...scopeOf(c, b) };
}

const shape = (d: BudgetDetails, tenant: string, source: TenantBudgetConfig['source']) => ({ ...d, tenant, enabled: true, source });

const disabled = (tenant: string) => ({
  object: 'budget',
  tenant,
  enabled: false,
  source: null,
  monthly_tokens: null,
  monthly_usd: null,
  daily_tokens: null,
  daily_usd: null,
  state: 'ok',
});

adminBudgets.get('/:tenant/budget', async (c) => {
  const { tenant, b } = targetOf(c);
  if (!b || (b.source === 'admin' && !(await adminCreated(c, b)))) return c.json(disabled(tenant));
  const { scope, stub } = scopeOf(c, b);
  return c.json(shape(await rpc(() => stub.details({ scope, settings: b.settings })), tenant, b.source));
});

/** Changes limits or policy; on a tenant the config gives no budget, creates one (kept by the tenant's object). */
adminBudgets.put('/:tenant/budget', async (c) => {
  targetOf(c); // 404 for an unknown tenant before anything else
  const patch = await readJsonBody(c.req.raw, budgetPatchSchema, BODY_LIMIT);
  const { b, created, scope, stub } = await existing(c, { create: true });
  const create = b.source === 'admin';
  if (create && !created && scope.feature !== null) {
    // A feature's budget nests in the tenant's: the tenant's own is created first.
    const tenantStub = quotaStub(c.env, b.tenant);
    await rpc(() => tenantStub.update({ scope: { tenant: b.tenant, feature: null }, settings: b.settings, patch: {}, create: true }));
  }
  const details = await rpc(() => stub.update({ scope, settings: b.settings, patch, create: create && scope.feature === null }));
  if (create) noteAdminBudget(b.tenant, true);
  noteBudgetChanged(scope.key, c.env, c.executionCtx);
  return c.json(shape(details, scope.tenant, b.source));
});

/** Forgets the admin changes: the config's limits and policy apply again (a budget an admin created is removed). */
adminBudgets.delete('/:tenant/budget', async (c) => {
  const { b, scope, stub } = await existing(c);
  const remove = b.source === 'admin' && scope.feature === null;
  const details = await rpc(() => stub.clearOverrides({ scope, settings: b.settings, remove }));
  if (remove) noteAdminBudget(b.tenant, false);
  noteBudgetChanged(scope.key, c.env, c.executionCtx);
  if (remove) return c.json(disabled(scope.tenant));
  return c.json(shape(details, scope.tenant, b.source));
});

/** Lifts the soft limit until the end of the month (the hard limit still holds). */
adminBudgets.post('/:tenant/budget/approve-overage', async (c) => {
  const { b, scope, stub } = await existing(c);
  const details = await rpc(() => stub.approveOverage({ scope, settings: b.settings }));
  noteBudgetChanged(scope.key, c.env, c.executionCtx);
  return c.json(shape(details, scope.tenant, b.source));
});
