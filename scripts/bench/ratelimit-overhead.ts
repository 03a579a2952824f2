/**
 * What rate limits add to a healthy request: the same non-streamed chat completion through
 * three routers that differ only in [limits], each with its own instant simulators:
 *   - off:      no limit configured (the check is a map lookup, no I/O)
 *   - embedded: per key (requests and tokens) and per tenant (requests), far above the load,
 *               on the RateLimiter Durable Objects, decided from leased slices ([limits].leases):
 *               a warm request makes no call; slices are topped up and returned in the background
 *   - upstash:  the same limits on Upstash through @upstash/ratelimit: a real redis-server
 *               behind the local Upstash REST bridge (loopback), three EVALSHA calls in parallel
 *               per request, plus the correction script after the answer
 * Latency at c=1 (p50, p99) and throughput at c=32 with autocannon; one run per variant, in
 * interleaved slices (off, embedded, upstash, off, …) so drift hits every variant alike.
 */
import os from 'node:os';
import type { RouterConfigInput } from '../../worker/config/schema';
import { startStack, type Stack } from '../dev/stack';
import { interleaved, runLoad, SLICES, type HttpTarget, type LoadResult } from './lib/load';
import type { BenchSection, BenchTable } from './lib/section';
import { round } from './lib/stats';
import { startLocalUpstash, type LocalUpstash } from './lib/upstash';

const BACKEND = 'vllm-us-east-8b';
const MODEL = 'llama-3.1-8b';
const MESSAGES = [{ role: 'user', content: 'Reply with a short greeting.' }];
/** Far above anything the bench sends: every request is admitted and counted. */
const LIMITS = { key: { requests: 1e9, tokens: 1e12, window_s: 60 }, tenant: { requests: 1e9, window_s: 60 } };

const VARIANTS = ['off', 'embedded', 'upstash'] as const;
type Variant = (typeof VARIANTS)[number];
type ByVariant<T> = Record<Variant, T>;
const LABEL: ByVariant<string> = { off: 'limits off', embedded: 'embedded (DO)', upstash: 'Upstash (loopback)' };

export const ratelimitOverhead: BenchSection = {
  name: 'ratelimit-overhead',
  description: 'added latency of rate-limit checks, embedded Durable Objects and Upstash (local bridge), vs no limits (instant sim)',
  async run(ctx) {
    const durationS = ctx.durationS ?? 10;
    const warmS = Math.max(1, Math.min(3, Math.round(durationS / 3)));
    const stacks = {} as ByVariant<Stack>;
    let upstash: LocalUpstash | undefined;
    const keyPrefix = `bench-rl-${Date.now()}:`;
    try {
      upstash = await startLocalUpstash();
      const up = upstash;
      for (const v of VARIANTS) {
        stacks[v] = await startStack({
          port: 0,
          ephemeralBackends: true,
          persist: false,
          simProfile: 'instant',
          directSocket: true,
          ...(v === 'upstash' ? { secrets: { UPSTASH_REDIS_REST_TOKEN: up.token } } : {}),
          configPatch: (r: RouterConfigInput): RouterConfigInput => ({
            ...r,
            // The cache off everywhere: every request goes upstream and is corrected.
            cache: { ...r.cache, enabled: false },
            ...(v === 'off' ? {} : { limits: { ...LIMITS, store: v } }),
            ...(v === 'upstash' ? { upstash: { ...r.upstash, redis_url: up.url, key_prefix: keyPrefix } } : {}),
          }),
        });
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
      log(`latency c=1, ${slices} × ${slice} s per variant`);
      const lat = await interleaved(VARIANTS, target, 1, slice, slices);
      log(`throughput c=32, ${slices} × ${slice} s per variant`);
      const thr = await interleaved(VARIANTS, target, 32, slice, slices);
      // The Upstash variant really counted in Redis (not in its embedded fallback).
      const redisKeys = await countKeys(up, `${keyPrefix}rl:*`);

      const added = (v: Variant) => ({
        p50_ms: lat[v].latency_ms.p50 - lat.off.latency_ms.p50,
        p99_ms: lat[v].latency_ms.p99 - lat.off.latency_ms.p99,
        throughput_ratio: thr[v].req_per_s / thr.off.req_per_s,
      });
      const json = {
        date: new Date().toISOString(),
        machine: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, node: process.version, platform: `${os.platform()} ${os.release()}`, loadavg_1m: os.loadavg()[0] },
        setup: { backend: BACKEND, model: MODEL, sim_profile: 'instant', max_tokens: 16, limits: LIMITS, duration_s: durationS, warmup_s: warmS, variants: LABEL },
        latency_c1: lat,
        throughput_c32: thr,
        added: { embedded: added('embedded'), upstash: added('upstash') },
        upstash_bucket_keys: redisKeys,
      };
      return { tables: [table(lat, thr, redisKeys)], json };
    } finally {
      for (const v of VARIANTS) await stacks[v]?.close();
      await upstash?.close();
    }
  },
};

function table(lat: ByVariant<LoadResult>, thr: ByVariant<LoadResult>, redisKeys: number): BenchTable {
  const ms = (x: number) => `${round(x, 3).toFixed(3)} ms`;
  const plus = (d: number) => `${d >= 0 ? '+' : ''}${round(d, 3).toFixed(3)} ms`;
  const rps = (x: number) => `${Math.round(x).toLocaleString('en-US')} req/s`;
  const msRow = (label: string, get: (v: Variant) => number) => [label, ...VARIANTS.map((v) => ms(get(v))), plus(get('embedded') - get('off')), plus(get('upstash') - get('off'))];
  const rpsRow = (label: string, get: (v: Variant) => number) => [label, ...VARIANTS.map((v) => rps(get(v))), `x${round(get('embedded') / get('off'), 3)}`, `x${round(get('upstash') / get('off'), 3)}`];
  const failed = VARIANTS.some((v) => lat[v].non_2xx + lat[v].errors + thr[v].non_2xx + thr[v].errors > 0);
  return {
    title: `Rate-limit checks on a healthy path (${BACKEND}, instant sim, ${os.cpus().length} cores)`,
    columns: ['metric', LABEL.off, LABEL.embedded, LABEL.upstash, 'added: embedded', 'added: Upstash'],
    rows: [
      msRow('latency p50, c=1', (v) => lat[v].latency_ms.p50),
      msRow('latency p99, c=1', (v) => lat[v].latency_ms.p99),
      rpsRow('requests/s, c=1', (v) => lat[v].req_per_s),
      rpsRow('throughput, c=32', (v) => thr[v].req_per_s),
      msRow('latency p50, c=32', (v) => thr[v].latency_ms.p50),
      msRow('latency p99, c=32', (v) => thr[v].latency_ms.p99),
    ],
    notes: [
      `Limits: per key ${LIMITS.key.requests} requests and ${LIMITS.key.tokens} tokens, per tenant ${LIMITS.tenant.requests} requests, per ${LIMITS.key.window_s} s (never reached): each request takes 3 buckets and corrects 1 after the answer (embedded: from the isolate's leased slices; Upstash: per request).`,
      `Each column is its own router and simulators; one run each, in ${SLICES} interleaved slices (percentiles: mean of the slices').`,
      `Upstash here is a redis-server behind the local REST bridge on loopback: the numbers are the router's own cost of the Upstash path, not a network round trip to Upstash (add that RTT per request in production). Bucket keys found in Redis afterwards: ${redisKeys}.`,
      `The Durable Object runs in the same workerd process on the same cores; on Cloudflare it is a call to another machine in the same or a nearby location.`,
      ...(failed ? ['WARNING: some runs had non-2xx answers or errors: see the JSON.'] : []),
    ],
  };
}

async function check(t: HttpTarget, v: Variant): Promise<void> {
  const res = await fetch(t.url, { method: 'POST', headers: t.headers, body: t.body });
  const text = await res.text();
  const limit = res.headers.get('x-ratelimit-limit-requests');
  if (res.status !== 200 || res.headers.get('x-router-backend') !== BACKEND) throw new Error(`${LABEL[v]}: router answered ${res.status}: ${text.slice(0, 300)}`);
  if ((v === 'off') !== (limit === null)) throw new Error(`${LABEL[v]}: x-ratelimit-limit-requests is ${limit ?? 'absent'}`);
}

async function countKeys(up: LocalUpstash, pattern: string): Promise<number> {
  const res = await fetch(up.url, { method: 'POST', headers: { authorization: `Bearer ${up.token}`, 'content-type': 'application/json' }, body: JSON.stringify(['KEYS', pattern]) });
  const body = (await res.json()) as { result?: unknown[] };
  return body.result?.length ?? 0;
}

const log = (msg: string) => process.stderr.write(`  · ${msg}\n`);
