/**
 * npm run finops (scripts/finops/): against a real local stack with seeded traffic, the report's
 * figures equal what /admin/usage says, GPU costs follow the config's usd_per_gpu_hour, and the CLI
 * writes the Markdown and HTML files with a source beside every figure.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../scripts/dev/stack';
import { main } from '../../scripts/finops';
import { collect, periodOf, type UsageRow } from '../../scripts/finops/collect';
import { buildReport, type Report } from '../../scripts/finops/model';
import { compileConfig } from '../../worker/config/compiled';

let stack: Stack;
let dir: string;
let report: Report;
const SENT = { demo: 0, acme: 0 };

async function chat(key: string, body: Record<string, unknown>) {
  const res = await fetch(`${stack.routerUrl}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ max_tokens: 8, ...body }) });
  expect(res.status).toBe(200);
  await res.text();
}

async function usage(q: string): Promise<UsageRow[]> {
  const to = new Date(Date.now() + 1000).toISOString();
  const from = new Date(periodOf(undefined).from).toISOString();
  const res = await fetch(`${stack.routerUrl}/admin/usage?${q}&from=${from}&to=${to}`, { headers: { authorization: `Bearer ${stack.adminToken}` } });
  return ((await res.json()) as { rows: UsageRow[] }).rows;
}

beforeAll(async () => {
  stack = await startStack({
    port: 0,
    ephemeralBackends: true,
    persist: false,
    simProfile: 'instant',
    configPatch: (r) => ({
      ...r,
      // Priced here: these two only (the others' prices removed, to check an unpriced one says so).
      backends: r.backends.map(({ usd_per_gpu_hour: _, gpus: __, ...b }) => (b.id === 'vllm-us-east-8b' ? { ...b, usd_per_gpu_hour: 2, gpus: 1 } : b.id === 'vllm-us-east-70b' ? { ...b, usd_per_gpu_hour: 2.5, gpus: 4 } : b)),
      tenants: { ...r.tenants, demo: { ...r.tenants!.demo, budget: { monthly_usd: 100 } } },
    }),
  });
  dir = mkdtempSync(join(tmpdir(), 'finops-'));
  // Seeded traffic: repeats at temperature 0 (exact-cache hits), auto-routed prompts, a 70B model.
  for (let i = 0; i < 6; i++) await chat(stack.keys.demo, { model: 'llama-3.1-8b', temperature: 0, messages: [{ role: 'user', content: 'What is the capital of France?' }] });
  for (let i = 0; i < 4; i++) await chat(stack.keys.acme, { model: 'auto', messages: [{ role: 'user', content: `Explain step by step, with a proof, theorem number ${i} about prime gaps and its consequences for cryptography.` }] });
  for (let i = 0; i < 3; i++) await chat(stack.keys.acme, { model: 'large', messages: [{ role: 'user', content: `Summarise item ${i}` }] });
  SENT.demo = 6;
  SENT.acme = 7;
  // Usage records are written after the response (waitUntil, batched): wait until all are there.
  const end = Date.now() + 20_000;
  while ((await usage('group_by='))[0]?.requests !== 13) {
    if (Date.now() > end) throw new Error('usage records did not arrive');
    await new Promise((r) => setTimeout(r, 200));
  }
  const cfg = compileConfig(stack.router);
  if (!cfg.ok) throw new Error(cfg.errors.join('; '));
  report = buildReport(await collect({ router: stack.routerUrl, adminToken: stack.adminToken, config: cfg.config.raw, period: periodOf(undefined) }));
}, 90_000);

afterAll(async () => {
  await stack?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const fig = (list: Report['requirements'], label: string) => {
  const f = list.find((x) => x.label.startsWith(label));
  if (!f) throw new Error(`no figure "${label}" in ${list.map((x) => x.label).join(', ')}`);
  return f;
};

describe('finops report', () => {
  it('requirements and spend are /admin/usage figures', async () => {
    const [total] = await usage('group_by=');
    expect(fig(report.requirements, 'requests this period').value).toBe(13);
    expect(fig(report.requirements, 'requests this period').value).toBe(total!.requests);
    expect(fig(report.requirements, 'spend (metered tokens)').value).toBeCloseTo(total!.cost_usd, 9);
    expect(fig(report.requirements, 'p95 latency').value).toBe(total!.latency_ms_p95);
    expect(fig(report.requirements, 'availability').value).toBe(1 - total!.errors / total!.requests);
    expect(fig(report.requirements, 'availability').target).toBe(0.999);
    const busiest = Math.max(...(await usage('group_by=&granularity=hour')).map((r) => r.requests));
    expect(fig(report.requirements, 'peak QPS').value).toBeCloseTo(busiest / 3600, 4);
    for (const f of report.requirements) expect(f.source, f.label).toMatch(/\S/);
  });

  it('budgets, savings and per-backend figures agree with /admin/usage; GPU cost follows usd_per_gpu_hour', async () => {
    const byTenant = await usage('group_by=tenant');
    const demo = fig(report.budgets, 'demo');
    expect(demo.value).toBeCloseTo(byTenant.find((r) => r.tenant === 'demo')!.cost_usd, 9);
    expect(demo.target).toBe(100);
    expect(fig(report.budgets, 'acme').target).toBeNull();

    const [total] = await usage('group_by=');
    const cache = fig(report.savings, 'response caches');
    expect(cache.value).toBeCloseTo(total!.saved_usd, 9);
    expect(total!.cache_hits).toBeGreaterThanOrEqual(5); // the repeats were answered from the cache
    expect(total!.saved_usd).toBeGreaterThan(0);
    // Hit counts by kind come from /metrics (cumulative): the same numbers the router exposes.
    const metrics = await (await fetch(`${stack.routerUrl}/metrics`, { headers: { authorization: `Bearer ${stack.adminToken}` } })).text();
    const hits = [...metrics.matchAll(/^router_cache_requests_total\{[^}]*result="hit"[^}]*\} (\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0);
    expect(fig(report.savings, 'of which exact-cache hits').value).toBe(hits);

    const byBackend = await usage('group_by=backend');
    const row = (id: string) => report.components.find((c) => c.component === id)!;
    for (const b of byBackend.filter((r) => r.backend)) expect(row(String(b.backend)).requests, String(b.backend)).toBe(b.requests);
    // Always on (no [scaling]): warm for the whole period; priced per GPU-hour from the config.
    const b8 = row('vllm-us-east-8b');
    expect(b8.warm_hours).toBeCloseTo(report.elapsedHours, 1);
    expect(b8.gpu_cost_usd).toBeCloseTo(b8.warm_hours! * 2, 1);
    expect(b8.projected_month_usd).toBeCloseTo(report.monthHours * 2, 2);
    expect(row('vllm-us-east-70b').projected_month_usd).toBeCloseTo(report.monthHours * 4 * 2.5, 2);
    expect(row('vllm-eu-west-8b').gpu_cost_usd).toBeNull(); // no usd_per_gpu_hour: not priced, and said so
    expect(fig(report.projection, 'GPU cost, month').value).toBeCloseTo(report.monthHours * (2 + 10), 1);
  });

  it('the CLI writes Markdown and HTML, each figure with its source', async () => {
    const config = join(dir, 'wrangler.toml');
    writeFileSync(config, stringify({ vars: { ROUTER: stack.router } }));
    const code = await main(['--router', stack.routerUrl, '--admin-token', stack.adminToken, '--config', config, '--out', dir]);
    expect(code).toBe(0);
    const month = periodOf(undefined).month;
    const md = readFileSync(join(dir, `finops-${month}.md`), 'utf8');
    const html = readFileSync(join(dir, `finops-${month}.html`), 'utf8');
    for (const h of ['## Requirements summary', '## Components', '## Cost projection for the month', '## Savings already made', '## Optimisation opportunities']) expect(md).toContain(h);
    expect(md).toContain('| requests this period | 13 |');
    expect(md).toContain('GET /admin/usage?group_by=');
    expect(html).toContain('<svg');
    expect(html).toContain('requests this period');
    expect(html).not.toMatch(/<script/i);
    expect(await main(['--router', stack.routerUrl, '--admin-token', 'wrong', '--config', config, '--out', dir])).toBe(2);
    expect(await main(['--router', stack.routerUrl, '--admin-token', stack.adminToken, '--config', config, '--month', '2026-13'])).toBe(2);
  });
});
