import { Hono, type Context } from 'hono';
import type { BudgetDetails } from '../protocol/quota';
import { noteBudgetChanged } from '../budget/lease';
import { budgetScope, FEATURE_HEADER, quotaStub, tenantBudget, type TenantBudgetConfig } from '../budget/settings';
import { budgetPatchSchema } from '../config/schema';
import type { AppEnv } from '../env';
import { readJsonBody } from '../http/body';
import { errors } from '../http/errors';
import { objectCall } from '../http/object-call';

/**
 * /admin/tenants/:tenant/budget: a tenant's budget (limits, usage, state), admin changes to its
 * limits and policy, and overage approval. `?feature=<name>` picks one feature's budget when the
 * tenant's budgets are per feature. Changes apply at once on this isolate and on the others at
 * their next sync with the tenant's object (within report_interval_ms while busy, refresh_ms otherwise).
 */
export const adminBudgets = new Hono<AppEnv>();

const BODY_LIMIT = 16 * 1024;

function budgetOf(c: Context<AppEnv>): { b: TenantBudgetConfig | null; tenant: string } {
  const config = c.get('config');
  const tenant = c.req.param('tenant') ?? '';
  if (!config.raw.tenants[tenant]) throw errors.notFound(`No tenant "${tenant}" in the router config.`, 'tenant_not_found', 'tenant');
  return { b: tenantBudget(config, tenant), tenant };
}

function enabledBudget(c: Context<AppEnv>) {
  const { b, tenant } = budgetOf(c);
  if (!b) {
    const why = c.get('config').raw.budgets.enabled ? `tenant "${tenant}" has no budget: add [tenants.${tenant}.budget] to the config` : 'budgets are switched off ([budgets] enabled = false)';
    throw errors.badRequest(`No budget to change: ${why}.`, 'tenant', 'budget_not_enabled');
  }
  const scope = budgetScope(b, c.req.query('feature') ?? c.req.header(FEATURE_HEADER));
  return { b, scope, stub: quotaStub(c.env, scope.key) };
}

const shape = (d: BudgetDetails, tenant: string) => ({ ...d, tenant, enabled: true });

const rpc = objectCall('budget service', 'budget_unavailable');

adminBudgets.get('/:tenant/budget', async (c) => {
  const { b, tenant } = budgetOf(c);
  if (!b) {
    return c.json({
      object: 'budget',
      tenant,
      enabled: false,
      monthly_tokens: null,
      monthly_usd: null,
      daily_tokens: null,
      daily_usd: null,
      state: 'ok',
    });
  }
  const { scope, stub } = enabledBudget(c);
  return c.json(shape(await rpc(() => stub.details({ scope, settings: b.settings })), tenant));
});

adminBudgets.put('/:tenant/budget', async (c) => {
  const { b, scope, stub } = enabledBudget(c);
  const patch = await readJsonBody(c.req.raw, budgetPatchSchema, BODY_LIMIT);
  const details = await rpc(() => stub.update({ scope, settings: b.settings, patch }));
  noteBudgetChanged(scope.key, c.env, c.executionCtx);
  return c.json(shape(details, scope.tenant));
});

/** Forgets the admin changes: the config's limits and policy apply again. */
adminBudgets.delete('/:tenant/budget', async (c) => {
  const { b, scope, stub } = enabledBudget(c);
  const details = await rpc(() => stub.clearOverrides({ scope, settings: b.settings }));
  noteBudgetChanged(scope.key, c.env, c.executionCtx);
  return c.json(shape(details, scope.tenant));
});

/** Lifts the soft limit until the end of the month (the hard limit still holds). */
adminBudgets.post('/:tenant/budget/approve-overage', async (c) => {
  const { b, scope, stub } = enabledBudget(c);
  const details = await rpc(() => stub.approveOverage({ scope, settings: b.settings }));
  noteBudgetChanged(scope.key, c.env, c.executionCtx);
  return c.json(shape(details, scope.tenant));
});
