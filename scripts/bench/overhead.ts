/**
 * Router overhead: the same chat completion sent straight to one simulated backend, through a
 * bare pass-through Worker (the floor any Worker pays here), and through the router. The sim
 * runs the `instant` profile so the only differences are the hops and the router's own work
 * (auth, planning, proxying, headers). Non-streaming latency at c=1 and throughput at c=32 with
 * autocannon; streaming time to first token with a small fetch client. Both Workers are reached
 * through Miniflare's direct sockets (see StackOptions.directSocket).
 *
 * A fourth column, "all features", is a second router with limits (embedded, leased), a tenant
 * budget and both caches on, each request a new prompt at temperature 0 (both caches look up, miss
 * and store): the longest path (cpu-profile.ts builds the same config and request). The aims of
 * issue 16 are ratios to the bare Worker, measured in this one run.
 */
import os from 'node:os';
import { startStack } from '../dev/stack';
import { readWranglerConfig } from '../dev/wrangler-config';
import { WRANGLER_TOML } from '../dev/paths';
import { startBareProxy, startShapeFloor } from './lib/bare-proxy';
import { cpuSeconds, newWorkerdPids } from './lib/proc-cpu';
import { runLoad, runSpaced, type HttpTarget, type LoadResult } from './lib/load';
import type { BenchSection, BenchTable } from './lib/section';
import { round } from './lib/stats';
import { measureTtft, type TtftResult } from './lib/ttft';
import { fullFeatures, variantTarget } from './cpu-profile';

/** Where `llama-3.1-8b` goes with no client location (the first region's backend). */
const BACKEND = 'vllm-us-east-8b';
const MODEL = 'llama-3.1-8b';
const MESSAGES = [{ role: 'user', content: 'Reply with a short greeting.' }];
const AIM_ADDED_P50_MS = 0.5;
const AIM_ROUTER_RPS = 2_000;
/** Issue 16: router (default config) at c=32 vs the bare Worker, the same with every feature on, and added p50 at c=1 over it. */
const AIM_DEFAULT_VS_FLOOR = 0.7;
const AIM_FULL_VS_FLOOR = 0.55;
const AIM_P50_OVER_FLOOR_MS = 0.3;

const VIAS = ['direct', 'floor', 'shape', 'router', 'full'] as const;
type Via = (typeof VIAS)[number];
type ByVia<T> = Record<Via, T>;

export const overhead: BenchSection = {
  name: 'overhead',
  description: 'added latency and throughput of the router vs calling one backend directly (instant sim)',
  async run(ctx) {
    const durationS = ctx.durationS ?? 10;
    const warmS = Math.max(1, Math.min(3, Math.round(durationS / 3)));
    const ttftN = Number(process.env.BENCH_TTFT_N ?? (ctx.smoke ? 20 : 300));
    // Direct sockets for router and floor: Miniflare's entry worker has no counterpart on Cloudflare.
    const started = await newWorkerdPids(() => startStack({ port: 0, ephemeralBackends: true, persist: false, simProfile: 'instant', directSocket: true }));
    const stack = started.value;
    const pids = { direct: [], floor: [], shape: [], router: started.pids, full: [] } as ByVia<number[]>;
    let full: Awaited<ReturnType<typeof startStack>> | undefined;
    let floor: Awaited<ReturnType<typeof startBareProxy>> | undefined;
    let shape: Awaited<ReturnType<typeof startShapeFloor>> | undefined;
    try {
      const backendUrl = stack.backends[BACKEND];
      const backend = stack.router.backends.find((b) => b.id === BACKEND);
      const model = stack.router.models.find((m) => m.id === MODEL);
      if (!backend || !model || !backendUrl) throw new Error(`wrangler.toml has no backend ${BACKEND} serving ${MODEL}`);
      const { compatibilityDate, compatibilityFlags } = readWranglerConfig(WRANGLER_TOML).workerOptions as { compatibilityDate?: string; compatibilityFlags?: string[] };
      const floorStarted = await newWorkerdPids(() => startBareProxy(backendUrl, { compatibilityDate, compatibilityFlags }));
      floor = floorStarted.value;
      pids.floor = floorStarted.pids;
      const shapeStarted = await newWorkerdPids(() => startShapeFloor(backendUrl, { compatibilityDate, compatibilityFlags }));
      shape = shapeStarted.value;
      pids.shape = shapeStarted.pids;
      const shapeUrl = shape.url;
      const floorUrl = floor.url;
      const simHeaders: Record<string, string> = { 'content-type': 'application/json' };
      if (backend.auth_secret) simHeaders.authorization = `Bearer ${stack.secrets[backend.auth_secret]}`;
      const body = (name: string, stream: boolean) => JSON.stringify({ model: name, messages: MESSAGES, max_tokens: 16, ...(stream ? { stream } : {}) });
      const served = model.served_name ?? model.id;
      const fullStarted = await newWorkerdPids(() => startStack({ port: 0, ephemeralBackends: true, persist: false, simProfile: 'instant', directSocket: true, configPatch: fullFeatures }));
      full = fullStarted.value;
      pids.full = fullStarted.pids;
      const fullStack = full;
      const target = (via: Via, stream: boolean): HttpTarget => {
        if (via === 'full') {
          const t = variantTarget(fullStack, 'full');
          if (!stream) return t;
          const streamed = (b: string) => JSON.stringify({ ...JSON.parse(b), stream: true });
          return { url: t.url, headers: t.headers, body: streamed(t.body), nextBody: () => streamed(t.nextBody!()) };
        }
        if (via === 'router') {
          return { url: `${stack.routerUrl}/v1/chat/completions`, headers: { 'content-type': 'application/json', authorization: `Bearer ${stack.keys.demo}` }, body: body(MODEL, stream) };
        }
        if (via === 'shape') return { url: `${shapeUrl}/v1/chat/completions`, headers: simHeaders, body: body(served, false) }; // it only answers non-streamed
        return { url: `${via === 'direct' ? backendUrl : floorUrl}/v1/chat/completions`, headers: simHeaders, body: body(served, stream) };
      };

      await assertRoutesTo(target('router', false), BACKEND);
      await assertRoutesTo(target('full', false), BACKEND);
      log(`warm-up ${warmS} s each`);
      for (const via of VIAS) await runLoad(target(via, false), 8, warmS);

      const lat = {} as ByVia<LoadResult>;
      const thr = {} as ByVia<LoadResult>;
      const ttft = {} as ByVia<TtftResult>;
      for (const via of VIAS) lat[via] = await step(`latency c=1, ${via}`, () => runLoad(target(via, false), 1, durationS));
      // workerd CPU (kernel-charged, all threads) per request: the Workers' cost without the sampling's wall-time inflation.
      const cpuUs = {} as ByVia<number | null>;
      for (const via of VIAS) {
        const cpu0 = cpuSeconds(pids[via]);
        thr[via] = await step(`throughput c=32, ${via}`, () => runLoad(target(via, false), 32, durationS));
        cpuUs[via] = pids[via].length > 0 ? ((cpuSeconds(pids[via]) - cpu0) * 1e6) / Math.max(1, thr[via].requests) : null;
      }
      for (const via of VIAS) if (via !== 'shape') ttft[via] = await step(`TTFT x${ttftN}, ${via}`, () => measureTtft(target(via, true), ttftN));
      ttft.shape = { ...ttft.floor, median_ms: NaN, p99_ms: NaN }; // the shape floor answers only non-streamed requests

      // An isolate idle between requests: what load shares out (timers, flushes, a woken thread, cold caches) each request pays alone.
      const isolatedCpuUs: Partial<Record<Via, number>> = {};
      for (const via of ISOLATED_VIAS) {
        const cpu0 = cpuSeconds(pids[via]);
        const r = await step(`isolated requests, ${via}: one every ${ISOLATED_GAP_MS} ms`, () => runSpaced(target(via, false), ISOLATED_GAP_MS, Math.max(1, Math.round(durationS / 2))));
        if (r.failures > 0) log(`WARNING isolated ${via}: ${r.failures} failures`);
        isolatedCpuUs[via] = ((cpuSeconds(pids[via]) - cpu0) * 1e6) / Math.max(1, r.requests);
      }

      // The instant sim sends a whole answer in one write; vLLM sends a token at a time. Paced, a
      // non-streamed answer arrives in one network read per token, which is what a router reading
      // them one by one pays for (worker/http/bulk-reader.ts).
      const paced = await setItl(backendUrl, PACED_ITL_MS);
      const pacedCpuUs: Partial<Record<Via, number>> = {};
      const pacedStreamCpuUs: Partial<Record<Via, number>> = {};
      try {
        for (const stream of [false, true]) {
          for (const via of PACED_VIAS) {
            if (stream && via === 'shape') continue;
            const cpu0 = cpuSeconds(pids[via]);
            const r = await step(`throughput c=32, ${via}${stream ? ', streamed' : ''}, backend pacing tokens ${PACED_ITL_MS} ms apart`, () => runLoad(target(via, stream), 32, durationS));
            (stream ? pacedStreamCpuUs : pacedCpuUs)[via] = ((cpuSeconds(pids[via]) - cpu0) * 1e6) / Math.max(1, r.requests);
          }
        }
      } finally {
        await setItl(backendUrl, paced);
      }

      const addedP50 = lat.router.latency_ms.p50 - lat.direct.latency_ms.p50;
      const json = {
        date: new Date().toISOString(),
        machine: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, node: process.version, platform: `${os.platform()} ${os.release()}`, loadavg_1m: os.loadavg()[0] },
        setup: { backend: BACKEND, model: MODEL, sim_profile: 'instant', max_tokens: 16, duration_s: durationS, warmup_s: warmS, ttft_n: ttftN, floor: 'pass-through Worker under Miniflare', sockets: 'miniflare direct sockets (no entry worker)' },
        latency_c1: lat,
        throughput_c32: thr,
        workerd_cpu_us_per_request_c32: cpuUs,
        workerd_cpu_us_per_request_c32_paced: { itl_ms: PACED_ITL_MS, non_streamed: pacedCpuUs, streamed: pacedStreamCpuUs },
        workerd_cpu_us_per_request_isolated: { gap_ms: ISOLATED_GAP_MS, ...isolatedCpuUs },
        ttft_stream: ttft,
        added: {
          p50_ms: addedP50,
          p99_ms: lat.router.latency_ms.p99 - lat.direct.latency_ms.p99,
          p50_over_floor_ms: lat.router.latency_ms.p50 - lat.floor.latency_ms.p50,
          full_p50_over_floor_ms: lat.full.latency_ms.p50 - lat.floor.latency_ms.p50,
          router_vs_floor_c32: thr.router.req_per_s / thr.floor.req_per_s,
          shape_vs_floor_c32: thr.shape.req_per_s / thr.floor.req_per_s,
          router_vs_shape_c32: thr.router.req_per_s / thr.shape.req_per_s,
          router_p50_over_shape_ms: lat.router.latency_ms.p50 - lat.shape.latency_ms.p50,
          full_vs_floor_c32: thr.full.req_per_s / thr.floor.req_per_s,
          ttft_median_ms: ttft.router.median_ms - ttft.direct.median_ms,
          throughput_ratio: thr.router.req_per_s / thr.direct.req_per_s,
        },
        aims: {
          added_p50_below_ms: AIM_ADDED_P50_MS,
          added_p50_met: addedP50 < AIM_ADDED_P50_MS,
          router_rps_at_c32_min: AIM_ROUTER_RPS,
          router_rps_met: thr.router.req_per_s >= AIM_ROUTER_RPS,
          default_vs_floor_min: AIM_DEFAULT_VS_FLOOR,
          default_vs_floor_met: thr.router.req_per_s / thr.floor.req_per_s >= AIM_DEFAULT_VS_FLOOR,
          full_vs_floor_min: AIM_FULL_VS_FLOOR,
          full_vs_floor_met: thr.full.req_per_s / thr.floor.req_per_s >= AIM_FULL_VS_FLOOR,
          p50_over_floor_max_ms: AIM_P50_OVER_FLOOR_MS,
          p50_over_floor_met: lat.router.latency_ms.p50 - lat.floor.latency_ms.p50 <= AIM_P50_OVER_FLOOR_MS,
        },
      };
      return { tables: [buildTable(lat, thr, ttft, cpuUs), isolatedTable(isolatedCpuUs, cpuUs), pacedTable(pacedCpuUs, pacedStreamCpuUs)], json };
    } finally {
      await floor?.close();
      await shape?.close();
      await full?.close();
      await stack.close();
    }
  },
};

function buildTable(lat: ByVia<LoadResult>, thr: ByVia<LoadResult>, ttft: ByVia<TtftResult>, cpuUs: ByVia<number | null>): BenchTable {
  const ms = (x: number) => (Number.isNaN(x) ? '-' : `${round(x, 3).toFixed(3)} ms`);
  const plus = (d: number) => (Number.isNaN(d) ? '-' : `${d >= 0 ? '+' : ''}${round(d, 3).toFixed(3)} ms`);
  const rps = (x: number) => `${Math.round(x).toLocaleString('en-US')} req/s`;
  const ratio = (r: number, d: number) => `x${round(r / d, 2)}`;
  const msRow = (label: string, get: (v: Via) => number): string[] => [label, ms(get('direct')), ms(get('floor')), ms(get('shape')), ms(get('router')), ms(get('full')), plus(get('router') - get('direct')), plus(get('router') - get('floor')), plus(get('router') - get('shape')), plus(get('full') - get('floor'))];
  const rpsRow = (label: string, get: (v: Via) => number): string[] => [label, rps(get('direct')), rps(get('floor')), rps(get('shape')), rps(get('router')), rps(get('full')), ratio(get('router'), get('direct')), ratio(get('router'), get('floor')), ratio(get('router'), get('shape')), ratio(get('full'), get('floor'))];
  const overFloor = lat.router.latency_ms.p50 - lat.floor.latency_ms.p50;
  const defaultRatio = thr.router.req_per_s / thr.floor.req_per_s;
  const fullRatio = thr.full.req_per_s / thr.floor.req_per_s;
  const addedP50 = lat.router.latency_ms.p50 - lat.direct.latency_ms.p50;
  const failed = VIAS.some((v) => lat[v].non_2xx + lat[v].errors + thr[v].non_2xx + thr[v].errors + ttft[v].failures > 0);
  return {
    title: `Router overhead (${BACKEND}, ${MODEL}, instant sim, ${os.cpus().length} cores)`,
    columns: ['metric', 'direct', 'bare Worker', 'shape floor', 'router', 'all features', 'router vs direct', 'router vs bare', 'router vs shape floor', 'all features vs bare'],
    rows: [
      msRow('latency p50, c=1 (non-streaming)', (v) => lat[v].latency_ms.p50),
      msRow('latency p99, c=1', (v) => lat[v].latency_ms.p99),
      rpsRow('requests/s, c=1', (v) => lat[v].req_per_s),
      rpsRow('throughput, c=32', (v) => thr[v].req_per_s),
      cpuRow(cpuUs),
      msRow('latency p50, c=32', (v) => thr[v].latency_ms.p50),
      msRow('latency p99, c=32', (v) => thr[v].latency_ms.p99),
      msRow('TTFT median (streaming)', (v) => ttft[v].median_ms),
      msRow('TTFT p99 (streaming)', (v) => ttft[v].p99_ms),
    ],
    notes: [
      'router = the default config; all features = limits (embedded, leased), a budget, exact + semantic cache (each request a new prompt at temperature 0: miss and store), usage. bare Worker = a pass-through Worker under the same Miniflare setup: the floor of any Worker hop here.',
      'shape floor = a Worker that only parses the JSON body, asks the backend for a stream and answers the assembled JSON (scripts/bench/lib/bare-proxy.ts): what any router answering non-streamed clients from a streamed backend does (README "Request lifecycle"), with none of the features. router vs shape floor is the cost of the features.',
      'Both Workers are reached through Miniflare direct sockets, without the dev entry worker that `npm start` puts in front (about 0.1 ms more per request).',
      `aim: added p50 < ${AIM_ADDED_P50_MS} ms: ${addedP50 < AIM_ADDED_P50_MS ? 'met' : 'not met'} (${plus(addedP50)}; ${plus(lat.router.latency_ms.p50 - lat.floor.latency_ms.p50)} over the bare Worker)`,
      `aim (issue 16): router >= ${Math.round(AIM_DEFAULT_VS_FLOOR * 100)}% of the bare Worker at c=32: ${defaultRatio >= AIM_DEFAULT_VS_FLOOR ? 'met' : 'not met'} (${round(defaultRatio * 100, 1)}%); all features >= ${Math.round(AIM_FULL_VS_FLOOR * 100)}%: ${fullRatio >= AIM_FULL_VS_FLOOR ? 'met' : 'not met'} (${round(fullRatio * 100, 1)}%); added p50 at c=1 <= ${AIM_P50_OVER_FLOOR_MS} ms over the bare Worker: ${overFloor <= AIM_P50_OVER_FLOOR_MS ? 'met' : 'not met'} (${plus(overFloor)})`,
      `aim: router >= ${AIM_ROUTER_RPS.toLocaleString('en-US')} req/s at c=32 on 2 cores: ${thr.router.req_per_s >= AIM_ROUTER_RPS ? 'met' : 'not met'} (${rps(thr.router.req_per_s)} on ${os.cpus().length} cores)`,
      `client, sims and workerd share this machine (1-min load average ${os.loadavg()[0]!.toFixed(1)} at the end): compare columns, don't plan capacity from them.`,
      ...(failed ? ['WARNING: some runs had non-2xx answers or errors: see the JSON.'] : []),
    ],
  };
}

/** workerd CPU per request at c=32 and the router's and all features' multiples of the bare Worker's. */
function cpuRow(cpuUs: ByVia<number | null>): string[] {
  const us = (v: Via) => (cpuUs[v] === null ? '-' : `${Math.round(cpuUs[v]!)} µs`);
  const x = (a: Via, b: Via) => (cpuUs[a] === null || cpuUs[b] === null || cpuUs[b] === 0 ? '-' : `x${round(cpuUs[a]! / cpuUs[b]!, 2)}`);
  return ['workerd CPU per request, c=32', us('direct'), us('floor'), us('shape'), us('router'), us('full'), '-', x('router', 'floor'), x('router', 'shape'), x('full', 'floor')];
}

const ISOLATED_GAP_MS = 5;
const ISOLATED_VIAS = ['floor', 'shape', 'router', 'full'] as const satisfies readonly Via[];

/** workerd CPU per request when each request comes alone, beside the c=32 figure. */
function isolatedTable(isolated: Partial<Record<Via, number>>, c32: ByVia<number | null>): BenchTable {
  const us = (x: number | null | undefined) => (x === undefined || x === null ? '-' : `${Math.round(x)} µs`);
  const x = (a: number | null | undefined, b: number | null | undefined) => (a == null || !b ? '-' : `x${round(a / b, 2)}`);
  return {
    title: `Isolated requests: workerd CPU per request, one request every ${ISOLATED_GAP_MS} ms`,
    columns: ['', 'bare Worker', 'shape floor', 'router', 'all features', 'router vs bare', 'all features vs bare'],
    rows: [
      ['isolated', us(isolated.floor), us(isolated.shape), us(isolated.router), us(isolated.full), x(isolated.router, isolated.floor), x(isolated.full, isolated.floor)],
      ['c=32 (above)', us(c32.floor), us(c32.shape), us(c32.router), us(c32.full), x(c32.router, c32.floor), x(c32.full, c32.floor)],
    ],
    notes: [
      'A request that comes alone pays what load shares out (a woken thread, cold caches, its own timers and background flushes): closer to what a lightly used Worker is billed than the c=32 figure. The all-features requests are new prompts (caches miss and store).',
    ],
  };
}

const PACED_ITL_MS = 1;
const PACED_VIAS = ['floor', 'shape', 'router'] as const satisfies readonly Via[];

/** Sets the simulator's inter-token latency (POST /sim/config) and returns the one it had. */
async function setItl(simUrl: string, itlMs: number): Promise<number> {
  const before = (await (await fetch(`${simUrl}/sim/config`)).json()) as { itl_ms?: number };
  const res = await fetch(`${simUrl}/sim/config`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ itl_ms: itlMs }) });
  if (!res.ok) throw new Error(`sim /sim/config: ${res.status} ${await res.text()}`);
  return before.itl_ms ?? 0;
}

function pacedTable(plain: Partial<Record<Via, number>>, streamed: Partial<Record<Via, number>>): BenchTable {
  const row = (label: string, cpuUs: Partial<Record<Via, number>>) => {
    const us = (v: Via) => (cpuUs[v] === undefined ? '-' : `${Math.round(cpuUs[v]!)} µs`);
    const x = (a: Via, b: Via) => (cpuUs[a] === undefined || !cpuUs[b] ? '-' : `x${round(cpuUs[a]! / cpuUs[b]!, 2)}`);
    return [label, us('floor'), us('shape'), us('router'), x('router', 'floor'), x('router', 'shape')];
  };
  return {
    title: `Paced backend: workerd CPU per request, c=32, 16 tokens ${PACED_ITL_MS} ms apart`,
    columns: ['client', 'bare Worker', 'shape floor', 'router', 'router vs bare', 'router vs shape floor'],
    rows: [row('non-streamed', plain), row('streamed', streamed)],
    notes: ['The backend sends a token at a time, as vLLM does (the instant sim above sends the whole answer at once). The shape floor reads the body with text(); the router reads it with bulk reads (worker/http/bulk-reader.ts).'],
  };
}

/** Fails early when the router would pick another backend: the comparison would be meaningless. */
async function assertRoutesTo(t: HttpTarget, backend: string): Promise<void> {
  const res = await fetch(t.url, { method: 'POST', headers: t.headers, body: t.body });
  const text = await res.text();
  const got = res.headers.get('x-router-backend');
  if (res.status !== 200 || got !== backend) throw new Error(`router answered ${res.status} via ${got ?? '?'}, expected 200 via ${backend}: ${text.slice(0, 300)}`);
}

async function step<T>(what: string, fn: () => Promise<T>): Promise<T> {
  log(what);
  return fn();
}

const log = (msg: string) => process.stderr.write(`  · ${msg}\n`);
