/**
 * What usage recording adds to a healthy request: the same non-streamed chat completion through
 * two routers that differ only in [usage].enabled (each with its own instant simulators), one
 * run each in interleaved slices (lib/load.ts's `interleaved`). Latency at c=1 (p50, p99)
 * and throughput at c=32 with autocannon. Both build every request's record (/metrics counts it
 * either way); with usage on, it also goes to the isolate's batch for the tenant's UsageLedger
 * (written in waitUntil, off the hot path), so the difference is the sinks' cost. The ledger's row
 * count afterwards shows the records really were written.
 */
import os from 'node:os';
import type { RouterConfigInput } from '../../worker/config/schema';
import { startStack, type Stack } from '../dev/stack';
import { interleaved, runLoad, type HttpTarget, type LoadResult } from './lib/load';
import type { BenchSection, BenchTable } from './lib/section';
import { round } from './lib/stats';

const MODEL = 'llama-3.1-8b';
const MESSAGES = [{ role: 'user', content: 'Reply with a short greeting.' }];
const AIM_ADDED_P50_MS = 0.2;
const VARIANTS = ['off', 'on'] as const;
type Variant = (typeof VARIANTS)[number];

const patch = (v: Variant) => (router: RouterConfigInput): RouterConfigInput => ({ ...router, usage: { ...router.usage, enabled: v === 'on' } });

export const usageOverhead: BenchSection = {
  name: 'usage-overhead',
  description: 'added latency of usage records (ledger batch in waitUntil) on a healthy path vs [usage] off (instant sim)',
  async run(ctx) {
    const durationS = ctx.durationS ?? 10;
    const warmS = Math.max(1, Math.min(3, Math.round(durationS / 3)));
    const stacks = {} as Record<Variant, Stack>;
    try {
      for (const v of VARIANTS) stacks[v] = await startStack({ port: 0, ephemeralBackends: true, persist: false, simProfile: 'instant', directSocket: true, configPatch: patch(v) });
      const target = (v: Variant): HttpTarget => ({
        url: `${stacks[v].routerUrl}/v1/chat/completions`,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${stacks[v].keys.demo}` },
        body: JSON.stringify({ model: MODEL, messages: MESSAGES, max_tokens: 16 }),
      });
      log(`warm-up ${warmS} s each`);
      for (const v of VARIANTS) await runLoad(target(v), 8, warmS);
      const slices = ctx.smoke ? 1 : 3;
      const slice = Math.max(1, durationS / slices);
      log(`latency c=1, ${slices} × ${slice} s per variant`);
      const lat = await interleaved(VARIANTS, target, 1, slice, slices);
      log(`throughput c=32, ${slices} × ${slice} s per variant`);
      const thr = await interleaved(VARIANTS, target, 32, slice, slices);
      const ledgerRows = await rowsIn(stacks.on);
      const sent = lat.on.requests + thr.on.requests;
      const addedP50 = lat.on.latency_ms.p50 - lat.off.latency_ms.p50;
      const json = {
        date: new Date().toISOString(),
        machine: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, node: process.version, loadavg_1m: os.loadavg()[0] },
        setup: { model: MODEL, sim_profile: 'instant', max_tokens: 16, duration_s: durationS, warmup_s: warmS },
        latency_c1: lat,
        throughput_c32: thr,
        added: { p50_ms: addedP50, p99_ms: lat.on.latency_ms.p99 - lat.off.latency_ms.p99, throughput_ratio: thr.on.req_per_s / thr.off.req_per_s },
        ledger: { measured_requests: sent, rows_in_range: ledgerRows },
        aims: { added_p50_below_ms: AIM_ADDED_P50_MS, added_p50_met: addedP50 < AIM_ADDED_P50_MS },
      };
      return { tables: [table(lat, thr, sent, ledgerRows)], json };
    } finally {
      for (const v of VARIANTS) await stacks[v]?.close();
    }
  },
};

function table(lat: Record<Variant, LoadResult>, thr: Record<Variant, LoadResult>, sent: number, rows: number): BenchTable {
  const ms = (x: number) => `${round(x, 3).toFixed(3)} ms`;
  const plus = (d: number) => `${d >= 0 ? '+' : ''}${round(d, 3).toFixed(3)} ms`;
  const rps = (x: number) => `${Math.round(x).toLocaleString('en-US')} req/s`;
  const addedP50 = lat.on.latency_ms.p50 - lat.off.latency_ms.p50;
  const failed = VARIANTS.some((v) => lat[v].non_2xx + lat[v].errors + thr[v].non_2xx + thr[v].errors > 0);
  return {
    title: `Usage records on a healthy path (instant sim, ${os.cpus().length} cores)`,
    columns: ['metric', 'usage off', 'usage on', 'added'],
    rows: [
      ['latency p50, c=1', ms(lat.off.latency_ms.p50), ms(lat.on.latency_ms.p50), plus(addedP50)],
      ['latency p99, c=1', ms(lat.off.latency_ms.p99), ms(lat.on.latency_ms.p99), plus(lat.on.latency_ms.p99 - lat.off.latency_ms.p99)],
      ['throughput, c=32', rps(thr.off.req_per_s), rps(thr.on.req_per_s), `x${round(thr.on.req_per_s / thr.off.req_per_s, 3)}`],
      ['latency p99, c=32', ms(thr.off.latency_ms.p99), ms(thr.on.latency_ms.p99), plus(thr.on.latency_ms.p99 - thr.off.latency_ms.p99)],
    ],
    notes: [
      'Two routers, same config but [usage].enabled; one run each in 3 interleaved slices (percentiles: mean of the slices\').',
      `Ledger rows for tenant demo after the runs: ${rows} (measured requests with usage on: ${sent}; warm-up requests are counted too).`,
      `aim: usage adds no measurable p50 (< ${AIM_ADDED_P50_MS} ms): ${addedP50 < AIM_ADDED_P50_MS ? 'met' : 'not met'} (${plus(addedP50)}).`,
      'The ledger objects run in the same workerd process here, on the same cores; on Cloudflare they run elsewhere.',
      ...(failed ? ['WARNING: some runs had non-2xx answers or errors: see the JSON.'] : []),
    ],
  };
}

async function rowsIn(stack: Stack): Promise<number> {
  await new Promise((r) => setTimeout(r, 1_000)); // the last batches flush within flush_interval_ms
  const res = await fetch(`${stack.routerUrl}/admin/usage?tenant=demo&from=${Date.now() - 3_600_000}`, { headers: { authorization: `Bearer ${stack.adminToken}` } });
  if (!res.ok) throw new Error(`GET /admin/usage: ${res.status} ${await res.text()}`);
  const { rows } = (await res.json()) as { rows: { requests: number }[] };
  return rows.reduce((n, r) => n + r.requests, 0);
}

const log = (msg: string) => process.stderr.write(`  · ${msg}\n`);
