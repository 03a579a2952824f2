import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../scripts/dev/stack';
import { withAdmin } from '../support/admin';
import { until } from '../support/until';

// The dashboard in a real browser (Debian's chromium through playwright-core) after a seeded run:
// what it shows must equal what /admin/usage, /admin/breakers, /admin/backends and the budget API
// say. CI installs chromium (.ci/run); without it this file fails, it never skips.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

let stack: Stack;
let browser: Browser;
let page: Page;
const requested: string[] = [];
let seeded = 0;

interface UsageRow {
  [k: string]: string | number | null;
}

const admin = (path: string, init: RequestInit = {}) => fetch(`${stack.routerUrl}${path}`, withAdmin(init, stack.adminToken));
const usage = async (q: string): Promise<UsageRow[]> => ((await (await admin(`/admin/usage?${q}`)).json()) as { rows: UsageRow[] }).rows;

async function chat(key: string, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Response> {
  const res = await fetch(`${stack.routerUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ max_tokens: 8, messages: [{ role: 'user', content: 'Say hello to the dashboard.' }], ...body }),
  });
  await res.arrayBuffer();
  seeded++;
  return res;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does it in CI)`);
  stack = await startStack({
    port: 0,
    ephemeralBackends: true,
    persist: false,
    simProfile: 'instant',
    // demo gets a budget (so one progress bar has a value); acme has none (shown as "no budget").
    configPatch: (r) => ({ ...r, budgets: { ...r.budgets, enabled: true }, tenants: { ...r.tenants, demo: { ...r.tenants!.demo!, budget: { monthly_tokens: 100_000 } } } }),
  });

  // Two tenants, two models, two features; repeated deterministic prompts (cache hits); one error; streams (TTFT).
  const { demo, acme } = stack.keys;
  expect((await chat(demo, { model: 'small', temperature: 0 })).headers.get('x-router-cache')).toBe('miss');
  // The cache is filled after the answer (waitUntil): ask again until the replay comes from it.
  await until('a cache hit', async () => ((await chat(demo, { model: 'small', temperature: 0 })).headers.get('x-router-cache') === 'hit'), undefined, 15_000);
  await chat(demo, { model: 'large' }, { 'x-router-feature': 'search' });
  expect((await chat(demo, { model: 'small', temperature: 9 })).status).toBe(400);
  for (let i = 0; i < 3; i++) await chat(acme, { model: 'small', seed: i }, { 'x-router-feature': 'chat' });
  for (let i = 0; i < 2; i++) await chat(acme, { model: 'large', seed: i }, { 'x-router-feature': 'search' });
  // Two streams: the requests with a TTFT.
  for (let i = 0; i < 2; i++) expect((await chat(acme, { model: 'small', seed: 100 + i, stream: true }, { 'x-router-feature': 'chat' })).status).toBe(200);

  // A canary of support-bot (wrangler.toml) at 50%, with a gate result, and six users on it: the rollouts panel.
  expect((await admin('/admin/deployments/support-bot/gates', { method: 'POST', body: JSON.stringify({ version: 'v2', passed: true, summary: { cases: 100, mean_similarity: 0.95 } }) })).status).toBe(201);
  expect((await admin('/admin/deployments/support-bot/rollouts', { method: 'POST', body: JSON.stringify({ version: 'v2', steps: [50, 100] }) })).status).toBe(201);
  for (let i = 0; i < 6; i++) expect((await chat(demo, { model: 'support-bot', user: `dash-user-${i}` })).status).toBe(200);
  await until('the rollout outcomes', async () => ((await (await admin('/admin/deployments/support-bot')).json()) as { rollout: { arms: Record<string, { requests: number }> } }).rollout.arms, (a) => a.stable!.requests + a.candidate!.requests === 6, undefined, 15_000);

  // Records are written after the response, in batches: wait until the ledger has them all.
  await until('the usage records', async () => ((await usage('group_by=')).reduce((a, r) => a + Number(r.requests), 0) === seeded), undefined, 15_000);

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  page = await browser.newPage();
  page.on('request', (r) => requested.push(r.url()));
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await stack?.close();
});

/** data-value of every [data-testid] on the page, by test id. */
async function shown(): Promise<Record<string, string>> {
  return page.$$eval('[data-testid]', (els) => Object.fromEntries(els.map((e) => [e.getAttribute('data-testid')!, e.getAttribute('data-value') ?? ''])));
}

describe('GET /dashboard', () => {
  it('refuses without the admin token, with a wrong one, and for writes with only the cookie', async () => {
    expect((await fetch(`${stack.routerUrl}/dashboard`)).status).toBe(401);
    expect((await fetch(`${stack.routerUrl}/dashboard?token=nope`, { redirect: 'manual' })).status).toBe(401);
    expect((await fetch(`${stack.routerUrl}/dashboard/app.js`)).status).toBe(401);
    expect((await fetch(`${stack.routerUrl}/admin/usage`, { headers: { cookie: 'er_dashboard=v1.9999999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' } })).status).toBe(401);

    const open = await fetch(`${stack.routerUrl}/dashboard?token=${encodeURIComponent(stack.adminToken)}`, { redirect: 'manual' });
    expect(open.status).toBe(303);
    expect(open.headers.get('location')).toBe('/dashboard');
    const cookie = open.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^er_dashboard=v1\.\d+\.[\w-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Strict$/); // no Secure: plain http on loopback
    expect(cookie).not.toContain(stack.adminToken);
    const session = cookie.split(';')[0]!;
    expect((await fetch(`${stack.routerUrl}/admin/usage`, { headers: { cookie: session } })).status).toBe(200);
    // Read-only: the cookie never authorizes a change (writes need the Bearer token).
    const write = await fetch(`${stack.routerUrl}/admin/breakers/vllm-us-east-8b/reset`, { method: 'POST', headers: { cookie: session } });
    expect(write.status).toBe(401);
    // A tampered signature is refused.
    expect((await fetch(`${stack.routerUrl}/admin/usage`, { headers: { cookie: session.slice(0, -2) + (session.endsWith('AA') ? 'BB' : 'AA') } })).status).toBe(401);
    // Bearer still works on the page itself.
    const viaBearer = await admin('/dashboard');
    expect(viaBearer.status).toBe(200);
    expect(viaBearer.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(viaBearer.headers.get('content-security-policy')).toContain("connect-src 'self'");
  });

  it('shows the figures /admin/usage reports, in a real browser', async () => {
    // Fake timers (time still flows): the refresh test moves the clock instead of waiting 15 s.
    await page.clock.install();
    const res = await page.goto(`${stack.routerUrl}/dashboard?token=${encodeURIComponent(stack.adminToken)}`);
    expect(res?.status()).toBe(200);
    await page.waitForSelector('body[data-state="ready"]', { timeout: 20_000 });

    // The token is gone from the address bar and was never in the page.
    expect(page.url()).toBe(`${stack.routerUrl}/dashboard`);
    expect(await page.content()).not.toContain(stack.adminToken);
    expect(await page.evaluate(() => document.cookie)).toBe(''); // HttpOnly

    // DASHBOARD_SCREENSHOT=path.png keeps a picture of what was checked (for a human look).
    if (process.env.DASHBOARD_SCREENSHOT) await page.screenshot({ path: process.env.DASHBOARD_SCREENSHOT, fullPage: true });
    const v = await shown();
    // The same window as the page's (it shows it), so the API's figures are for the same requests.
    const range = `from=${encodeURIComponent((await page.getAttribute('#window', 'data-from'))!)}&to=${encodeURIComponent((await page.getAttribute('#window', 'data-to'))!)}`;

    const [total] = await usage(`group_by=&${range}`);
    expect(Number(v['total-requests'])).toBe(seeded);
    expect(Number(v['total-requests'])).toBe(total!.requests);
    expect(Number(v['total-errors'])).toBe(total!.errors);
    expect(Number(v['total-errors'])).toBe(1);
    expect(Number(v['total-cost'])).toBe(total!.cost_usd);
    expect(Number(v['total-cost'])).toBeGreaterThan(0);
    expect(Number(v['cache-saved'])).toBe(total!.saved_usd);
    expect(Number(v['cache-saved'])).toBeGreaterThan(0);
    expect(Number(v['latency-p50'])).toBe(total!.latency_ms_p50);
    expect(Number(v['latency-p95'])).toBe(total!.latency_ms_p95);
    // TTFT (the streams) and the cache hit rate: as reported, never n/a once there is data.
    expect(total!.ttft_ms_p50).toEqual(expect.any(Number));
    expect(total!.ttft_ms_p95).toEqual(expect.any(Number));
    expect(v['ttft-p50']).toBe(String(total!.ttft_ms_p50));
    expect(v['ttft-p95']).toBe(String(total!.ttft_ms_p95));
    expect(Number(total!.cache_hits)).toBeGreaterThan(0);
    expect(Number(v['cache-hit-rate'])).toBe(total!.cache_hit_rate);
    expect(Number(v['cache-hit-rate'])).toBe(Number(total!.cache_hits) / Number(total!.requests));
    for (const id of ['ttft-p50', 'ttft-p95', 'cache-hit-rate']) expect(await page.textContent(`[data-testid="${id}"]`), id).not.toContain('n/a');

    for (const dim of ['tenant', 'model', 'feature'] as const) {
      const rows = await usage(`group_by=${dim}&${range}`);
      expect(rows.length).toBeGreaterThanOrEqual(2);
      for (const r of rows) {
        const key = r[dim] === null ? '(none)' : String(r[dim]);
        expect(Number(v[`by-${dim}:${key}:requests`]), `${dim} ${key} requests`).toBe(r.requests);
        expect(Number(v[`by-${dim}:${key}:errors`]), `${dim} ${key} errors`).toBe(r.errors);
        expect(Number(v[`by-${dim}:${key}:cost`]), `${dim} ${key} cost`).toBe(r.cost_usd);
        expect(Number(v[`by-${dim}:${key}:saved`]), `${dim} ${key} saved`).toBe(r.saved_usd);
      }
    }
    expect(Number(v['by-tenant:demo:errors'])).toBe(1);

    // Charts are drawn (uPlot canvases), one point per hour of the window.
    for (const id of ['chart-traffic', 'chart-latency', 'chart-cost']) {
      expect(await page.locator(`#${id} canvas`).count(), id).toBe(1);
      expect(Number(await page.getAttribute(`#${id}`, 'data-points'))).toBeGreaterThanOrEqual(24);
    }
  });

  it('shows breaker, backend and budget states as the admin API does', async () => {
    const v = await shown();
    const breakers = ((await (await admin('/admin/breakers')).json()) as { data: Array<{ backend: string; state: string; enabled: boolean }> }).data;
    expect(breakers.length).toBeGreaterThan(0);
    for (const b of breakers) expect(v[`breaker:${b.backend}`], b.backend).toBe(b.enabled ? b.state : 'disabled');
    const backends = ((await (await admin('/admin/backends')).json()) as { data: Array<{ id: string; state: string }> }).data;
    for (const b of backends) expect(v[`backend:${b.id}`], b.id).toBe(b.state);
    // Runbooks ([alerts].runbook_base_url, default the repository path): the index, as /admin/alerts lists them.
    const alerts = (await (await admin('/admin/alerts')).json()) as { runbooks: Array<{ slug: string; url: string }> };
    for (const r of alerts.runbooks) expect(v[`runbook:${r.slug}`], r.slug).toBe(r.url);
    expect(v['runbook:budget-exhausted']).toBe('docs/runbooks/budget-exhausted.md');

    const demo = (await (await admin('/admin/tenants/demo/budget')).json()) as { state: string; usage: Record<string, number> };
    expect(v['budget-state:demo']).toBe(demo.state);
    const share = Number(v['budget:demo']);
    expect(share).toBeGreaterThanOrEqual(0);
    expect(share).toBeLessThanOrEqual(1);
    expect(v['budget:acme']).toBe(''); // no budget: n/a
  });

  it('shows the batch and the async queue as /admin/queues does', async () => {
    const queues = ((await (await admin('/admin/queues')).json()) as { data: Array<{ queue: string; depth: number; dead_letters: number }> }).data;
    expect(queues.map((q) => q.queue)).toEqual(['edge-router-batch', 'edge-router-async']);
    const rows = await page.$$eval('#queues tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
    expect(rows.map((r) => r[0])).toEqual(queues.map((q) => q.queue));
    rows.forEach((r, i) => {
      expect(r[1], `${r[0]} depth`).toBe(String(queues[i]!.depth));
      expect(r[5], `${r[0]} dead letters`).toBe(String(queues[i]!.dead_letters));
    });
  });

  it('shows each deployment’s rollout (step, share, verdict, both arms’ signals) as /admin/deployments does', async () => {
    const v = await shown();
    type Arm = Record<string, number | null>;
    const list = ((await (await admin('/admin/deployments')).json()) as { data: Array<{ name: string; serving: string; rollout: { state: string; step: number; share: number; comparison: { verdict: string } | null; arms: { stable: Arm; candidate: Arm } } | null }> }).data;
    const d = list.find((x) => x.name === 'support-bot')!;
    const r = d.rollout!;
    expect(v['deployment-serving:support-bot']).toBe(d.serving);
    expect(v['rollout-state:support-bot']).toBe('running');
    expect(v['rollout-state:support-bot']).toBe(r.state);
    expect(v['rollout-share:support-bot']).toBe('50');
    expect(v['rollout-share:support-bot']).toBe(String(r.share));
    expect(v['rollout-step:support-bot']).toBe(String(r.step));
    expect(v['rollout-verdict:support-bot']).toBe(r.comparison?.verdict);
    for (const arm of ['stable', 'candidate'] as const) {
      const a = r.arms[arm];
      expect(v[`rollout-signal:support-bot:${arm}:requests`], arm).toBe(String(a.requests));
      expect(v[`rollout-signal:support-bot:${arm}:error_rate`], arm).toBe(a.error_rate === null ? '' : String(a.error_rate));
      expect(v[`rollout-signal:support-bot:${arm}:p95_latency`], arm).toBe(a.p95_latency_ms === null ? '' : String(a.p95_latency_ms));
      expect(v[`rollout-signal:support-bot:${arm}:mean_output_tokens`], arm).toBe(a.mean_output_tokens === null ? '' : String(a.mean_output_tokens));
    }
    expect(Number(v['rollout-signal:support-bot:stable:requests']) + Number(v['rollout-signal:support-bot:candidate:requests'])).toBe(6);
  });

  it('refreshes itself and made no request off this machine', async () => {
    const before = Number(await page.getAttribute('body', 'data-refreshes'));
    // The page refreshes every 15 s with setTimeout: run the (fake) clock forward rather than wait.
    await page.clock.runFor(15_000);
    await page.waitForFunction((n) => Number(document.body.dataset.refreshes) > n, before, { timeout: 20_000 });
    expect(requested.length).toBeGreaterThan(5);
    for (const url of requested) expect(LOOPBACK.has(new URL(url).hostname), url).toBe(true);
    expect(requested.filter((u) => u.includes(stack.adminToken) && !u.includes('/dashboard?token='))).toEqual([]);
  }, 30_000);
});
