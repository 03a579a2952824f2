/**
 * What circuit breakers and budgets add to a healthy request: the same non-streamed chat
 * completion through three routers that differ only in config, each with its own instant
 * simulators (the `overhead` section's setup):
 *   - off:      [breaker] enabled = false, [budgets] enabled = false
 *   - breakers: breakers on, the tenant has no budget
 *   - both:     breakers on, and the tenant has a budget far from its limits (tokens and USD),
 *               so requests spend a leased slice locally and report usage in the background
 * Latency at c=1 (p50, p99) and throughput at c=32 with autocannon. One run per variant, cut
 * in SLICES interleaved slices (off, breakers, both, off, …) so drift hits every variant alike.
 * A second table isolates budgets inside one router: in the "both" router, tenant demo has
 * the budget and tenant acme has none.
 */
import os from 'node:os';
import type { RouterConfigInput } from '../../worker/config/schema';
import { startStack, type Stack } from '../dev/stack';
import { interleaved, runLoad, SLICES, type HttpTarget, type LoadResult } from './lib/load';
import type { BenchSection, BenchTable } from './lib/section';
import { round } from './lib/stats';

const BACKEND = 'vllm-us-east-8b';
const MODEL = 'llama-3.1-8b';
const MESSAGES = [{ role: 'user', content: 'Reply with a short greeting.' }];
const AIM_ADDED_P50_MS = 0.2;

const VARIANTS = ['off', 'breakers', 'both'] as const;
type Variant = (typeof VARIANTS)[number];
type ByVariant<T> = Record<Variant, T>;

const LABEL: ByVariant<string> = { off: 'both off', breakers: 'breakers', both: 'breakers + budgets' };

function patch(variant: Variant) {
  return (router: RouterConfigInput): RouterConfigInput => {
    const on = variant !== 'off';
    const tenants = { ...router.tenants };
    if (variant === 'both') tenants.demo = { ...tenants.demo, budget: { monthly_tokens: 1e13, monthly_usd: 1e6, daily_tokens: 1e12 } };
    return { ...router, breaker: { ...router.breaker, enabled: on }, budgets: { ...router.budgets, enabled: variant === 'both' }, tenants };
  };
}

export const budgetOverhead: BenchSection = {
  name: 'budget-overhead',
  description: 'added latency of breakers and budgets on a healthy path vs both switched off (instant sim)',
  async run(ctx) {
    const durationS = ctx.durationS ?? 10;
    const warmS = Math.max(1, Math.min(3, Math.round(durationS / 3)));
    const stacks = {} as ByVariant<Stack>;
    try {
      for (const v of VARIANTS) {
        stacks[v] = await startStack({ port: 0, ephemeralBackends: true, persist: false, simProfile: 'instant', directSocket: true, configPatch: patch(v) });
      }
      const target = (v: Variant): HttpTarget => ({
        url: `${stacks[v].routerUrl}/v1/chat/completions`,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${stacks[v].keys.demo}` },
        body: JSON.stringify({ model: MODEL, messages: MESSAGES, max_tokens: 16 }),
      });
      for (const v of VARIANTS) await check(target(v), v);

      log(`warm-up ${warmS} s each`);
      for (const v of VARIANTS) await runLoad(target(v), 8, warmS);
      const slices = ctx.smoke ? 1 : SLICES;
      const slice = Math.max(1, durationS / slices);
      const lat = await step(`latency c=1, ${slices} × ${slice} s per variant`, () => interleaved(VARIANTS, target, 1, slice, slices));
      const thr = await step(`throughput c=32, ${slices} × ${slice} s per variant`, () => interleaved(VARIANTS, target, 32, slice, slices));
      // Same router, same isolate: the budgeted tenant against one without a budget.
      const tenants = ['acme', 'demo'] as const;
      const byTenant = (k: (typeof tenants)[number]): HttpTarget => ({ ...target('both'), headers: { 'content-type': 'application/json', authorization: `Bearer ${stacks.both.keys[k]}` } });
      const tLat = await step('same router: latency c=1, tenant without / with a budget', () => interleaved(tenants, byTenant, 1, slice, slices));
      const tThr = await step('same router: throughput c=32, tenant without / with a budget', () => interleaved(tenants, byTenant, 32, slice, slices));
      // The budget really was counted (and not refused): the tenant's object saw the requests.
      const usage = await budgetUsage(stacks.both);

      const added = (v: Variant) => ({
        p50_ms: lat[v].latency_ms.p50 - lat.off.latency_ms.p50,
        p99_ms: lat[v].latency_ms.p99 - lat.off.latency_ms.p99,
        throughput_ratio: thr[v].req_per_s / thr.off.req_per_s,
      });
      const json = {
        date: new Date().toISOString(),
        machine: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, node: process.version, platform: `${os.platform()} ${os.release()}`, loadavg_1m: os.loadavg()[0] },
        setup: { backend: BACKEND, model: MODEL, sim_profile: 'instant', max_tokens: 16, duration_s: durationS, warmup_s: warmS, variants: LABEL },
        latency_c1: lat,
        throughput_c32: thr,
        added: { breakers: added('breakers'), both: added('both') },
        same_router: {
          latency_c1: { without_budget: tLat.acme, with_budget: tLat.demo },
          throughput_c32: { without_budget: tThr.acme, with_budget: tThr.demo },
          added_p50_ms: tLat.demo.latency_ms.p50 - tLat.acme.latency_ms.p50,
          throughput_ratio: tThr.demo.req_per_s / tThr.acme.req_per_s,
        },
        budget_object: usage,
        aims: { added_p50_below_ms: AIM_ADDED_P50_MS, added_p50_met: added('both').p50_ms < AIM_ADDED_P50_MS },
      };
      return { tables: [table(lat, thr, usage), tenantTable(tLat, tThr)], json };
    } finally {
      for (const v of VARIANTS) await stacks[v]?.close();
    }
  },
};

function table(lat: ByVariant<LoadResult>, thr: ByVariant<LoadResult>, usage: Record<string, unknown>): BenchTable {
  const ms = (x: number) => `${round(x, 3).toFixed(3)} ms`;
  const plus = (d: number) => `${d >= 0 ? '+' : ''}${round(d, 3).toFixed(3)} ms`;
  const rps = (x: number) => `${Math.round(x).toLocaleString('en-US')} req/s`;
  const msRow = (label: string, get: (v: Variant) => number) => [label, ...VARIANTS.map((v) => ms(get(v))), plus(get('breakers') - get('off')), plus(get('both') - get('off'))];
  const rpsRow = (label: string, get: (v: Variant) => number) => [label, ...VARIANTS.map((v) => rps(get(v))), `x${round(get('breakers') / get('off'), 3)}`, `x${round(get('both') / get('off'), 3)}`];
  const addedP50 = lat.both.latency_ms.p50 - lat.off.latency_ms.p50;
  const failed = VARIANTS.some((v) => lat[v].non_2xx + lat[v].errors + thr[v].non_2xx + thr[v].errors > 0);
  return {
    title: `Breakers and budgets on a healthy path (${BACKEND}, instant sim, ${os.cpus().length} cores)`,
    columns: ['metric', LABEL.off, LABEL.breakers, LABEL.both, 'added: breakers', 'added: both'],
    rows: [
      msRow('latency p50, c=1', (v) => lat[v].latency_ms.p50),
      msRow('latency p99, c=1', (v) => lat[v].latency_ms.p99),
      rpsRow('requests/s, c=1', (v) => lat[v].req_per_s),
      rpsRow('throughput, c=32', (v) => thr[v].req_per_s),
      msRow('latency p50, c=32', (v) => thr[v].latency_ms.p50),
      msRow('latency p99, c=32', (v) => thr[v].latency_ms.p99),
    ],
    notes: [
      `Each column is its own router and simulators, same config but for [breaker].enabled, [budgets].enabled and the tenant budget; one run each, in ${SLICES} interleaved slices (percentiles: mean of the slices').`,
      `Budget object after the runs: used_tokens ${String(usage.used_tokens)}, reserved_tokens ${String(usage.reserved_tokens)}, state ${String(usage.state)} (requests counted, none refused).`,
      `aim: breakers + budgets add < ${AIM_ADDED_P50_MS} ms at p50: ${addedP50 < AIM_ADDED_P50_MS ? 'met' : 'not met'} (${plus(addedP50)}).`,
      `Differences of a few hundredths of a ms are within run-to-run noise here (client, sims and three workerd share ${os.cpus().length} cores; 1-min load ${os.loadavg()[0]!.toFixed(1)}).`,
      ...(failed ? ['WARNING: some runs had non-2xx answers or errors: see the JSON.'] : []),
    ],
  };
}

function tenantTable(lat: Record<'acme' | 'demo', LoadResult>, thr: Record<'acme' | 'demo', LoadResult>): BenchTable {
  const ms = (x: number) => `${round(x, 3).toFixed(3)} ms`;
  const plus = (d: number) => `${d >= 0 ? '+' : ''}${round(d, 3).toFixed(3)} ms`;
  const rps = (x: number) => `${Math.round(x).toLocaleString('en-US')} req/s`;
  return {
    title: 'Budgets alone, same router (breakers on): a tenant without a budget vs one with',
    columns: ['metric', 'no budget (acme)', 'budget (demo)', 'added'],
    rows: [
      ['latency p50, c=1', ms(lat.acme.latency_ms.p50), ms(lat.demo.latency_ms.p50), plus(lat.demo.latency_ms.p50 - lat.acme.latency_ms.p50)],
      ['latency p99, c=1', ms(lat.acme.latency_ms.p99), ms(lat.demo.latency_ms.p99), plus(lat.demo.latency_ms.p99 - lat.acme.latency_ms.p99)],
      ['throughput, c=32', rps(thr.acme.req_per_s), rps(thr.demo.req_per_s), `x${round(thr.demo.req_per_s / thr.acme.req_per_s, 3)}`],
      ['latency p99, c=32', ms(thr.acme.latency_ms.p99), ms(thr.demo.latency_ms.p99), plus(thr.demo.latency_ms.p99 - thr.acme.latency_ms.p99)],
    ],
    notes: [
      "The tenant's budget object runs in the same workerd process here, on the same 2 cores; on Cloudflare it runs elsewhere, so its work (one batched report per second or per report_max_batch requests) costs the edge less than this.",
    ],
  };
}


async function check(t: HttpTarget, v: Variant): Promise<void> {
  const res = await fetch(t.url, { method: 'POST', headers: t.headers, body: t.body });
  const text = await res.text();
  const got = res.headers.get('x-router-backend');
  if (res.status !== 200 || got !== BACKEND) throw new Error(`${LABEL[v]}: router answered ${res.status} via ${got ?? '?'}, expected 200 via ${BACKEND}: ${text.slice(0, 300)}`);
}

async function budgetUsage(stack: Stack): Promise<Record<string, unknown>> {
  // Reports go out at most every report_interval_ms (1 s by default).
  await new Promise((r) => setTimeout(r, 1_500));
  const res = await fetch(`${stack.routerUrl}/admin/tenants/demo/budget`, { headers: { authorization: `Bearer ${stack.adminToken}` } });
  if (!res.ok) throw new Error(`GET /admin/tenants/demo/budget: ${res.status} ${await res.text()}`);
  const b = (await res.json()) as Record<string, unknown>;
  return { used_tokens: b.used_tokens, used_usd: b.used_usd, reserved_tokens: b.reserved_tokens, state: b.state, leases: b.leases };
}

async function step<T>(what: string, fn: () => Promise<T>): Promise<T> {
  log(what);
  return fn();
}

const log = (msg: string) => process.stderr.write(`  · ${msg}\n`);
