// Budget refusals that tell the truth (issue 11), budgets an admin creates at run time, and
// per-feature budgets nested in the tenant's (issue 12): against real TenantQuota objects.

import { beforeEach, describe, expect, it } from 'vitest';
import { budgetView, resetBudgetView } from '../../worker/budget/lease';
import { admin, budgetStack, sleep, U, W } from './budget-support';
import { FAST } from './sims';
import { createKey, chat, errorOf } from './support';

beforeEach(() => resetBudgetView());

/** Waits (with a deadline) until this isolate has nothing in flight or unreported for the budget. */
async function quiet(key: string) {
  for (let i = 0; i < 200; i++) {
    const v = budgetView(key);
    if (!v || (v.unacked.tokens === 0 && v.pending === 0 && (v.lease?.inflight ?? 0) === 0)) return;
    await sleep(10);
  }
  throw new Error(`budget ${key} did not settle`);
}

describe('refusals: reservations in flight versus settled usage', () => {
  it('32 concurrent requests (max_tokens 100) on 4,000 tokens: refused ones get 429 budget_reserved with Retry-After, state stays from settled usage', async () => {
    // 10 ms per output token: every request is still running when the last one is admitted.
    const { t, ask, budget } = await budgetStack({ budget: { monthly_tokens: 4_000 }, sim: { latency: { ...FAST, itl_ms: 10 } } });
    const results = await Promise.all(
      Array.from({ length: 32 }, async () => {
        const res = await ask({ max_tokens: 100 });
        return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as any };
      }),
    );
    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status !== 200);
    // Worst case 182 each (64 + 8 + 10 bytes + 100): 26 fit under the hard limit (4,800) at once.
    expect(ok.length).toBe(Math.floor(4_800 / (W + 80)));
    expect(refused.length).toBe(32 - ok.length);
    for (const r of refused) {
      expect(r.status).toBe(429);
      expect(r.body.error).toMatchObject({ code: 'budget_reserved', type: 'rate_limit_error', param: null });
      expect(r.body.error.message).toContain('in flight');
      expect(r.retryAfter).toMatch(/^[1-9][0-9]*$/);
      expect(Number(r.retryAfter)).toBeLessThanOrEqual(5);
    }
    await quiet(t);
    const used = ok.reduce((n, r) => n + r.body.usage.total_tokens, 0);
    const b = await budget();
    expect(b).toMatchObject({ used_tokens: used, state: used >= 0.8 * 4_000 ? 'warning' : 'ok' });
    expect(b.reserved_tokens).toEqual(expect.any(Number));
    // It was the truth: once they settled, the same request goes through.
    const again = await ask({ max_tokens: 100 });
    expect(again.status).toBe(200);
  });
});

describe('PUT on a tenant without a budget in the config', () => {
  it('creates one at run time, kept by the tenant\'s object and enforced', async () => {
    const { t, e, ask, budget } = await budgetStack({ budget: null });
    expect(await budget()).toMatchObject({ enabled: false });
    expect((await ask()).status).toBe(200);
    const put = await admin(`/admin/tenants/${t}/budget`, { method: 'PUT', env: e, body: JSON.stringify({ monthly_tokens: 100 }) });
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({ enabled: true, tenant: t, monthly_tokens: 100 });
    // 0 used (the request before had no budget): 102 of worst case fits under the hard limit (120).
    expect((await ask()).status).toBe(200);
    const refused = await ask();
    expect(refused.status).toBe(429);
    expect(await errorOf(refused)).toMatchObject({ code: 'insufficient_quota' });
    expect(await budget()).toMatchObject({ enabled: true, monthly_tokens: 100, used_tokens: U });
  });
});

describe('per-feature budgets nest inside the tenant\'s', () => {
  it('30 requests under 30 feature names against a 300-token budget spend at most the limit', async () => {
    const { t, ask, budget } = await budgetStack({ budget: { monthly_tokens: 300, per_feature: true } });
    let ok = 0;
    for (let i = 0; i < 30; i++) if ((await ask({}, { 'x-router-feature': `f${i}` })).status === 200) ok++;
    await quiet(t);
    const b = await budget();
    expect(b.used_tokens).toBe(ok * U);
    expect(b.used_tokens).toBeLessThanOrEqual(300);
  });
});
