import { backgroundSettled } from '../../worker/isolate/background';
import { evictDurableObject } from 'cloudflare:test';
import { beforeEach, describe, expect, it } from 'vitest';
import { spawnWebhook } from '../support/webhook';
import type { QuotaSettings, SyncRequest } from '../../worker/protocol/quota';
import { budgetView, resetBudgetView } from '../../worker/budget/lease';
import { tenantBudget } from '../../worker/budget/settings';
import { verifyWebhook } from '../../worker/protocol/rules/signed-webhook';
import { compileConfig } from '../../worker/config/compiled';
import type { Env } from '../../worker/env';
import { admin, budgetStack, HI, ns, recording, sleep, U, uid, W } from './budget-support';
import { FAST } from './sims';
import { call, chat, createKey, errorOf } from './support';

/** vitest.config.mts binds this secret; the alert tests name it as the webhook's HMAC key. */
const ALERT_SECRET_NAME = 'BUDGET_ALERT_KEY';
const ALERT_SECRET = 'test-budget-alert-key';

beforeEach(() => resetBudgetView());

/** Settings as the router sends them, from a tenant budget table. */
function settingsOf(budget: Record<string, unknown>, budgets: Record<string, unknown> = {}): QuotaSettings {
  const r = compileConfig({
    regions: [{ id: 'here', latitude: 0, longitude: 0 }],
    models: [{ id: 'm' }],
    backends: [{ id: 'x', kind: 'vllm', region: 'here', url: 'http://127.0.0.1:9', models: ['m'] }],
    tenants: { t: { budget } },
    budgets,
  });
  if (!r.ok) throw new Error(r.errors.join('; '));
  return tenantBudget(r.config, 't')!.settings;
}

const T0 = Date.UTC(2030, 0, 15, 12);
const tokens = (n: number) => ({ tokens: n, nano: 0 });

// ---------------------------------------------------------------- the Durable Object

describe('TenantQuota Durable Object', () => {
  const fresh = () => {
    const tenant = `do-${uid()}`;
    return { scope: { tenant, feature: null }, stub: ns.get(ns.idFromName(tenant)) };
  };

  it('leases generously far from the limit, about one request near it, and never past the hard limit', async () => {
    const { scope, stub } = fresh();
    const settings = settingsOf({ monthly_tokens: 10_000, soft_limit_policy: 'downgrade' });
    const sync = (r: Partial<SyncRequest>) => stub.sync({ scope, settings, lease: 'a', create: true, now: T0, ...r });
    // Far: 10% of the headroom, whatever the request needed.
    const a = await sync({ lease: 'a', need: tokens(100) });
    expect(a).toMatchObject({ lost: false, granted: { tokens: 1_000, nano: null }, denied: null, tight: false, lease_ms: 10_000 });
    const b = await sync({ lease: 'b', need: tokens(0) });
    expect(b.granted.tokens).toBe(900); // 10% of what a left
    // Usage close to the limit (reported on b, which it empties): leases shrink to about the request.
    const b2 = await sync({ lease: 'b', create: false, debits: [{ id: 'u1', tokens: 8_800, nano: 0 }] });
    expect(b2.granted.tokens).toBe(20); // 10% of 10 000 − 8 800 − 1 000 (a)
    const c = await sync({ lease: 'c', need: tokens(100), hint: tokens(100) });
    expect(c).toMatchObject({ granted: { tokens: 100 }, tight: true });
    // The hard limit (12 000) bounds what is leased: 8 800 used, 1 000 + 20 + 100 held: 2 080 left.
    // 2 200 would fit over settled usage: refused as reserved, back when a's and b's use-by passes
    // (their holders never said when their requests end).
    const d = await sync({ lease: 'd', need: tokens(2_200) });
    expect(d).toMatchObject({ granted: { tokens: 0 }, denied: { kind: 'reserved', limit: 'monthly_tokens', retry_after_ms: 10_000 }, free: { tokens: 2_080 }, headroom: { tokens: 3_200 } });
    expect((await stub.details({ now: T0 })).state).toBe('warning'); // settled usage: 88%
    // 3 300 would not fit even if every lease came back: hard (the state stays: usage is below the limit).
    const d2 = await sync({ lease: 'd', need: tokens(3_300), worst: tokens(3_300) });
    expect(d2).toMatchObject({ granted: { tokens: 0 }, denied: { kind: 'hard', limit: 'monthly_tokens' }, headroom: { tokens: 3_200 } });
    expect((await stub.details({ now: T0 })).state).toBe('warning');
    // a gives its lease back: now it fits.
    await sync({ lease: 'a', create: false, close: true });
    expect((await sync({ lease: 'd', need: tokens(2_200) })).granted.tokens).toBe(2_200);
    const details = await stub.details({ now: T0 });
    expect(details).toMatchObject({ used_tokens: 8_800, reserved_tokens: 20 + 100 + 2_200, leases: 3 });
  });

  it('never leases past the hard limit, however many isolates ask at once', async () => {
    const { scope, stub } = fresh();
    const settings = settingsOf({ monthly_tokens: 10_000, soft_limit_policy: 'downgrade' });
    const replies = await Promise.all(
      Array.from({ length: 60 }, (_, i) => stub.sync({ scope, settings, lease: `l${i}`, create: true, need: tokens(300), hint: tokens(300), now: T0 })),
    );
    const granted = replies.reduce((n, r) => n + (r.granted.tokens ?? 0), 0);
    expect(granted).toBeLessThanOrEqual(12_000);
    expect(granted).toBeGreaterThan(12_000 - 300);
    // Nothing is used yet: every refusal is for what the others hold, none is hard.
    expect(replies.filter((r) => r.denied?.kind === 'reserved').length).toBeGreaterThan(0);
    expect(replies.filter((r) => r.denied?.kind === 'hard')).toEqual([]);
    expect((await stub.details({ now: T0 })).reserved_tokens).toBe(granted);
  });

  it('a lease expires: its unspent part returns once no request admitted on it can still be running', async () => {
    const { scope, stub } = fresh();
    const settings = settingsOf({ monthly_tokens: 10_000 });
    expect(settings).toMatchObject({ lease_ttl_ms: 10_000, lease_hold_ms: 300_000 + 60_000 });
    await stub.sync({ scope, settings, lease: 'a', create: true, need: tokens(500), now: T0 });
    // Admitting on it ends after the TTL, but a request admitted just before may run total_ms more.
    expect((await stub.details({ now: T0 + 10_000 + 300_000 })).reserved_tokens).toBe(1_000);
    await stub.sync({ scope, settings, lease: 'a', debits: [{ id: 'late', tokens: 400, nano: 0 }], now: T0 + 10_000 + 300_000 });
    // That report renewed it, and topped it up to 10% of the headroom: 10% of 10 000 − 400 − 600.
    expect((await stub.details({ now: T0 + 10_000 + 300_000 })).reserved_tokens).toBe(900);
    const after = await stub.details({ now: T0 + 2 * (10_000 + 360_000) });
    expect(after).toMatchObject({ reserved_tokens: 0, leases: 0, used_tokens: 400 });
    // The isolate that held it hears so and takes a new one.
    expect((await stub.sync({ scope, settings, lease: 'a', now: T0 + 2 * (10_000 + 360_000) })).lost).toBe(true);
  });

  it('counts a debit once: a replayed report changes nothing, across leases and restarts', async () => {
    const { scope, stub } = fresh();
    const settings = settingsOf({ monthly_tokens: 1_000_000, monthly_usd: 10 });
    const debits = [
      { id: 'd1', tokens: 50, nano: 1_000 },
      { id: 'd2', tokens: 30, nano: 500 },
    ];
    await stub.sync({ scope, settings, lease: 'a', create: true, debits, now: T0 });
    await stub.sync({ scope, settings, lease: 'a', debits, now: T0 });
    await stub.sync({ scope, settings, lease: 'b', create: true, debits: [...debits, { id: 'd3', tokens: 1, nano: 1 }], now: T0 });
    await evictDurableObject(stub);
    await stub.sync({ scope, settings, lease: 'c', create: true, debits, now: T0 });
    expect(await stub.details({ now: T0 })).toMatchObject({ used_tokens: 81, used_usd: 1_501e-9, daily: { used_tokens: 81 } });
  });

  it('a new UTC month (and day) starts with usage, alerts and overage approval reset', async () => {
    const { scope, stub } = fresh();
    const settings = settingsOf({ monthly_tokens: 1_000, daily_tokens: 800, alert_thresholds: [0.5] });
    const jan31 = Date.UTC(2030, 0, 31, 23, 59);
    await stub.sync({ scope, settings, lease: 'a', create: true, debits: [{ id: 'x1', tokens: 600, nano: 0 }], now: jan31 - 86_400_000 });
    await stub.sync({ scope, settings, lease: 'a', debits: [{ id: 'x2', tokens: 500, nano: 0 }], now: jan31 });
    await stub.approveOverage({ now: jan31 });
    const before = await stub.details({ now: jan31 });
    expect(before).toMatchObject({ used_tokens: 1_100, daily: { used_tokens: 500 }, overage_approved: true, period_start: '2030-01-01T00:00:00.000Z', state: 'warning' });
    expect(before.alerts.fired.sort()).toEqual(['daily_tokens@0.5', 'monthly_tokens@0.5']);

    // The next day of the same month: the daily count and its alerts start again, the month goes on.
    const after = await stub.details({ now: Date.UTC(2030, 1, 1, 0, 1) });
    expect(after).toMatchObject({
      used_tokens: 0,
      daily: { used_tokens: 0, period_start: '2030-02-01T00:00:00.000Z' },
      period_start: '2030-02-01T00:00:00.000Z',
      overage_approved: false,
      state: 'ok',
    });
    expect(after.alerts.fired).toEqual([]);

    const { scope: s2, stub: day } = fresh();
    await day.sync({ scope: s2, settings, lease: 'a', create: true, debits: [{ id: 'y', tokens: 600, nano: 0 }], now: T0 });
    const nextDay = await day.details({ now: T0 + 86_400_000 });
    expect(nextDay).toMatchObject({ used_tokens: 600, daily: { used_tokens: 0 } });
    expect(nextDay.alerts.fired).toEqual(['monthly_tokens@0.5']);
  });

  it('soft limit "block": no lease once a limit is reached, until overage is approved (for that month)', async () => {
    const { scope, stub } = fresh();
    const settings = settingsOf({ monthly_tokens: 1_000 });
    await stub.sync({ scope, settings, lease: 'a', create: true, debits: [{ id: 'z', tokens: 1_000, nano: 0 }], now: T0 });
    const blocked = await stub.sync({ scope, settings, lease: 'b', create: true, need: tokens(10), now: T0 });
    expect(blocked).toMatchObject({ denied: { kind: 'soft', limit: 'monthly_tokens' }, granted: { tokens: 0 } });
    expect(blocked.view).toMatchObject({ state: 'soft_limited', policy: 'block', overage_approved: false });
    await stub.approveOverage({ now: T0 });
    const ok = await stub.sync({ scope, settings, lease: 'b', need: tokens(10), now: T0 });
    expect(ok.denied).toBeNull();
    expect(ok.granted.tokens).toBe(20); // 10% of the 200 left to the hard limit
    expect(ok.view).toMatchObject({ state: 'warning', overage_approved: true });
  });

  it('admin changes: null removes a limit, a changed limit revokes outstanding leases', async () => {
    const { scope, stub } = fresh();
    const settings = settingsOf({ monthly_tokens: 10_000 });
    await stub.sync({ scope, settings, lease: 'a', create: true, need: tokens(10), now: T0 });
    const changed = await stub.update({ scope, settings, patch: { monthly_tokens: 5_000, daily_usd: 2 }, now: T0 });
    expect(changed).toMatchObject({ monthly_tokens: 5_000, daily_usd: 2, overrides: { monthly_tokens: 5_000, daily_usd: 2 }, reserved_tokens: 0, leases: 0 });
    expect((await stub.sync({ scope, settings, lease: 'a', now: T0 })).lost).toBe(true);
    const none = await stub.update({ scope, settings, patch: { monthly_tokens: null, daily_usd: null, soft_limit_policy: 'downgrade' }, now: T0 });
    expect(none).toMatchObject({ monthly_tokens: null, daily_usd: null, soft_limit_policy: 'downgrade' });
    // No limit in force: leases are unlimited in both units.
    const free = await stub.sync({ scope, settings, lease: 'b', create: true, need: tokens(10), now: T0 });
    expect(free.granted).toEqual({ tokens: null, nano: null });
    const cleared = await stub.clearOverrides({ scope, settings, now: T0 });
    expect(cleared).toMatchObject({ monthly_tokens: 10_000, soft_limit_policy: 'block', overrides: {} });
  });
});

// ---------------------------------------------------------------- through the router

describe('budgets on the request path', () => {
  it('a tenant without a budget costs one lookup per isolate (did an admin create one?): no lease, no sync', async () => {
    const { t, e } = await budgetStack({ budgets: { refresh_ms: 60_000 } });
    const rec = recording(e);
    const key = (await createKey(`free-${t}`, e)).key;
    for (let i = 0; i < 5; i++) {
      const res = await chat(key, { model: 'm', messages: HI, max_tokens: 5 }, { env: rec.env });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-router-budget-warning')).toBeNull();
    }
    // Five requests within refresh_ms: the first asked, the others knew.
    expect(rec.calls).toEqual([{ method: 'runtimeBudget', arg: undefined }]);
    expect(budgetView(`free-${t}`)).toBeUndefined();
    const view = await admin(`/admin/tenants/free-${t}/budget`, { env: e });
    expect(await view.json()).toMatchObject({ tenant: `free-${t}`, enabled: false, state: 'ok' });
  });

  it('far from the limit, requests wait on no budget call; usage and cost are counted exactly', async () => {
    const { t, e, ask, budget } = await budgetStack({ budget: { monthly_tokens: 1_000_000, monthly_usd: 100 } });
    const rec = recording(e);
    expect((await ask({}, {}, rec.env)).status).toBe(200); // first contact: one sync (view and lease)
    const first = rec.calls.length;
    for (let i = 0; i < 20; i++) expect((await ask({}, {}, rec.env)).status).toBe(200);
    const later = rec.calls.slice(first).map((c) => c.arg as SyncRequest);
    // Only reports (debits) went out, in waitUntil; no request asked for a grant.
    expect(later.filter((c) => !(c.need === undefined && (c.debits?.length ?? 0) > 0))).toEqual([]);
    expect(budgetView(t)!.lease).toMatchObject({ tight: false, inflight: 0 });
    const b = await budget();
    expect(b).toMatchObject({ used_tokens: 21 * U, state: 'ok' });
    expect(b.used_usd).toBeCloseTo(21 * 5.3e-6, 12);
    expect(b.reserved_tokens).toBeGreaterThan(0); // this isolate's lease
  });

  it('500 concurrent requests against a budget for 100: at most 100 admitted, the rest budget_reserved or insufficient_quota, usage exact, nothing twice', async () => {
    const { t, e, ask, budget, sim } = await budgetStack({ sim: { latency: { ...FAST, max_num_seqs: 512 } } });
    // The hard limit (120%) holds exactly 100 requests' real usage; the soft limit is lifted.
    const monthly = Math.ceil((100 * U) / 1.2);
    expect((await admin(`/admin/tenants/${t}/budget`, { method: 'PUT', env: e, body: JSON.stringify({ monthly_tokens: monthly }) })).status).toBe(200);
    expect((await admin(`/admin/tenants/${t}/budget/approve-overage`, { method: 'POST', env: e })).status).toBe(200);
    const hard = Math.floor(monthly * 1.2);
    expect(hard).toBeGreaterThanOrEqual(100 * U);
    expect(hard).toBeLessThan(101 * U);

    const rec = recording(e);
    const results = await Promise.all(
      Array.from({ length: 500 }, async () => {
        const res = await ask({}, {}, rec.env);
        return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as any };
      }),
    );
    const admitted = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status !== 200);
    expect(admitted.length + refused.length).toBe(500);
    expect(admitted.length).toBeLessThanOrEqual(100);
    // At least what the hard limit holds in worst cases at once; settled requests give back the rest.
    expect(admitted.length).toBeGreaterThanOrEqual(Math.floor(hard / W));
    // Refused while others' reservations filled it (budget_reserved, Retry-After), or once settled
    // usage left no room for a worst case (insufficient_quota, no Retry-After): nothing else.
    const reserved = refused.filter((r) => r.body.error.code === 'budget_reserved');
    const exhausted = refused.filter((r) => r.body.error.code === 'insufficient_quota');
    expect(reserved.length + exhausted.length).toBe(refused.length);
    expect(reserved.length).toBeGreaterThan(0);
    for (const r of refused) expect(r.status).toBe(429);
    for (const r of reserved) {
      expect(r.body.error.type).toBe('rate_limit_error');
      expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
    }
    for (const r of exhausted) {
      expect(r.body.error.type).toBe('insufficient_quota');
      expect(r.retryAfter).toBeNull();
    }
    // Exact to the token: the object's count is the sum of what the simulator reported, and what it served.
    const reported = admitted.reduce((n, r) => n + r.body.usage.total_tokens, 0);
    const b = await budget();
    expect(b.used_tokens).toBe(reported);
    expect(b.used_tokens).toBeLessThanOrEqual(hard);
    // The state follows settled usage (overage approved: past 100% it is a warning), hard_limited
    // after a hard refusal; reservations never make it hard_limited.
    const share = b.used_tokens / monthly;
    expect(b.state).toBe(exhausted.length > 0 || share >= 1.2 ? 'hard_limited' : share >= 0.8 ? 'warning' : 'ok');
    const served = (await sim.metric('vllm:prompt_tokens_total')) + (await sim.metric('vllm:generation_tokens_total'));
    expect(served).toBe(reported);
    expect((await sim.stats()).requests.chat).toBe(admitted.length);

    // Replaying every report the isolate sent (new lease ids, same debit ids) counts nothing again.
    const reports = rec.calls.filter((c) => c.method === 'sync' && (c.arg as SyncRequest).debits?.length);
    const debits = reports.flatMap((c) => (c.arg as SyncRequest).debits!);
    expect(debits.length).toBe(admitted.length);
    expect(new Set(debits.map((d) => d.id)).size).toBe(admitted.length);
    const stub = ns.get(ns.idFromName(t));
    for (const [i, c] of reports.entries()) await stub.sync({ ...(c.arg as SyncRequest), lease: `replay-${i}`, create: true, need: undefined });
    expect((await budget()).used_tokens).toBe(reported);
  }, 60_000);

  it('a tenant blocked by its soft limit still gets cached answers (a hit costs nothing); anything else is refused', async () => {
    // 20 answers' worth (smaller budgets refuse earlier: the worst case must fit under the hard limit).
    const { ask, budget } = await budgetStack({ budget: { monthly_tokens: 20 * U } });
    const cached = { temperature: 0 };
    expect((await ask(cached)).headers.get('x-router-cache')).toBe('miss');
    await backgroundSettled();
    expect((await ask(cached)).headers.get('x-router-cache')).toBe('hit');
    for (let i = 0; i < 19; i++) expect((await ask()).status).toBe(200);
    expect(await budget()).toMatchObject({ state: 'soft_limited', used_tokens: 20 * U });

    const hit = await ask(cached);
    expect(hit.status).toBe(200);
    expect(hit.headers.get('x-router-cache')).toBe('hit');
    const refused = await ask({ temperature: 0, max_tokens: 19 }); // cacheable, but never asked before
    expect(refused.status).toBe(429);
    expect(await errorOf(refused)).toMatchObject({ code: 'budget_exceeded' });
    expect(await budget()).toMatchObject({ used_tokens: 20 * U });
  });

  it('alerts fire once per threshold, HMAC-signed, and are retried when the webhook fails; warning header from 80%; soft then hard limit', async () => {
    const hook = await spawnWebhook({ fail_first: 2 });
    // 20 requests' worth: 70% after the 14th, 80% after the 16th, 90% after the 18th, 100% after the 20th.
    const { t, e, ask, budget } = await budgetStack({
      budget: { monthly_tokens: 20 * U, alert_webhook_url: hook.url, alert_webhook_secret: ALERT_SECRET_NAME },
      budgets: { alert_retry_base_ms: 20, alert_retry_max_ms: 100 },
    });
    const warnings: (string | null)[] = [];
    for (let i = 1; i <= 20; i++) {
      const res = await ask();
      expect(res.status).toBe(200);
      warnings.push(res.headers.get('x-router-budget-warning'));
    }
    // Each response counts its own usage: the 16th brings it to 80%.
    expect(warnings.slice(14)).toEqual([null, 'monthly_tokens=80%', 'monthly_tokens=85%', 'monthly_tokens=90%', 'monthly_tokens=95%', 'monthly_tokens=100%']);
    expect(warnings.slice(0, 14).filter((w) => w !== null)).toEqual([]);

    // 100%: the soft limit (policy block).
    const blocked = await ask();
    expect(blocked.status).toBe(429);
    expect(blocked.headers.get('x-router-budget-warning')).toBe('monthly_tokens=100%');
    expect(await errorOf(blocked)).toMatchObject({ code: 'budget_exceeded', type: 'insufficient_quota' });
    expect(await budget()).toMatchObject({ state: 'soft_limited', used_tokens: 20 * U });

    // Three alerts, each delivered once; two failed attempts before, retried under the same id.
    let calls: Awaited<ReturnType<typeof hook.calls>> = [];
    for (let i = 0; i < 100 && calls.filter((c) => c.status === 200).length < 3; i++) {
      await sleep(50);
      calls = await hook.calls();
    }
    const delivered = calls.filter((c) => c.status === 200);
    expect(delivered.map((c) => JSON.parse(c.body).threshold).sort()).toEqual([0.7, 0.9, 1]);
    expect(calls.filter((c) => c.status === 500)).toHaveLength(2);
    expect(new Set(delivered.map((c) => c.headers['x-router-delivery'])).size).toBe(3);
    for (const failed of calls.filter((c) => c.status === 500)) {
      const retry = delivered.find((d) => d.headers['x-router-delivery'] === failed.headers['x-router-delivery']);
      expect(retry).toBeDefined();
      expect(Number(retry!.headers['x-router-attempt'])).toBeGreaterThan(Number(failed.headers['x-router-attempt']));
    }
    for (const c of calls) {
      expect(c.headers['x-router-signature']).toMatch(/^sha256=[0-9a-f]{64}$/);
      expect(await verifyWebhook(ALERT_SECRET, { signature: c.headers['x-router-signature'], timestamp: c.headers['x-router-timestamp'] }, c.body)).toBe(true);
      expect(await verifyWebhook('wrong-key', { signature: c.headers['x-router-signature'], timestamp: c.headers['x-router-timestamp'] }, c.body)).toBe(false);
      expect(c.headers['x-router-event']).toBe('budget.threshold_reached');
    }
    const payload = JSON.parse(delivered.find((c) => JSON.parse(c.body).threshold === 0.9)!.body);
    expect(payload).toMatchObject({ type: 'budget.threshold_reached', tenant: t, limit: 'monthly_tokens', threshold: 0.9, limit_value: 20 * U, used: 18 * U, period: 'month' });

    // An admin approves overage: requests pass up to the hard limit (120%), then insufficient_quota.
    const approved = await admin(`/admin/tenants/${t}/budget/approve-overage`, { method: 'POST', env: e });
    expect(await approved.json()).toMatchObject({ overage_approved: true, state: 'warning' });
    const over = await ask();
    expect(over.status).toBe(200);
    expect(over.headers.get('x-router-budget-warning')).toBe('monthly_tokens=105%');
    // 21 × 33 = 693 used: a worst case of 102 more would pass the hard limit, 792.
    const hard = await ask();
    expect(hard.status).toBe(429);
    expect(await errorOf(hard)).toMatchObject({ code: 'insufficient_quota', type: 'insufficient_quota' });
    const b = await budget();
    expect(b).toMatchObject({ state: 'hard_limited', used_tokens: 21 * U });
    expect(b.alerts.fired.sort()).toEqual(['monthly_tokens@0.7', 'monthly_tokens@0.9', 'monthly_tokens@1']);
    expect(b.alerts.recent.map((a: any) => a.status)).toEqual(['delivered', 'delivered', 'delivered']);
    // Nothing fired twice (every alert is delivered, so none is pending): the receiver saw exactly
    // the attempts the object records, and accepted each delivery once.
    const final = await hook.calls();
    expect(final).toHaveLength(b.alerts.recent.reduce((n: number, a: { attempts: number }) => n + a.attempts, 0));
    const accepted = final.filter((c) => c.status === 200).map((c) => c.headers['x-router-delivery']);
    expect(accepted).toHaveLength(new Set(accepted).size);
  });

  it('soft limit "downgrade": past 100% requests run in the cheapest tier until overage is approved', async () => {
    const { t, cfg, e, ask } = await budgetStack({ budget: { monthly_tokens: 2_000, soft_limit_policy: 'downgrade' } });
    // Other isolates used it all: their reports, straight to the tenant's object.
    const compiled = compileConfig(cfg);
    if (!compiled.ok) throw new Error(compiled.errors.join('; '));
    const settings = tenantBudget(compiled.config, t)!.settings;
    await ns.get(ns.idFromName(t)).sync({ scope: { tenant: t, feature: null }, settings, lease: 'elsewhere', debits: [{ id: 'other', tokens: 2_000, nano: 0 }] });
    const big = await ask({ model: 'm-big' });
    expect(big.status).toBe(200);
    expect(big.headers.get('x-router-downgraded')).toBe('true');
    expect(big.headers.get('x-router-tier')).toBe('fast');
    expect(big.headers.get('x-router-model')).toBe('m');
    const tier = await ask({ model: 'premium' });
    expect(tier.headers.get('x-router-downgraded')).toBe('true');
    expect(tier.headers.get('x-router-model')).toBe('m');
    // Already the cheapest tier: nothing to downgrade.
    expect((await ask({ model: 'm' })).headers.get('x-router-downgraded')).toBeNull();
    await admin(`/admin/tenants/${t}/budget/approve-overage`, { method: 'POST', env: e });
    const back = await ask({ model: 'm-big' });
    expect(back.headers.get('x-router-downgraded')).toBeNull();
    expect(back.headers.get('x-router-model')).toBe('m-big');
  });

  it('streams settle when they end; a failed request releases its reservation; a degraded answer is not billed', async () => {
    const { t, e, ask, budget, sim } = await budgetStack({ degraded: true });
    const stream = await ask({ stream: true });
    expect(stream.status).toBe(200);
    const text = await stream.text();
    expect(text.trim().endsWith('data: [DONE]')).toBe(true);
    expect(text).not.toContain('"usage"'); // the client did not ask for it; the router still counted it
    // Settled as the stream ended, reported in the background.
    for (let i = 0; i < 50 && budgetView(t)!.unacked.tokens > 0; i++) await sleep(10);
    expect((await budget()).used_tokens).toBe(U);
    const avail = budgetView(t)!.lease!.avail.tokens;

    await sim.faults({ error_rate: 1, status: 503 });
    const degraded = await ask();
    expect(degraded.status).toBe(200);
    expect(degraded.headers.get('x-router-degraded')).toBe('true');
    const failed = await ask({ stream: true });
    expect(failed.headers.get('x-router-degraded')).toBe('true');
    await failed.text();
    expect((await budget()).used_tokens).toBe(U);
    expect(budgetView(t)!.lease).toMatchObject({ inflight: 0 });
    expect(budgetView(t)!.lease!.avail.tokens).toBeGreaterThanOrEqual(avail); // everything back (plus any top-up)
  });

  it('sends max_tokens upstream when the client left it out, so the reservation holds', async () => {
    const { ask, budget } = await budgetStack({ budgets: { default_max_tokens: 7 } });
    const res = await ask({ max_tokens: undefined });
    expect(((await res.json()) as any).usage).toMatchObject({ completion_tokens: 7 });
    expect((await budget()).used_tokens).toBe(13 + 7);
  });

  it('money limits: priced per model, refused at the hard limit with insufficient_quota', async () => {
    // An HI costs 5 300 nano-dollars; its worst case on m-big (the dearest candidate of "premium"):
    // 82 × 1 + 20 × 2 = 122 µ$, on m 12.2 µ$.
    const { t, e, ask, budget } = await budgetStack({ budget: { monthly_usd: 0.00005, soft_limit_policy: 'downgrade' } });
    let ok = 0;
    for (let i = 0; i < 20; i++) {
      const res = await ask();
      if (res.status !== 200) {
        expect(await errorOf(res)).toMatchObject({ code: 'insufficient_quota' });
        break;
      }
      ok++;
    }
    const b = await budget();
    expect(b.used_usd).toBeCloseTo(ok * 5.3e-6, 12);
    expect(b.used_usd).toBeLessThanOrEqual(0.00006);
    expect(ok).toBe(Math.floor((60_000 - 12_200) / 5_300) + 1);
    expect((await admin(`/admin/tenants/${t}/budget`, { env: e }).then((r) => r.json())) as any).toMatchObject({ monthly_usd: 0.00005, usage: { monthly_usd: expect.any(Number) } });
  });

  it('per-feature budgets: x-router-feature picks the budget; the admin API takes ?feature=', async () => {
    const { t, e, ask } = await budgetStack({ budget: { monthly_tokens: 1_000_000, per_feature: true } });
    await ask({}, { 'x-router-feature': 'search' });
    await ask({}, { 'x-router-feature': 'search' });
    await ask({}, { 'x-router-feature': 'chat' });
    await ask();
    const of = async (q: string) => ((await (await admin(`/admin/tenants/${t}/budget${q}`, { env: e })).json()) as any).used_tokens;
    // Every request counts against its feature's budget and the tenant's (no ?feature=): nested.
    expect([await of('?feature=search'), await of('?feature=chat'), await of('?feature=default'), await of('')]).toEqual([2 * U, U, U, 4 * U]);
    expect(((await (await admin(`/admin/tenants/${t}/budget?feature=search`, { env: e })).json()) as any).feature).toBe('search');
    const bad = await ask({}, { 'x-router-feature': '../etc' });
    expect(bad.status).toBe(400);
    expect(await errorOf(bad)).toMatchObject({ param: 'x-router-feature', code: 'invalid_header' });
  });
});

// ---------------------------------------------------------------- admin API

describe('/admin/tenants/:tenant/budget', () => {
  it('reads limits and usage; PUT changes any of them (null removes), validated; 404 for an unknown tenant', async () => {
    const { t, e, ask, budget } = await budgetStack({ budget: { monthly_tokens: 50_000, daily_usd: 5 } });
    await ask();
    const b = await budget();
    expect(b).toMatchObject({
      object: 'budget',
      tenant: t,
      enabled: true,
      monthly_tokens: 50_000,
      monthly_usd: null,
      daily_tokens: null,
      daily_usd: 5,
      soft_limit_policy: 'block',
      used_tokens: U,
      state: 'ok',
      period_start: expect.stringMatching(/^\d{4}-\d{2}-01T00:00:00\.000Z$/),
    });
    expect(b.reserved_tokens).toEqual(expect.any(Number));
    expect(b.used_usd).toBeCloseTo(5.3e-6, 12);

    const put = (body: unknown, tenant = t) => admin(`/admin/tenants/${tenant}/budget`, { method: 'PUT', env: e, body: typeof body === 'string' ? body : JSON.stringify(body) });
    const changed = await put({ monthly_tokens: null, daily_tokens: 100, soft_limit_policy: 'downgrade' });
    expect(changed.status).toBe(200);
    expect(await changed.json()).toMatchObject({ monthly_tokens: null, daily_tokens: 100, daily_usd: 5, soft_limit_policy: 'downgrade', used_tokens: U, overrides: { monthly_tokens: null, daily_tokens: 100 } });
    // Applies at once on this isolate: 33 used + a worst case of 102 would pass the daily hard limit (120).
    const refused = await ask();
    expect(refused.status).toBe(429);
    expect((await errorOf(refused)).message).toContain('daily_tokens');

    for (const [body, param] of [
      [{ monthly_tokens: -1 }, 'monthly_tokens'],
      [{ monthly_tokens: 1.5 }, 'monthly_tokens'],
      [{ monthly_usd: 'ten' }, 'monthly_usd'],
      [{ soft_limit_policy: 'pray' }, 'soft_limit_policy'],
      [{ weekly_tokens: 5 }, null],
      [{}, null],
      ['not json', null],
    ] as const) {
      const res = await put(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      const err = await errorOf(res);
      expect(err.type).toBe('invalid_request_error');
      if (param) expect(err.param).toBe(param);
    }
    const unknown = await put({ monthly_tokens: 5 }, 'nobody');
    expect(unknown.status).toBe(404);
    expect(await errorOf(unknown)).toMatchObject({ code: 'tenant_not_found', param: 'tenant' });
    expect((await admin('/admin/tenants/nobody/budget', { env: e })).status).toBe(404);
    expect((await admin('/admin/tenants/nobody/budget/approve-overage', { method: 'POST', env: e })).status).toBe(404);
    // A tenant without a budget (neither in the config nor created by PUT): nothing to approve or reset.
    const none = await admin(`/admin/tenants/free-${t}/budget/approve-overage`, { method: 'POST', env: e });
    expect(none.status).toBe(400);
    expect(await errorOf(none)).toMatchObject({ code: 'budget_not_enabled', type: 'invalid_request_error' });
    expect((await admin(`/admin/tenants/free-${t}/budget`, { method: 'DELETE', env: e })).status).toBe(400);
    expect((await call(`/admin/tenants/${t}/budget`, { env: e })).status).toBe(401);

    // DELETE forgets the admin's changes.
    const reset = await admin(`/admin/tenants/${t}/budget`, { method: 'DELETE', env: e });
    expect(await reset.json()).toMatchObject({ monthly_tokens: 50_000, daily_tokens: null, soft_limit_policy: 'block', overrides: {} });
  });

  it('config: budget tables are validated; a tenant budget inherits [budgets]', () => {
    const s = settingsOf({ monthly_usd: 12.5, alert_webhook_url: 'https://hooks.example.com/x' }, { soft_limit_policy: 'downgrade', alert_thresholds: [0.5, 1], alert_webhook_secret: 'HOOK_KEY' });
    expect(s).toMatchObject({
      limits: { monthly_tokens: null, monthly_usd: 12.5, daily_tokens: null, daily_usd: null },
      soft_limit_policy: 'downgrade',
      alert_thresholds: [0.5, 1],
      alert_webhook_url: 'https://hooks.example.com/x',
      alert_webhook_secret: null, // a tenant's own URL does not take the default URL's key
      hard_limit_ratio: 1.2,
    });
    const bad = compileConfig({
      regions: [{ id: 'here', latitude: 0, longitude: 0 }],
      models: [{ id: 'm' }],
      backends: [{ id: 'x', kind: 'vllm', region: 'here', url: 'http://127.0.0.1:9', models: ['m'] }],
      tenants: { t: { budget: { monthly_tokens: -5, soft_limit_policy: 'maybe', alert_webhook_secret: 'lower' } } },
      budgets: { hard_limit_ratio: 0.5 },
    });
    expect(bad.ok).toBe(false);
    const text = !bad.ok ? bad.errors.join('\n') : '';
    for (const path of ['router.tenants.t.budget.monthly_tokens', 'router.tenants.t.budget.soft_limit_policy', 'router.tenants.t.budget.alert_webhook_secret', 'router.budgets.hard_limit_ratio']) {
      expect(text).toContain(path);
    }
  });
});
