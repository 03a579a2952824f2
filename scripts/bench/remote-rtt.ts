/**
 * What the distance to the Durable Objects costs a request (issue 16). The local stack with the
 * distance model (worker/dev/remote-rtt.ts): every call from the Worker to a Durable Object or to
 * Upstash waits a round trip of 0, 40 or 120 ms, and every answer says how many remote calls the
 * request waited for (x-router-debug-remote-calls). The full pipeline is on: rate limits (key:
 * requests and tokens, tenant: requests, on the embedded limiter objects), a tenant budget, the
 * exact cache and the semantic cache (fast tier, DO index), usage records.
 *
 * Each request is a new prompt at temperature 0, so it looks up both caches, misses, goes upstream
 * (instant sim) and is stored: the longest path. One router per RTT, measured in interleaved slices
 * of sequential requests (c=1), so drift hits every RTT alike:
 *   - warm: the isolate has served this key, tenant and budget before;
 *   - cold: the isolate has just forgotten its views, leases and key cache (POST /__dev/forget-isolate,
 *     a fresh isolate's state; the objects stay warm, as they would be on Cloudflare).
 * Latency is measured by the client around each request (Node's fetch on loopback); "added" is the
 * difference to the RTT-0 router's figure.
 */
import os from 'node:os';
import type { RouterConfigInput } from '../../worker/config/schema';
import { startStack, type Stack } from '../dev/stack';
import type { BenchSection, BenchTable } from './lib/section';
import { percentile, round } from './lib/stats';

const RTTS = [0, 40, 120] as const;
type Rtt = (typeof RTTS)[number];
/** On the fast tier, which has the semantic cache. */
const MODEL = 'llama-3.1-8b';
/** On the balanced tier: exact cache only (the same path without the semantic lookup). */
const MODEL_NO_SEMANTIC = 'llama-3.1-70b';
const TENANT = 'acme';
/** Far above anything the bench sends: every request is admitted and counted. */
const LIMITS = { key: { requests: 1e9, tokens: 1e12, window_s: 60 }, tenant: { requests: 1e9, window_s: 60 } };
const BUDGET = { monthly_usd: 1e6 };
/** REMOTE_RTT_LEASES=off: the rate limiter called per request ([limits].leases = false), for the before/after comparison. */
const LEASES = process.env.REMOTE_RTT_LEASES !== 'off';
/** REMOTE_RTT_SEMANTIC=remote: one call to the semantic index per lookup ([cache.semantic].lookup = "remote"), for the before/after comparison. */
const SEMANTIC_LOOKUP = process.env.REMOTE_RTT_SEMANTIC === 'remote' ? 'remote' : 'local';

interface Sample {
  ms: number;
  waited: number;
  started: number;
  cache: string;
  status: number;
}

interface Summary {
  n: number;
  p50_ms: number;
  p99_ms: number;
  mean_ms: number;
  /** Mean remote calls waited for per request (x-router-debug-remote-calls). */
  sync_calls_mean: number;
  sync_calls_max: number;
  /** Share of requests that waited for at least one remote call. */
  sync_share: number;
  started_calls_mean: number;
  non_200: number;
  cache: Record<string, number>;
}

let seq = 0;

export const remoteRtt: BenchSection = {
  name: 'remote-rtt',
  description: 'the full pipeline (limits, budget, exact + semantic cache, usage) with a modelled round trip of 0/40/120 ms to every Durable Object and Upstash: added latency and remote calls waited for, warm and cold isolate',
  async run(ctx) {
    const warmPerSlice = ctx.smoke ? 10 : 100;
    const coldPerSlice = ctx.smoke ? 2 : 8;
    const slices = ctx.smoke ? 1 : 3;
    const stacks = {} as Record<Rtt, Stack>;
    try {
      for (const rtt of RTTS) {
        stacks[rtt] = await startStack({
          port: 0,
          ephemeralBackends: true,
          persist: false,
          simProfile: 'instant',
          directSocket: true,
          remoteRttMs: rtt,
          configPatch: (r: RouterConfigInput): RouterConfigInput => ({
            ...r,
            limits: { ...LIMITS, store: 'embedded', leases: LEASES },
            tenants: { ...r.tenants, [TENANT]: { ...r.tenants?.[TENANT], budget: BUDGET } },
            cache: { ...r.cache, semantic: { ...r.cache?.semantic, lookup: SEMANTIC_LOOKUP } },
          }),
        });
      }
      const warm = emptyRuns();
      const cold = emptyRuns();
      const exactOnly = emptyRuns();
      const semanticHit = emptyRuns();
      for (const rtt of RTTS) {
        const s = await one(stacks[rtt], rtt);
        if (s.status !== 200) throw new Error(`RTT ${rtt}: the router answered ${s.status}`);
        for (let i = 0; i < 20; i++) await one(stacks[rtt], rtt); // warm-up
      }
      for (let slice = 0; slice < slices; slice++) {
        log(`slice ${slice + 1}/${slices}: ${warmPerSlice} warm + ${coldPerSlice} cold requests per RTT`);
        for (const rtt of RTTS) {
          const stored: string[] = [];
          for (let i = 0; i < warmPerSlice; i++) warm[rtt].push(await one(stacks[rtt], rtt, MODEL, undefined, stored));
          for (let i = 0; i < warmPerSlice; i++) exactOnly[rtt].push(await one(stacks[rtt], rtt, MODEL_NO_SEMANTIC));
          // Paraphrases of this slice's warm prompts (stored by now): exact miss, semantic hit.
          for (const id of stored) semanticHit[rtt].push(await one(stacks[rtt], rtt, MODEL, `bench request ${id} reply with a short greeting`));
          for (let i = 0; i < coldPerSlice; i++) {
            await forget(stacks[rtt]);
            cold[rtt].push(await one(stacks[rtt], rtt));
            // Let the cold request's background work (lease renewals, reports) land before the next.
            await new Promise((resolve) => setTimeout(resolve, 2 * rtt + 50));
          }
          // And before the warm requests of the next slice.
          await new Promise((resolve) => setTimeout(resolve, 2 * rtt + 50));
        }
      }
      const summary = {
        warm: Object.fromEntries(RTTS.map((rtt) => [rtt, summarize(warm[rtt])])) as Record<Rtt, Summary>,
        cold: Object.fromEntries(RTTS.map((rtt) => [rtt, summarize(cold[rtt])])) as Record<Rtt, Summary>,
        'warm, no semantic tier': Object.fromEntries(RTTS.map((rtt) => [rtt, summarize(exactOnly[rtt])])) as Record<Rtt, Summary>,
        'warm, semantic hit': Object.fromEntries(RTTS.map((rtt) => [rtt, summarize(semanticHit[rtt])])) as Record<Rtt, Summary>,
      };
      const json = {
        date: new Date().toISOString(),
        machine: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, node: process.version, loadavg_1m: os.loadavg()[0] },
        setup: { model: MODEL, tenant: TENANT, limits: LIMITS, rate_limit_leases: LEASES, semantic_lookup: SEMANTIC_LOOKUP, budget: BUDGET, caches: 'exact (Cache API) + semantic (fast tier, SemanticIndex DO)', sim_profile: 'instant', slices, warm_per_slice: warmPerSlice, cold_per_slice: coldPerSlice },
        ...summary,
        added: Object.fromEntries(
          RTTS.map((rtt) => [
            rtt,
            {
              warm_p50_ms: summary.warm[rtt].p50_ms - summary.warm[0].p50_ms,
              warm_p99_ms: summary.warm[rtt].p99_ms - summary.warm[0].p99_ms,
              cold_p50_ms: summary.cold[rtt].p50_ms - summary.cold[0].p50_ms,
              cold_p99_ms: summary.cold[rtt].p99_ms - summary.cold[0].p99_ms,
            },
          ]),
        ),
      };
      return { tables: [table(summary)], json };
    } finally {
      for (const rtt of RTTS) await stacks[rtt]?.close();
    }
  },
};

function emptyRuns(): Record<Rtt, Sample[]> {
  return Object.fromEntries(RTTS.map((r) => [r, [] as Sample[]])) as Record<Rtt, Sample[]>;
}

/** One request: a new prompt (its id pushed to `ids`), or `content` as given. */
async function one(stack: Stack, rtt: Rtt, model = MODEL, content?: string, ids?: string[]): Promise<Sample> {
  const id = `${rtt}-${seq++}-${Math.random().toString(36).slice(2).replace(/\d/g, '')}`;
  ids?.push(id);
  const body = JSON.stringify({ model, temperature: 0, max_tokens: 16, messages: [{ role: 'user', content: content ?? `Bench request ${id}: reply with a short greeting.` }] });
  const t0 = performance.now();
  const res = await fetch(`${stack.routerUrl}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${stack.keys[TENANT]}` }, body });
  await res.arrayBuffer();
  const ms = performance.now() - t0;
  const waited = Number(res.headers.get('x-router-debug-remote-calls'));
  const started = Number(res.headers.get('x-router-debug-remote-calls-started'));
  if (!Number.isFinite(waited) || res.headers.get('x-router-debug-remote-calls') === null) throw new Error('no x-router-debug-remote-calls header: the stack is not running the distance model');
  return { ms, waited, started, cache: res.headers.get('x-router-cache') ?? 'none', status: res.status };
}

async function forget(stack: Stack): Promise<void> {
  const res = await fetch(`${stack.routerUrl}/__dev/forget-isolate`, { method: 'POST', headers: { authorization: `Bearer ${stack.adminToken}` } });
  if (res.status !== 204) throw new Error(`forget-isolate answered ${res.status}`);
}

function summarize(samples: Sample[]): Summary {
  const ms = samples.map((s) => s.ms);
  const cache: Record<string, number> = {};
  for (const s of samples) cache[s.cache] = (cache[s.cache] ?? 0) + 1;
  const mean = (f: (s: Sample) => number) => samples.reduce((n, s) => n + f(s), 0) / Math.max(1, samples.length);
  return {
    n: samples.length,
    p50_ms: percentile(ms, 50),
    p99_ms: percentile(ms, 99),
    mean_ms: mean((s) => s.ms),
    sync_calls_mean: mean((s) => s.waited),
    sync_calls_max: Math.max(...samples.map((s) => s.waited)),
    sync_share: mean((s) => (s.waited > 0 ? 1 : 0)),
    started_calls_mean: mean((s) => s.started),
    non_200: samples.filter((s) => s.status !== 200).length,
    cache,
  };
}

function table(s: { warm: Record<Rtt, Summary>; cold: Record<Rtt, Summary>; 'warm, no semantic tier': Record<Rtt, Summary>; 'warm, semantic hit': Record<Rtt, Summary> }): BenchTable {
  const ms = (x: number) => `${round(x, 2).toFixed(2)} ms`;
  const plus = (d: number) => `${d >= 0 ? '+' : ''}${round(d, 2).toFixed(2)} ms`;
  const rows: string[][] = [];
  for (const kind of ['warm', 'warm, semantic hit', 'warm, no semantic tier', 'cold'] as const) {
    for (const rtt of RTTS) {
      const x = s[kind][rtt];
      const base = s[kind][0];
      rows.push([
        `${kind}, RTT ${rtt} ms`,
        String(x.n),
        ms(x.p50_ms),
        plus(x.p50_ms - base.p50_ms),
        ms(x.p99_ms),
        plus(x.p99_ms - base.p99_ms),
        rtt === 0 ? '-' : round((x.p50_ms - base.p50_ms) / rtt, 2).toFixed(2),
        round(x.sync_calls_mean, 2).toFixed(2),
        String(x.sync_calls_max),
        `${Math.round(x.sync_share * 100)}%`,
        round(x.started_calls_mean, 2).toFixed(2),
      ]);
    }
  }
  const bad = RTTS.some((r) => s.warm[r].non_200 + s.cold[r].non_200 + s['warm, no semantic tier'][r].non_200 + s['warm, semantic hit'][r].non_200 > 0);
  const caches = Object.entries(s.warm[120].cache).map(([k, n]) => `${k} ${n}`).join(', ');
  const hitCaches = Object.entries(s['warm, semantic hit'][120].cache).map(([k, n]) => `${k} ${n}`).join(', ');
  return {
    title: `Remote round trips on the full pipeline (limits ${LEASES ? 'by leases' : 'per request, leases off'}, budget, exact + semantic cache (lookup ${SEMANTIC_LOOKUP}), usage; instant sim, c=1, ${os.cpus().length} cores)`,
    columns: ['isolate, RTT', 'n', 'p50', 'added p50', 'p99', 'added p99', 'round trips on the path (added p50 ÷ RTT)', 'sync calls/req', 'max', 'reqs waiting', 'calls started/req'],
    rows,
    notes: [
      'RTT: the modelled round trip of every Worker → Durable Object / Upstash call (worker/dev/remote-rtt.ts); "added" is against the same isolate state at RTT 0.',
      'sync calls: remote calls that had completed when the response was returned; an upper bound of those the request waited for (a background call that finishes first, e.g. a lease top-up during a later wait, counts too). Round trips on the path: the added median over the RTT, the direct measure. calls started: background work included.',
      `Every request is a new prompt at temperature 0 (both caches looked up, missed, stored). x-router-cache at RTT 120, warm: ${caches}.`,
      `"semantic hit": a paraphrase of each of the slice's warm prompts, sent after them (exact miss, semantic hit). x-router-cache at RTT 120: ${hitCaches}.`,
      `"no semantic tier": the same requests for ${MODEL_NO_SEMANTIC} (balanced tier: exact cache only), interleaved with the others on the same routers.`,
      'cold: POST /__dev/forget-isolate before the request (views, leases, key cache forgotten; the objects stay warm).',
      ...(bad ? ['WARNING: some requests were not answered 200: see the JSON.'] : []),
    ],
  };
}

const log = (msg: string) => process.stderr.write(`  · ${msg}\n`);
