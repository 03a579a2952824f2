/**
 * `npm run bench -- cpu-profile`: where the router's isolate spends its CPU on the hot path
 * (issue 16 §2). One router per variant (VARIANTS below) on instant sims, with workerd's inspector
 * open; BENCH_PROFILE_VARIANTS=default,full picks some. Each is profiled over a c=8 load run; the table lists busy CPU per request (non-idle samples of
 * the isolate's thread, close to the CPU time Cloudflare bills) and the top functions by self time;
 * the raw profiles go to .dev/bench/cpu-profile-<variant>.cpuprofile (open them in Chrome DevTools).
 */
import { join } from 'node:path';
import type { RouterConfigInput } from '../../worker/config/schema';
import { DEV_DIR } from '../dev/paths';
import { startStack, type Stack } from '../dev/stack';
import { connectProfiler, type CpuSummary } from './lib/cpu-profile';
import { cpuSeconds, newWorkerdPids } from './lib/proc-cpu';
import { runLoad, type HttpTarget } from './lib/load';
import type { BenchSection, BenchTable } from './lib/section';
import { round } from './lib/stats';

/** On the fast tier: exact and semantic cache. */
const MODEL = 'llama-3.1-8b';
/** On the balanced tier: exact cache only. */
const MODEL_EXACT_ONLY = 'llama-3.1-70b';
const LIMITS = { key: { requests: 1e9, tokens: 1e12, window_s: 60 }, tenant: { requests: 1e9, window_s: 60 } };
const BUDGET = { monthly_tokens: 1e13, monthly_usd: 1e6, daily_tokens: 1e12 };

/**
 * default: the shipped config and the `overhead` request (no temperature: not cacheable).
 * limits / budget: that plus one feature. exact-cache / semantic: the shipped config with a new
 * prompt at temperature 0 per request, on the balanced tier (exact cache only) or the fast tier
 * (exact + semantic): both look up, miss, and store. full: all of it (the fast tier's request).
 */
export const VARIANTS = ['default', 'limits', 'budget', 'exact-cache', 'semantic', 'full'] as const;
export type Variant = (typeof VARIANTS)[number];

const withLimits = (r: RouterConfigInput): RouterConfigInput => ({ ...r, limits: { ...LIMITS, store: 'embedded', leases: true } });
const withBudget = (r: RouterConfigInput): RouterConfigInput => ({
  ...r,
  budgets: { ...r.budgets, enabled: true },
  tenants: { ...r.tenants, demo: { ...r.tenants?.demo, budget: BUDGET } },
});

/** Every feature on: limits (embedded, leased), a budget for tenant demo, caches as shipped. */
export function fullFeatures(r: RouterConfigInput): RouterConfigInput {
  return withBudget(withLimits(r));
}

const PATCH: Record<Variant, ((r: RouterConfigInput) => RouterConfigInput) | undefined> = {
  default: undefined,
  limits: withLimits,
  budget: withBudget,
  'exact-cache': undefined,
  semantic: undefined,
  full: fullFeatures,
};

let seq = 0;
/** The request for a variant: the cache variants and `full` send a new cacheable prompt each time (caches miss, then store). */
export function variantTarget(stack: Stack, v: Variant): HttpTarget {
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${stack.keys.demo}` };
  const url = `${stack.routerUrl}/v1/chat/completions`;
  if (v === 'default' || v === 'limits' || v === 'budget') {
    return { url, headers, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Reply with a short greeting.' }], max_tokens: 16 }) };
  }
  const model = v === 'exact-cache' ? MODEL_EXACT_ONLY : MODEL;
  const fresh = () => JSON.stringify({ model, messages: [{ role: 'user', content: `Reply with greeting number ${process.pid}-${++seq}.` }], max_tokens: 16, temperature: 0 });
  return { url, headers, body: fresh(), nextBody: fresh };
}

export const cpuProfile: BenchSection = {
  name: 'cpu-profile',
  description: "the router isolate's CPU per request and its hottest functions, default config and every feature on (workerd inspector)",
  async run(ctx) {
    const durationS = ctx.durationS ?? 10;
    const topN = Number(process.env.BENCH_PROFILE_TOP ?? 15);
    const wanted = process.env.BENCH_PROFILE_VARIANTS?.split(',') ?? VARIANTS;
    const variants = VARIANTS.filter((v) => wanted.includes(v));
    const out = {} as Record<Variant, CpuSummary>;
    const processUs = {} as Record<Variant, number>;
    for (const v of variants) {
      const inspectorPort = 20000 + Math.floor(Math.random() * 9000);
      const patch = PATCH[v];
      const started = await newWorkerdPids(() => startStack({ port: 0, ephemeralBackends: true, persist: false, simProfile: 'instant', directSocket: true, inspectorPort, ...(patch ? { configPatch: patch } : {}) }));
      const stack = started.value;
      try {
        const target = variantTarget(stack, v);
        await runLoad(target, 8, Math.max(1, Math.round(durationS / 3))); // warm-up: JIT, leases, key cache
        // The kernel's count first, without the profiler: workerd's CPU (every thread, the objects included) per request.
        const cpu0 = cpuSeconds(started.pids);
        const unprofiled = await runLoad(target, 8, durationS);
        processUs[v] = ((cpuSeconds(started.pids) - cpu0) * 1e6) / Math.max(1, unprofiled.requests);
        const profiler = await connectProfiler(inspectorPort, 'edge-router');
        try {
          await profiler.start();
          const load = await runLoad(target, 8, durationS);
          if (load.non_2xx + load.errors > 0) log(`WARNING ${v}: ${load.non_2xx} non-2xx, ${load.errors} errors`);
          out[v] = await profiler.stop(load.requests, { topN, saveTo: join(ctx.outDir, `cpu-profile-${v}.cpuprofile`), bundle: join(DEV_DIR, 'build', 'worker.js') });
        } finally {
          profiler.close();
        }
      } finally {
        await stack.close();
      }
      const s = out[v];
      log(`${v}: workerd process ${Math.round(processUs[v])} µs CPU per request; ${round(s.busy_ms_per_request, 3)} ms busy CPU per request (Worker ${round(s.worker_ms_per_request, 3)}, Durable Objects ${round(s.do_ms_per_request, 3)}) over ${s.requests} requests`);
    }
    return { tables: [summaryTable(variants, out, processUs), ...variants.filter((v) => v === 'default' || v === 'full').map((v) => buildTable(v, out[v]))], json: { date: new Date().toISOString(), duration_s: durationS, workerd_cpu_us_per_request: processUs, profiles: out } };
  },
};

/** CPU per request by variant, and what each adds to the default config's. */
function summaryTable(variants: readonly Variant[], out: Record<Variant, CpuSummary>, processUs: Record<Variant, number>): BenchTable {
  const ms = (x: number) => round(x, 3).toFixed(3);
  const base = out.default;
  const plus = (x: number, b: number | undefined) => (b === undefined ? '' : `${x - b >= 0 ? '+' : ''}${ms(x - b)}`);
  return {
    title: 'Router CPU per request by feature (ms; busy samples of the isolate thread, c=8, instant sim)',
    columns: ['variant', 'Worker', 'Worker vs default', 'Durable Objects', 'runtime', 'all busy', 'workerd CPU (kernel)', 'vs default', 'requests'],
    rows: variants.map((v) => {
      const s = out[v];
      return [v, ms(s.worker_ms_per_request), plus(s.worker_ms_per_request, base?.worker_ms_per_request), ms(s.do_ms_per_request), ms(s.by_owner_ms.runtime / Math.max(1, s.requests)), ms(s.busy_ms_per_request), ms(processUs[v]! / 1000), plus(processUs[v]! / 1000, processUs.default === undefined ? undefined : processUs.default / 1000), String(s.requests)];
    }),
    notes: [
      'Worker: samples whose outermost JS frame is the Worker\'s code (what Cloudflare bills the Worker, minus the runtime share). Durable Objects: the objects\' methods (billed to the objects). runtime: no JS frame (request plumbing, "(program)").',
      'Sampled profiles of one run each, on a shared machine: differences under ~0.03 ms are noise.',
      'workerd CPU (kernel): user + system time the kernel charged the router\'s workerd process (every thread: isolate, objects, I/O) over a separate unprofiled run of the same load, per request. It does not inflate when the machine is busy, as sampled busy time does.',
    ],
  };
}

function buildTable(v: Variant, s: CpuSummary): BenchTable {
  return {
    title: `Router CPU, ${v === 'default' ? 'default config' : 'every feature on (limits, budget, exact + semantic cache miss and store)'}: ${round(s.busy_ms_per_request, 3)} ms busy per request (Worker ${round(s.worker_ms_per_request, 3)} ms, Durable Objects ${round(s.do_ms_per_request, 3)} ms, runtime ${round(s.by_owner_ms.runtime / Math.max(1, s.requests), 3)} ms)`,
    columns: ['function', 'module', 'self ms/request', 'self %'],
    rows: s.top.map((t) => [t.fn, t.where, round(t.self_ms / Math.max(1, s.requests), 4).toFixed(4), `${round(t.self_pct, 1)}%`]),
    notes: [`${s.requests} requests at c=8; busy ${round(s.busy_ms, 0)} ms of ${round(s.wall_ms, 0)} ms sampled (GC ${round(s.gc_ms, 0)} ms); self time by function, inspector sampling every 100 µs.`, 'Worker / Durable Objects: by the outermost JS frame of each sample (the objects run in the same workerd process here; on Cloudflare their CPU is billed to the objects). runtime: samples with no JS frame.'],
  };
}

const log = (msg: string) => process.stderr.write(`  · ${msg}\n`);
