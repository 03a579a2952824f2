import { RouterError } from '../http/errors';
import type { InferenceRequest, Stage } from '../pipeline/types';
import { resolveRoute } from '../routing/resolve-model';
import { BUDGET_WARNING_HEADER, DOWNGRADED_HEADER, SOFT_LIMIT_CODE } from './errors';
import { budgetFor, type BudgetHandle } from './lease';
import { FEATURE_HEADER } from './settings';

/** What prefetch started for a request: its budget handle and the soft-limit check under way. */
const early = new WeakMap<InferenceRequest, { budget: BudgetHandle | null; downgrade: Promise<string | null> | null }>();

/**
 * Budget soft limit: nothing for a tenant without a budget; else decided from the isolate's lease
 * (a hop only on an isolate's first request or a new period). Before the caches, as a downgrade
 * changes the route they key on. A soft-limit block is deferred until every cache has missed.
 */
export const softLimitStage: Stage = {
  name: 'soft-limit',
  // The check's one sync on a cold isolate (or a new period) starts with the request, beside the rate limiter's lease.
  prefetch(r) {
    const budget = budgetFor(r.config, r.tenantId, r.raw.headers.get(FEATURE_HEADER) ?? undefined, r.env, r.ctx);
    const downgrade = budget ? budget.softLimit(r.tenantId, r.route.stages[0]?.tier ?? null, r.kind) : null;
    downgrade?.catch(() => {}); // awaited (and answered) in run
    early.set(r, { budget, downgrade });
  },
  async run(r) {
    const pre = early.get(r);
    const budget = pre ? pre.budget : budgetFor(r.config, r.tenantId, r.raw.headers.get(FEATURE_HEADER) ?? undefined, r.env, r.ctx);
    if (!budget) return;
    r.budget = budget;
    let downgradeTo: string | null = null;
    try {
      downgradeTo = await (pre?.downgrade ?? budget.softLimit(r.tenantId, r.route.stages[0]?.tier ?? null, r.kind));
    } catch (e) {
      if (!(e instanceof RouterError) || e.code !== SOFT_LIMIT_CODE) throw e;
      r.deferred.push(e);
    }
    if (downgradeTo) {
      r.downgradedTo = downgradeTo;
      r.route = resolveRoute(r.config, r.tenantId, { ...r.body, model: downgradeTo }, r.spec.modelType, r.user);
    }
    // Warning and downgrade headers on answers that went the whole way (a cache hit was not billed).
    r.join({
      name: 'budget-headers',
      finish: ({ response }) => {
        if (!r.result) return;
        const warning = budget.warning();
        if (warning) response.headers.set(BUDGET_WARNING_HEADER, warning);
        if (r.downgradedTo) response.headers.set(DOWNGRADED_HEADER, 'true');
      },
    });
  },
};

/**
 * The worst case is reserved before anything goes upstream (and `max_tokens` may be lowered to
 * what the budget can cover: this stage rewrites the body the executor sends); the reservation is
 * settled with the real usage, or released.
 */
export const admitStage: Stage = {
  name: 'admit',
  async run(r) {
    if (!r.budget || r.candidates.length === 0) return;
    const reservation = await r.budget.admit(r.kind, r.body, r.candidates.map((x) => x.model));
    r.join({ name: 'budget', settle: (s) => reservation.settle(s), release: () => reservation.release() });
  },
};
