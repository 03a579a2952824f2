/**
 * The exact response cache at the edge: latency of a hit against a miss and against the same
 * request with the cache bypassed, on the embedded store (Workers Cache API) and on Upstash
 * Redis (a real redis-server behind the local Upstash REST bridge, loopback). The simulators run
 * the `dev` profile (an 8B model's TTFT and inter-token latency), so a miss pays a GPU-shaped
 * answer and a hit shows what the cache saves.
 *
 * Each sample is one sequential request (c=1) from a keep-alive fetch client:
 *   - hit:    one fixed temperature-0 request, primed once, then repeated;
 *   - miss:   a temperature-0 request made unique by a counter (lookup, upstream, store);
 *   - bypass: the fixed request with `x-router-cache: bypass` (no lookup, no store).
 * Variants are interleaved in rounds so that drift hits all alike.
 */
import os from 'node:os';
import type { RouterConfigInput } from '../../worker/config/schema';
import { startStack, type Stack } from '../dev/stack';
import type { BenchSection, BenchTable } from './lib/section';
import { percentile, round } from './lib/stats';
import { startLocalUpstash, type LocalUpstash } from './lib/upstash';

const MODEL = 'llama-3.1-8b';
const MAX_TOKENS = 16;
const KINDS = ['hit', 'miss', 'bypass'] as const;
type Kind = (typeof KINDS)[number];
/** The shared store, with and without the isolate's memory tier in front ([cache].memory_bytes). */
const STORES = ['memory+cache-api', 'cache-api', 'memory+upstash', 'upstash'] as const;
type Store = (typeof STORES)[number];

interface Sample {
  n: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  mean_ms: number;
  /** Answers whose x-router-cache was not the expected one (must be 0). */
  unexpected: number;
}

export const cache: BenchSection = {
  name: 'cache',
  description: 'exact-cache hit latency vs a miss and a bypass, Cache API and Upstash stores (dev sim)',
  async run(ctx) {
    const rounds = Math.max(2, Math.round((ctx.durationS ?? 10) / 2));
    const perRound = Number(process.env.BENCH_CACHE_N ?? (ctx.smoke ? 5 : 40));
    let upstash: LocalUpstash | undefined;
    const stacks: Partial<Record<Store, Stack>> = {};
    try {
      upstash = await startLocalUpstash();
      const base = { port: 0, ephemeralBackends: true, persist: false as const, simProfile: 'dev' as const, directSocket: true };
      const up = upstash;
      for (const s of STORES) {
        const onUpstash = s.endsWith('upstash');
        const memory = s.startsWith('memory+');
        stacks[s] = await startStack({
          ...base,
          ...(onUpstash ? { secrets: { UPSTASH_REDIS_REST_TOKEN: up.token } } : {}),
          configPatch: (r: RouterConfigInput) => ({
            ...r,
            cache: { ...r.cache, store: onUpstash ? 'upstash' : 'cache-api', ...(memory ? {} : { memory_bytes: 0 }) },
            ...(onUpstash ? { upstash: { ...r.upstash, redis_url: up.url, key_prefix: `bench-${s}-${Date.now()}:` } } : {}),
          }),
        });
      }

      const samples = {} as Record<Store, Record<Kind, number[]>>;
      const unexpected = {} as Record<Store, Record<Kind, number>>;
      for (const s of STORES) {
        samples[s] = { hit: [], miss: [], bypass: [] };
        unexpected[s] = { hit: 0, miss: 0, bypass: 0 };
        // Prime the hit entry, and warm the isolate and the connections.
        await timed(stacks[s]!, fixedBody(), {});
        await new Promise((r) => setTimeout(r, 300)); // the store write runs after the response
        for (let i = 0; i < 5; i++) await timed(stacks[s]!, fixedBody(), {});
      }
      let unique = 0;
      log(`${rounds} rounds × ${perRound} requests per store and kind (c=1)`);
      for (let r = 0; r < rounds; r++) {
        for (const s of STORES) {
          for (const kind of KINDS) {
            for (let i = 0; i < perRound; i++) {
              const body = kind === 'miss' ? uniqueBody(`${Date.now()}-${unique++}`) : fixedBody();
              const headers: Record<string, string> = kind === 'bypass' ? { 'x-router-cache': 'bypass' } : {};
              const { ms, status } = await timed(stacks[s]!, body, headers);
              samples[s][kind].push(ms);
              if (status !== kind) unexpected[s][kind]++;
            }
          }
        }
      }
      const summary = {} as Record<Store, Record<Kind, Sample>>;
      for (const s of STORES) {
        summary[s] = {} as Record<Kind, Sample>;
        for (const k of KINDS) summary[s][k] = summarize(samples[s][k], unexpected[s][k]);
      }
      const json = {
        date: new Date().toISOString(),
        machine: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, node: process.version, loadavg_1m: os.loadavg()[0] },
        setup: { model: MODEL, max_tokens: MAX_TOKENS, sim_profile: 'dev', rounds, per_round: perRound, upstash: 'redis-server behind the local Upstash REST bridge (loopback)' },
        results: summary,
      };
      return { tables: [table(summary)], json };
    } finally {
      for (const s of STORES) await stacks[s]?.close();
      await upstash?.close();
    }
  },
};

const fixedBody = () => JSON.stringify({ model: MODEL, temperature: 0, max_tokens: MAX_TOKENS, messages: [{ role: 'user', content: 'Name three primary colours.' }] });
const uniqueBody = (tag: string) =>
  JSON.stringify({ model: MODEL, temperature: 0, max_tokens: MAX_TOKENS, messages: [{ role: 'user', content: `Name three primary colours. (request ${tag})` }] });

async function timed(stack: Stack, body: string, extra: Record<string, string>): Promise<{ ms: number; status: string }> {
  const started = performance.now();
  const res = await fetch(`${stack.routerUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${stack.keys.demo}`, ...extra },
    body,
  });
  await res.arrayBuffer();
  const ms = performance.now() - started;
  if (res.status !== 200) throw new Error(`router answered ${res.status}`);
  return { ms, status: res.headers.get('x-router-cache') ?? 'none' };
}

function summarize(xs: number[], unexpected: number): Sample {
  return {
    n: xs.length,
    p50_ms: percentile(xs, 50),
    p90_ms: percentile(xs, 90),
    p99_ms: percentile(xs, 99),
    mean_ms: xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length),
    unexpected,
  };
}

function table(r: Record<Store, Record<Kind, Sample>>): BenchTable {
  const ms = (x: number) => `${round(x, 2).toFixed(2)} ms`;
  const rows: string[][] = [];
  for (const s of STORES) {
    for (const k of KINDS) rows.push([s, k, ms(r[s][k].p50_ms), ms(r[s][k].p99_ms), ms(r[s][k].mean_ms), String(r[s][k].n), String(r[s][k].unexpected)]);
  }
  const ratio = (s: Store) => round(r[s].miss.p50_ms / r[s].hit.p50_ms, 1);
  const notes = STORES.map((s) => `${s}: a hit is ${ratio(s)}x faster than a miss at p50; the lookup adds ${ms(r[s].miss.p50_ms - r[s].bypass.p50_ms)} to a miss (miss − bypass, p50).`);
  return {
    title: `Exact response cache at the edge (${MODEL}, dev sim, max_tokens ${MAX_TOKENS}, c=1, ${os.cpus().length} cores)`,
    columns: ['store', 'request', 'p50', 'p99', 'mean', 'n', 'unexpected x-router-cache'],
    rows,
    notes: [
      ...notes,
      'Upstash here is a local redis-server behind the REST bridge (no WAN hop): real Upstash adds its round trip (typically 1-10 ms in-region) to every shared-store lookup, which the memory tier saves on hot keys. Store writes run after the response (waitUntil).',
      'Interleaved rounds; client, router and simulators share the machine, so compare within this run only.',
    ],
  };
}

const log = (msg: string) => process.stderr.write(`  · ${msg}\n`);
