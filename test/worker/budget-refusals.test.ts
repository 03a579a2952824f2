// Budget refusals that tell the truth (issue 11), budgets an admin creates at run time, and
// per-feature budgets nested in the tenant's (issue 12): against real TenantQuota objects.

import { evictDurableObject, runInDurableObject } from 'cloudflare:test';
import { beforeEach, describe, expect, it } from 'vitest';
import type { QuotaSettings, SyncRequest } from '../../worker/protocol/quota';
import type { TenantQuota } from '../../durable-objects/tenant-quota';
import { budgetView, resetBudgetView } from '../../worker/budget/lease';
import { tenantBudget } from '../../worker/budget/settings';
import { compileConfig } from '../../worker/config/compiled';
import { admin, budgetStack, HI, ns, recording, sleep, U, uid, W } from './budget-support';
import { FAST } from './sims';
import { chat, createKey, errorOf } from './support';

const T0 = Date.UTC(2030, 0, 15, 12);
const tokens = (n: number) => ({ tokens: n, nano: 0 });

function settingsOf(budget: Record<string, unknown>): QuotaSettings {
  const r = compileConfig({
    regions: [{ id: 'here', latitude: 0, longitude: 0 }],
    models: [{ id: 'm' }],
    backends: [{ id: 'x', kind: 'vllm', region: 'here', url: 'http://127.0.0.1:9', models: ['m'] }],
    tenants: { t: { budget } },
  });
  if (!r.ok) throw new Error(r.errors.join('; '));
  return tenantBudget(r.config, 't')!.settings;
}

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

describe('TenantQuota: reserved versus hard refusals', () => {
  const fresh = () => {
    const tenant = `rq-${uid()}`;
    return { scope: { tenant, feature: null }, stub: ns.get(ns.idFromName(tenant)) };
  };

  it('Retry-After comes from when the holders expect their requests to end, a tight lease at once, another at its use-by', async () => {
    const { scope, stub } = fresh();
    const settings = settingsOf({ monthly_tokens: 10_000 });
    const sync = (r: Partial<SyncRequest>) => stub.sync({ scope, settings, lease: 'x', create: true, now: T0, ...r });
    // n: far from the limit, not tight, its requests end in 0.5 s, but its rest stays until its use-by (10 s).
    expect(await sync({ lease: 'n', need: tokens(100), hint: tokens(100), settle_in_ms: 500 })).toMatchObject({ granted: { tokens: 1_000 }, tight: false });
    // a and b: tight, given back when their requests end: in 3 s and in 8 s.
    expect(await sync({ lease: 'a', need: tokens(4_000), hint: tokens(4_000), settle_in_ms: 3_000 })).toMatchObject({ granted: { tokens: 4_000 }, tight: true });
    expect(await sync({ lease: 'b', need: tokens(5_000), hint: tokens(5_000), settle_in_ms: 8_000 })).toMatchObject({ granted: { tokens: 5_000 }, tight: true });
    // 10 000 held, 0 used: 2 000 free below the hard limit (12 000).
    const ask = async (n: number, extra: Partial<SyncRequest> = {}) => (await sync({ lease: 'c', need: tokens(n), worst: tokens(n), ...extra })).denied;
    expect(await ask(3_000)).toEqual({ kind: 'reserved', limit: 'monthly_tokens', retry_after_ms: 3_000 }); // 1 000 short: a's 4 000
    expect(await ask(6_000)).toEqual({ kind: 'reserved', limit: 'monthly_tokens', retry_after_ms: 3_000 });
    expect(await ask(6_001)).toEqual({ kind: 'reserved', limit: 'monthly_tokens', retry_after_ms: 8_000 }); // a's and b's
    expect(await ask(11_001)).toEqual({ kind: 'reserved', limit: 'monthly_tokens', retry_after_ms: 10_000 }); // n's too
    expect(await ask(12_001)).toEqual({ kind: 'hard', limit: 'monthly_tokens' }); // more than the hard limit: no wait helps
    // The asking lease's own requests give back to it as they end (its free part was counted by its isolate).
    expect((await sync({ lease: 'a', create: false, need: tokens(2_500), worst: tokens(3_000), settle_in_ms: 3_000 })).denied).toMatchObject({ kind: 'reserved', retry_after_ms: 3_000 });
    expect((await sync({ lease: 'a', create: false, need: tokens(2_500), worst: tokens(3_000), settle_in_ms: 0 })).denied).toMatchObject({ kind: 'reserved', retry_after_ms: 0 });
    // The admin view: reservations apart from usage, which alone makes the state.
    const d = await stub.details({ now: T0 });
    expect(d).toMatchObject({ used_tokens: 0, reserved_tokens: 10_000, state: 'ok', reserved_until: new Date(T0 + 10_000).toISOString() });
    // The holders' estimates live in memory: after a restart, a lease is expected back at its use-by,
    // and past that (its holder silent) at its expiry.
    await evictDurableObject(stub);
    expect(await ask(3_000)).toEqual({ kind: 'reserved', limit: 'monthly_tokens', retry_after_ms: 10_000 });
    expect(await ask(3_000, { now: T0 + 10_001 })).toEqual({ kind: 'reserved', limit: 'monthly_tokens', retry_after_ms: 360_000 - 1 });
  });

  it('a hard refusal needs settled usage: reservations alone never make the state hard_limited, nor does one request too big', async () => {
    const { scope, stub } = fresh();
    const settings = settingsOf({ monthly_tokens: 1_000, soft_limit_policy: 'downgrade' });
    await stub.sync({ scope, settings, lease: 'a', create: true, need: tokens(1_100), now: T0 });
    const r = await stub.sync({ scope, settings, lease: 'b', create: true, need: tokens(200), worst: tokens(200), now: T0 });
    expect(r).toMatchObject({ denied: { kind: 'reserved' }, free: { tokens: 100 }, headroom: { tokens: 1_200 } });
    expect(r.view.state).toBe('ok');
    // 1 100 settled: 100 left, less than 200.
    await stub.sync({ scope, settings, lease: 'a', debits: [{ id: 'd1', tokens: 1_100, nano: 0 }], close: true, now: T0 });
    const h = await stub.sync({ scope, settings, lease: 'b', need: tokens(200), worst: tokens(200), now: T0 });
    expect(h).toMatchObject({ denied: { kind: 'hard', limit: 'monthly_tokens' }, headroom: { tokens: 100 } });
    expect(h.view.state).toBe('hard_limited');
    // Below the limit, a request too big for what is left is refused as hard, but the budget is not spent.
    const { scope: s2, stub: other } = fresh();
    await other.sync({ scope: s2, settings, lease: 'a', create: true, debits: [{ id: 'd1', tokens: 500, nano: 0 }], now: T0 });
    const big = await other.sync({ scope: s2, settings, lease: 'a', need: tokens(800), worst: tokens(800), now: T0 });
    expect(big).toMatchObject({ denied: { kind: 'hard' }, headroom: { tokens: 700 } });
    expect(big.view.state).toBe('ok');
  });

  it('loads a core row stored before these fields existed', async () => {
    const { scope, stub } = fresh();
    const settings = settingsOf({ monthly_tokens: 1_000 });
    await stub.sync({ scope, settings, lease: 'a', create: true, debits: [{ id: 'old', tokens: 250, nano: 0 }], now: T0 });
    // The row as the previous code wrote it: no adminCreated.
    await runInDurableObject(stub, (_: TenantQuota, state) => {
      const row = state.storage.sql.exec<{ v: string }>("SELECT v FROM state WHERE k = 'core'").one();
      const core = JSON.parse(row.v) as Record<string, unknown>;
      delete core.adminCreated;
      state.storage.sql.exec("UPDATE state SET v = ? WHERE k = 'core'", JSON.stringify(core));
    });
    await evictDurableObject(stub);
    expect(await stub.details({ now: T0 })).toMatchObject({ used_tokens: 250, monthly_tokens: 1_000, created_by_admin: false, tenant: scope.tenant });
    expect(await stub.runtimeBudget()).toEqual({ created: false });
  });
});

describe('refusals on the request path', () => {
  it('32 concurrent requests (max_tokens 100) on 4,000 tokens: refused ones get 429 budget_reserved with Retry-After, state stays from settled usage', async () => {
    // 25 ms per output token (2.5 s a request): every request is still running when the last one is admitted.
    const { t, e, ask, budget } = await budgetStack({ budget: { monthly_tokens: 4_000 }, sim: { latency: { ...FAST, itl_ms: 25 } } });
    const rec = recording(e);
    const results = await Promise.all(
      Array.from({ length: 32 }, async () => {
        const res = await ask({ max_tokens: 100 }, {}, rec.env);
        return { status: res.status, retryAfter: res.headers.get('retry-after'), contentType: res.headers.get('content-type'), body: (await res.json()) as any };
      }),
    );
    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status !== 200);
    // Worst case 182 each (64 + 8 + 10 bytes + 100): 26 fit under the hard limit (4,800) at once.
    expect(ok.length).toBe(Math.floor(4_800 / (W + 80)));
    expect(refused.length).toBe(32 - ok.length);
    for (const r of refused) {
      expect(r.status).toBe(429);
      expect(r.retryAfter).toMatch(/^[1-9][0-9]*$/);
      // Nothing has ended yet: each is expected to last 1 s from its start.
      expect(Number(r.retryAfter)).toBeLessThanOrEqual(2);
      expect(r.contentType).toContain('application/json');
      expect(r.body).toEqual({
        error: {
          message: `The budget of "${t}" is held by requests in flight (monthly_tokens): it has room for this request once they settle. Retry in ${r.retryAfter} s.`,
          type: 'rate_limit_error',
          param: null,
          code: 'budget_reserved',
        },
      });
    }
    // What the isolate told the object: each request's whole worst case, and when its lease's
    // requests in flight should end (none had ended: 1 s from each one's start).
    const asks = rec.calls.filter((c) => c.method === 'sync' && c.arg.need).map((c) => c.arg as SyncRequest);
    expect(asks.length).toBeGreaterThan(0);
    for (const a of asks) {
      expect(a.worst).toMatchObject({ tokens: W + 80 });
      expect(a.settle_in_ms).toBeGreaterThanOrEqual(0);
      expect(a.settle_in_ms).toBeLessThanOrEqual(1_000);
    }
    expect(asks.some((a) => a.settle_in_ms! > 0)).toBe(true);
    await quiet(t);
    const used = ok.reduce((n, r) => n + r.body.usage.total_tokens, 0);
    const b = await budget();
    expect(b).toMatchObject({ used_tokens: used, state: used >= 0.8 * 4_000 ? 'warning' : 'ok' });
    expect(b.reserved_tokens).toEqual(expect.any(Number));
    // It was the truth: once they settled, the same request goes through.
    const again = await ask({ max_tokens: 100 });
    expect(again.status).toBe(200);
  });

  it('insufficient_quota says what settled usage leaves, or that it reached the hard limit', async () => {
    const { t, e, ask } = await budgetStack({ budget: { monthly_tokens: 100, soft_limit_policy: 'downgrade' } });
    expect((await ask()).status).toBe(200); // 33 used; worst case 102 fitted under 120
    const short = await ask();
    expect(short.status).toBe(429);
    expect(short.headers.get('retry-after')).toBeNull();
    expect(await short.json()).toEqual({
      error: {
        message: `You exceeded your current quota: the budget of "${t}" has 87 tokens left before its hard limit (monthly_tokens), less than this request may use (102 tokens). Lower max_tokens, or wait for the next period.`,
        type: 'insufficient_quota',
        param: null,
        code: 'insufficient_quota',
      },
    });
    // Other isolates used the rest (reported straight to the object): nothing at all is left.
    const compiled = compileConfig(e.ROUTER as Record<string, unknown>);
    if (!compiled.ok) throw new Error(compiled.errors.join('; '));
    await ns.get(ns.idFromName(t)).sync({ scope: { tenant: t, feature: null }, settings: tenantBudget(compiled.config, t)!.settings, lease: 'elsewhere', create: true, debits: [{ id: 'rest', tokens: 87, nano: 0 }] });
    resetBudgetView();
    const reached = await ask({ max_tokens: 1 });
    expect(reached.status).toBe(429);
    expect(reached.headers.get('x-router-budget-warning')).toBe('monthly_tokens=120%');
    expect(await reached.json()).toEqual({
      error: {
        message: `You exceeded your current quota: the budget of "${t}" has reached its hard limit (monthly_tokens). It resets with the next period.`,
        type: 'insufficient_quota',
        param: null,
        code: 'insufficient_quota',
      },
    });
  });
});

describe('PUT on a tenant without a budget in the config', () => {
  it('creates one at run time, kept by the tenant\'s object, enforced on every isolate, removed by DELETE', async () => {
    const { t, e, ask, budget } = await budgetStack({ budget: null });
    expect(await budget()).toMatchObject({ enabled: false, source: null });
    expect((await ask()).status).toBe(200);
    const put = (body: unknown) => admin(`/admin/tenants/${t}/budget`, { method: 'PUT', env: e, body: typeof body === 'string' ? body : JSON.stringify(body) });
    // Bad input: 400 in OpenAI's format, and nothing is created.
    for (const [body, param] of [
      [{ monthly_tokens: -1 }, 'monthly_tokens'],
      [{ monthly_tokens: 1e16 }, 'monthly_tokens'],
      [{ daily_usd: 'ten' }, 'daily_usd'],
      [{ soft_limit_policy: 'pray' }, 'soft_limit_policy'],
      [{ monthly_tokens: 5, extra: true }, null],
      [{}, null],
      [[], null],
      ['{"monthly_tokens": 5', null],
    ] as const) {
      const res = await put(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(await errorOf(res)).toMatchObject({ type: 'invalid_request_error', param });
    }
    expect(await budget()).toMatchObject({ enabled: false });
    const unknown = await admin('/admin/tenants/nobody/budget', { method: 'PUT', env: e, body: JSON.stringify({ monthly_tokens: 5 }) });
    expect(unknown.status).toBe(404);
    expect(await errorOf(unknown)).toMatchObject({ type: 'not_found_error', code: 'tenant_not_found', param: 'tenant' });
    expect((await admin('/admin/tenants/__proto__/budget', { env: e })).status).toBe(404);

    const created = await put({ monthly_tokens: 100 });
    expect(created.status).toBe(200);
    expect(await created.json()).toMatchObject({ enabled: true, source: 'admin', created_by_admin: true, tenant: t, monthly_tokens: 100, used_tokens: 0 });
    // 0 used (the request before had no budget): 102 of worst case fits under the hard limit (120).
    expect((await ask()).status).toBe(200);
    expect((await ask()).status).toBe(429);
    // Another isolate (a fresh one knows nothing) learns it from the tenant's object, after a restart of that object too.
    resetBudgetView();
    await evictDurableObject(ns.get(ns.idFromName(t)));
    const elsewhere = await ask();
    expect(elsewhere.status).toBe(429);
    expect(await errorOf(elsewhere)).toMatchObject({ code: 'insufficient_quota' });
    expect(await budget()).toMatchObject({ enabled: true, source: 'admin', monthly_tokens: 100, used_tokens: U, state: 'ok' });
    // Changing it again keeps it an admin's budget; the other tenant's config budget is untouched.
    expect(await (await put({ monthly_tokens: 1_000 })).json()).toMatchObject({ source: 'admin', monthly_tokens: 1_000, used_tokens: U });
    expect((await ask()).status).toBe(200);

    const removed = await admin(`/admin/tenants/${t}/budget`, { method: 'DELETE', env: e });
    expect(await removed.json()).toMatchObject({ enabled: false });
    expect(await budget()).toMatchObject({ enabled: false });
    for (let i = 0; i < 3; i++) expect((await ask({ max_tokens: 200 })).status).toBe(200);
    resetBudgetView();
    expect((await ask({ max_tokens: 200 })).status).toBe(200);
  });

  it('a tenant with a budget table keeps the config as its default; budgets switched off: nothing to create', async () => {
    const { t, e, budget } = await budgetStack({ budget: { monthly_tokens: 5_000 } });
    expect(await budget()).toMatchObject({ enabled: true, source: 'config', created_by_admin: false, monthly_tokens: 5_000 });
    await admin(`/admin/tenants/${t}/budget`, { method: 'PUT', env: e, body: JSON.stringify({ monthly_tokens: 7 }) });
    const back = await admin(`/admin/tenants/${t}/budget`, { method: 'DELETE', env: e });
    expect(await back.json()).toMatchObject({ enabled: true, source: 'config', monthly_tokens: 5_000 });

    const off = await budgetStack({ budget: null, budgets: { enabled: false } });
    const res = await admin(`/admin/tenants/${off.t}/budget`, { method: 'PUT', env: off.e, body: JSON.stringify({ monthly_tokens: 7 }) });
    expect(res.status).toBe(400);
    expect(await errorOf(res)).toMatchObject({ code: 'budget_not_enabled', param: 'tenant' });
    expect(await off.budget()).toMatchObject({ enabled: false });
  });
});

describe('per-feature budgets nest inside the tenant\'s', () => {
  it('30 requests under 30 feature names against a 300-token budget: the tenant\'s hard limit holds, one after another or all at once', async () => {
    // One after another: admitted while the tenant's usage is below the limit and a worst case (102)
    // fits under the hard limit (360): 8 × 33 = 264, then 264 + 102 > 360.
    const seq = await budgetStack({ budget: { monthly_tokens: 300, per_feature: true } });
    let ok = 0;
    for (let i = 0; i < 30; i++) {
      const res = await seq.ask({}, { 'x-router-feature': `f${i}` });
      if (res.status === 200) ok++;
      else expect(await errorOf(res)).toMatchObject({ code: 'insufficient_quota' });
    }
    await quiet(seq.t);
    const b = await seq.budget();
    expect(ok).toBe(8);
    expect(b.used_tokens).toBe(ok * U);
    expect(b.used_tokens).toBeLessThanOrEqual(300 + U);
    // Each feature's own budget counted its one request.
    expect(await seq.budget('?feature=f0')).toMatchObject({ feature: 'f0', used_tokens: U });

    // All at once: never past the tenant's hard limit (300 × 1.2).
    const par = await budgetStack({ budget: { monthly_tokens: 300, per_feature: true } });
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => par.ask({}, { 'x-router-feature': `g${i}` })));
    const admitted = results.filter((r) => r.status === 200).length;
    for (const r of results.filter((r) => r.status !== 200)) expect(['budget_reserved', 'insufficient_quota']).toContain((await errorOf(r)).code);
    await quiet(par.t);
    const pb = await par.budget();
    expect(pb.used_tokens).toBe(admitted * U);
    expect(pb.used_tokens).toBeLessThanOrEqual(360);
  });

  it('a feature\'s own lower limit holds inside the tenant\'s', async () => {
    const { t, e, ask, budget } = await budgetStack({ budget: { monthly_tokens: 10_000, per_feature: true } });
    await admin(`/admin/tenants/${t}/budget?feature=search`, { method: 'PUT', env: e, body: JSON.stringify({ monthly_tokens: 100, soft_limit_policy: 'downgrade' }) });
    expect((await ask({}, { 'x-router-feature': 'search' })).status).toBe(200);
    const refused = await ask({}, { 'x-router-feature': 'search' });
    expect(refused.status).toBe(429);
    expect((await errorOf(refused)).message).toContain(`"${t}/search"`);
    expect((await ask({}, { 'x-router-feature': 'chat' })).status).toBe(200);
    await quiet(t);
    expect((await budget()).used_tokens).toBe(2 * U);
  });

  it('features = [...]: any other name is refused with 400; the header is checked for length and characters', async () => {
    const { t, e, ask, budget } = await budgetStack({ budget: { monthly_tokens: 1_000_000, per_feature: true }, tenant: { features: ['search', 'chat'] } });
    expect((await ask({}, { 'x-router-feature': 'search' })).status).toBe(200);
    expect((await ask()).status).toBe(200); // no header: "default"
    const other = await ask({}, { 'x-router-feature': 'other' });
    expect(other.status).toBe(400);
    expect(await errorOf(other)).toMatchObject({ type: 'invalid_request_error', param: 'x-router-feature', code: 'unknown_feature' });
    for (const hostile of ['a'.repeat(65), 'a'.repeat(100_000), 'é', 'a b', '../x', '-x', '', 'x\ty']) {
      const res = await ask({}, { 'x-router-feature': hostile });
      expect(res.status, JSON.stringify(hostile.slice(0, 20))).toBe(400);
      const err = await errorOf(res);
      expect(err).toMatchObject({ type: 'invalid_request_error', param: 'x-router-feature', code: 'invalid_header' });
      expect(err.message).not.toContain(hostile.slice(0, 20) || '\u0000');
    }
    await quiet(t);
    expect((await budget()).used_tokens).toBe(2 * U);
    expect(await budget('?feature=other')).toMatchObject({ used_tokens: 0 });

    // The list holds for a tenant without a budget too.
    const cfg = structuredClone(e.ROUTER as Record<string, any>);
    cfg.tenants[`free-${t}`].features = ['only'];
    const e2 = { ...e, ROUTER: cfg };
    const key = (await createKey(`free-${t}`, e2)).key;
    const res = await chat(key, { model: 'm', messages: HI, max_tokens: 5 }, { env: e2, headers: { 'x-router-feature': 'else' } });
    expect(res.status).toBe(400);
    expect(await errorOf(res)).toMatchObject({ code: 'unknown_feature' });
    expect((await chat(key, { model: 'm', messages: HI, max_tokens: 5 }, { env: e2, headers: { 'x-router-feature': 'only' } })).status).toBe(200);

    // Config: the names are validated.
    const bad = compileConfig({ ...cfg, tenants: { x: { features: ['fine', 'not fine'] } } });
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.errors.join('\n')).toContain('router.tenants.x.features');
  });
});
