/**
 * A compressed synthetic day (issue 6 §5): the dev stack's seven simulated backends (three
 * regions) under follow-the-sun traffic, run twice with the same arrivals:
 *   - always-on:     every backend stays warm all day;
 *   - scale-to-zero: the scale scripts' own round (scripts/scale/run.ts applyRound, policy.ts,
 *                    events.ts) runs every ROUND_MS against the router's /admin/backends, with a
 *                    driver that parks a simulator (POST /sim/state {"cold":true}) and starts it
 *                    with a request (the simulator wakes on one, taking its cold_start_ms);
 *   - predictive:    the same round with scripts/scale/predictive.ts deciding: each backend's daily
 *                    profile is learnt from HISTORY_DAYS earlier days of request history (the same
 *                    curves and bursts, other Poisson draws: seeds SEED+1…, each request attributed to
 *                    the backend that served its region and model in the always-on run), and it parks
 *                    when the next hour's expected traffic is below PARK_PER_GPU × the backend's GPUs,
 *                    and starts a parked backend ahead of its usual ramp.
 *
 * Compression: a day of `BENCH_DURATION_S` seconds (default 240, so an hour is 10 s, a factor of
 * 360). Traffic rates and the policy's idle window (15 min) are compressed by that factor; request
 * latencies (the dev latency profile) are not, and cold starts are fixed wall times (0.5 / 1 / 2 s for
 * 8B / 70B / 405B-class backends, i.e. 3 / 6 / 12 min of the compressed day): a request is a
 * request, a start is long compared with one. Each region's clients follow a diurnal curve in their
 * local time (zero from 23:00 to 06:00), with bursts: a US batch job at 03:00, an EU spike at 11:00,
 * an APAC rush at 21:00. 70% of requests are interactive (x-router-timeout-ms 2000, half streamed),
 * 30% batch (the router's default deadline).
 *
 * Measured: GPU-hours (time each simulator was warm or waking, sampled every SAMPLE_MS from
 * /sim/state, weighted 1 / 4 / 8 GPUs for 8B / 70B / 405B) and client latency (p50 / p95 / p99),
 * overall and without the first request each backend served after each park. Aim: scale-to-zero
 * uses at most half the GPU-hours, with p95 (outside those first requests) at most 10% worse.
 * Open loop (arrivals do not wait for answers); one run; no retuning between runs.
 */
import os from 'node:os';
import type { BackendStatus } from '../../worker/protocol/backends-api';
import type { RouterConfigInput } from '../../worker/config/schema';
import { startStack, type Stack } from '../dev/stack';
import type { CurrentScale, ScaleDriver, ScaleTarget } from '../scale/drivers/types';
import { routerClient } from '../scale/router-client';
import { learnProfile, predictiveDecide, type DailyProfile } from '../scale/predictive';
import { applyRound, type ScaleContext } from '../scale/run';
import type { BenchSection, BenchTable } from './lib/section';
import { percentile, round } from './lib/stats';
import { answeredOk, callChat, type ChatResult } from './lib/workload-client';
import { rng } from './lib/workload-chat';

const DAY_S = 240;
/** The policy's idle window (scripts' default); BENCH_SCALE_IDLE_MINUTES overrides it for experiments. */
const IDLE_MINUTES = Number(process.env.BENCH_SCALE_IDLE_MINUTES ?? 15);
const ROUND_MS = 250;
const SAMPLE_MS = 100;
const SEED = 20_260_501;
const INTERACTIVE_SHARE = 0.7;
const INTERACTIVE_DEADLINE_MS = 2_000;
const MAX_TOKENS = 16;
const MODEL_MIX: [string, number][] = [['small', 0.7], ['large', 0.25], ['xl', 0.05]];
const AIM_GPU_RATIO = 0.5;
/** Predictive: days of history, and the park threshold (requests expected in the next hour, per GPU). */
const HISTORY_DAYS = 3;
const PARK_PER_GPU = Number(process.env.BENCH_PARK_PER_GPU ?? 1.5);
const AIM_P95_RATIO = 1.1;

/** Clients by region: where they are (x-router-debug-geo), their UTC offset, and requests/s at the daily peak. */
const REGIONS = {
  us: { geo: '40.7,-74.0', utcOffset: -5, peak: 5 },
  eu: { geo: '48.86,2.35', utcOffset: 1, peak: 4 },
  ap: { geo: '1.29,103.85', utcOffset: 8, peak: 3 },
} as const;
type RegionKey = keyof typeof REGIONS;

/** Share of the peak rate by local hour (0..23): nothing from 23:00 to 06:00. */
const DIURNAL = [0, 0, 0, 0, 0, 0, 0.1, 0.35, 0.7, 0.9, 1, 0.95, 0.75, 0.9, 1, 0.95, 0.85, 0.7, 0.5, 0.35, 0.25, 0.15, 0.05, 0];

/** Bursts on top of the curve, in the clients' local time. */
const BURSTS = [
  { name: 'us batch job 03:00', region: 'us' as RegionKey, localHour: 3, minutes: 2, requests: 12, model: 'large', interactive: false },
  { name: 'eu spike 11:00', region: 'eu' as RegionKey, localHour: 11, minutes: 15, requests: 60, model: null, interactive: true },
  { name: 'ap rush 21:00', region: 'ap' as RegionKey, localHour: 21, minutes: 1, requests: 20, model: 'small', interactive: true },
];

/** Wall-clock cold start of a simulator by model class, and the GPUs it stands for. */
const coldStartMs = (b: { models: string[] }) => ({ 1: 500, 4: 1_000, 8: 2_000 })[gpusOf(b)];
function gpusOf(b: { models: string[] }): 1 | 4 | 8 {
  const params = Math.max(0, ...b.models.map((m) => Number(/(\d+)b(?![a-z0-9])/i.exec(m)?.[1] ?? 0)));
  return params >= 300 ? 8 : params >= 30 ? 4 : 1;
}

interface Arrival {
  /** ms since the start of the day. */
  t: number;
  region: RegionKey;
  model: string;
  interactive: boolean;
  stream: boolean;
  burst: string | null;
}

interface Sample {
  t: number;
  hour: number;
  region: RegionKey;
  model: string;
  interactive: boolean;
  stream: boolean;
  ok: boolean;
  status: number;
  latency_ms: number;
  backend: string | null;
  cold_start: string | null;
  fallback: string | null;
  error: string | null;
}

type Policy = 'always-on' | 'scale-to-zero' | 'predictive';

interface RunResult {
  policy: Policy;
  samples: Sample[];
  /** ms each backend was warm or waking. */
  onMs: Record<string, number>;
  /** Per backend: day times (ms) at which it was parked. */
  parks: Record<string, number[]>;
  wakes: Record<string, number>;
  gpus: Record<string, number>;
  expectedColdStart: Record<string, number | null>;
  /** Warm backends by UTC hour (average of samples). */
  warmByHour: number[];
  roundErrors: number;
}

export const scaleDay: BenchSection = {
  name: 'scale-day',
  description: 'a compressed day of follow-the-sun traffic: GPU-hours and latency, always-on vs scale-to-zero vs predictive parking',
  async run(ctx) {
    const dayMs = (ctx.durationS ?? DAY_S) * 1000;
    const hourMs = dayMs / 24;
    const factor = 3_600_000 / hourMs;
    const idleMs = (IDLE_MINUTES * 60_000) / factor;
    const arrivals = schedule(dayMs, hourMs);
    log(`${arrivals.length} requests over ${dayMs / 1000} s (an hour = ${hourMs / 1000} s, compression ×${Math.round(factor)}); idle window ${round(idleMs / 1000, 2)} s`);

    // Always-on first: its answers say which backend serves each region's requests for each model,
    // which attributes the earlier days' requests (the predictive policy's history) to backends.
    log('always-on: starting the stack');
    const on = await runDay('always-on', arrivals, dayMs, hourMs, idleMs);
    log('scale-to-zero: starting the stack');
    const s2z = await runDay('scale-to-zero', arrivals, dayMs, hourMs, idleMs);
    const profile = learnProfile(history(on, dayMs, hourMs), HISTORY_DAYS, { dayMs });
    log('predictive: starting the stack');
    const pred = await runDay('predictive', arrivals, dayMs, hourMs, idleMs, profile);
    const runs: RunResult[] = [s2z, on, pred];
    const summary = runs.map((r) => summarize(r, hourMs));
    const aimsOf = (s: Summary) => {
      const gpuRatio = s.gpu_hours / summary[1]!.gpu_hours;
      const p95Ratio = s.p95_excl_first_ms / summary[1]!.p95_ms;
      return { policy: s.policy, gpu_hours_ratio: round(gpuRatio, 3), gpu_aim_met: gpuRatio <= AIM_GPU_RATIO, p95_ratio: round(p95Ratio, 3), p95_aim_met: p95Ratio <= AIM_P95_RATIO };
    };
    const aims = aimsOf(summary[0]!);
    const aimsPredictive = aimsOf(summary[2]!);
    const json = {
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, node: process.version },
      setup: { day_s: dayMs / 1000, hour_s: hourMs / 1000, compression: factor, idle_minutes: IDLE_MINUTES, idle_ms_wall: idleMs, round_ms: ROUND_MS, sample_ms: SAMPLE_MS, regions: REGIONS, diurnal: DIURNAL, bursts: BURSTS, interactive_share: INTERACTIVE_SHARE, interactive_deadline_ms: INTERACTIVE_DEADLINE_MS, model_mix: MODEL_MIX, seed: SEED, history_days: HISTORY_DAYS, park_per_gpu: PARK_PER_GPU },
      aims,
      aims_predictive: aimsPredictive,
      summary,
      runs: runs.map((r) => ({ ...r, samples: undefined })),
      samples: { 'scale-to-zero': s2z.samples, 'always-on': on.samples, predictive: pred.samples },
    };
    return { tables: tables(runs, summary, [aims, aimsPredictive], hourMs, factor, idleMs), json };
  },
};

// ------------------------------------------------------------------ one day against one stack

async function runDay(policy: Policy, arrivals: Arrival[], dayMs: number, hourMs: number, idleMs: number, profile?: DailyProfile): Promise<RunResult> {
  const stack = await startStack({
    port: 0,
    ephemeralBackends: true,
    persist: false,
    directSocket: true,
    // The router plans around cold starts it is told of; no [scaling] in the router's config (its
    // idle_minutes cannot be compressed below 1): the bench's own copy of the policy, below, has it.
    configPatch: (router: RouterConfigInput) => ({ ...router, backends: router.backends.map((b) => ({ ...b, cold_start_ms: coldStartMs(b) })) }),
    simOverrides: (b) => ({ cold_start_ms: coldStartMs(b), idle_scale_down_ms: 0 }),
  });
  try {
    const backends = stack.router.backends;
    const parks: Record<string, number[]> = Object.fromEntries(backends.map((b) => [b.id, []]));
    const onMs: Record<string, number> = Object.fromEntries(backends.map((b) => [b.id, 0]));
    const warmSamples: { hour: number; warm: number }[] = [];
    let t0 = 0;
    const dayNow = () => performance.now() - t0;
    const simState = async (id: string) => ((await (await fetch(`${stack.backends[id]}/sim/state`)).json()) as { state: string; wakes: number }).state;

    const router = routerClient(stack.routerUrl, stack.adminToken);
    const driver = simDriver(stack, simState, (id) => parks[id]!.push(dayNow()));
    const scaleCtx: ScaleContext = {
      router,
      backends: backends.map((b) => ({
        id: b.id,
        kind: b.kind,
        region: b.region,
        cold_start_ms: coldStartMs(b),
        // The policy's idle window on the compressed clock (the schema's 1-minute floor does not apply here).
        scaling: { driver: 'kubernetes', idle_minutes: idleMs / 60_000, min_replicas: 0, max_replicas: 1, wake_replicas: 1, keep_warm: [], kubernetes: { namespace: 'sim', deployment: b.id } },
      })),
      drivers: async () => driver,
      ...(profile
        ? {
            decide: predictiveDecide({
              profile,
              timeOfDay: dayNow,
              horizonMs: hourMs,
              minIdleMs: hourMs / 30,
              parkBelow: (id) => PARK_PER_GPU * gpusOf(backends.find((b) => b.id === id)!),
              // Its start plus a quarter of an hour: warm when the ramp's first requests come.
              leadMs: (id) => coldStartMs(backends.find((b) => b.id === id)!) + hourMs / 4,
            }),
          }
        : {}),
    };
    if (policy !== 'always-on') {
      // What the scripts would see at start: every backend running (the router has heard of none yet).
      for (const b of backends) await router.report(b.id, { type: 'ready', replicas: 1 });
    }

    let stop = false;
    let roundErrors = 0;
    const scaler = async () => {
      while (!stop) {
        try {
          const r = await applyRound(scaleCtx);
          roundErrors += r.rows.filter((row) => row.error).length;
        } catch (e) {
          roundErrors++;
          log(`scale round failed: ${(e as Error).message}`);
        }
        await sleep(ROUND_MS);
      }
    };
    const sampler = async () => {
      let last = performance.now();
      while (!stop) {
        const states = await Promise.all(backends.map((b) => simState(b.id).catch(() => 'unknown')));
        const now = performance.now();
        const dt = now - last;
        last = now;
        let warm = 0;
        states.forEach((s, i) => {
          if (s !== 'cold') {
            onMs[backends[i]!.id]! += dt;
            warm++;
          }
        });
        warmSamples.push({ hour: Math.floor(dayNow() / hourMs), warm });
        await sleep(SAMPLE_MS);
      }
    };

    const samples: Sample[] = [];
    const pending: Promise<void>[] = [];
    t0 = performance.now();
    const background = [sampler(), ...(policy !== 'always-on' ? [scaler()] : [])];
    let lastLog = -1;
    for (const a of arrivals) {
      const wait = a.t - dayNow();
      if (wait > 0) await sleep(wait);
      const hour = Math.floor(a.t / hourMs);
      if (hour !== lastLog && hour % 4 === 0) {
        lastLog = hour;
        log(`${policy}: ${String(hour).padStart(2, '0')}:00 UTC, ${samples.length} answered`);
      }
      pending.push(
        callChat({
          url: `${stack.routerUrl}/v1/chat/completions`,
          headers: {
            authorization: `Bearer ${stack.keys.demo}`,
            'x-router-debug-geo': REGIONS[a.region].geo,
            ...(a.interactive ? { 'x-router-timeout-ms': String(INTERACTIVE_DEADLINE_MS) } : {}),
          },
          body: { model: a.model, messages: [{ role: 'user', content: `(${a.region} ${Math.round(a.t)}) Give me a one-line status update.` }], max_tokens: MAX_TOKENS, ...(a.stream ? { stream: true } : {}) },
          clientTimeoutMs: 60_000,
        }).then((r) => void samples.push(sampleOf(a, hour, r))),
      );
    }
    const remaining = dayMs - dayNow();
    if (remaining > 0) await sleep(remaining);
    await Promise.all(pending);
    stop = true;
    await Promise.all(background);

    const list = await router.backends().catch(() => null);
    const wakes: Record<string, number> = {};
    for (const b of backends) wakes[b.id] = ((await (await fetch(`${stack.backends[b.id]}/sim/state`)).json()) as { wakes: number }).wakes;
    const byHour = Array.from({ length: 24 }, (_, h) => {
      const w = warmSamples.filter((s) => s.hour === h);
      return w.length ? w.reduce((n, s) => n + s.warm, 0) / w.length : NaN;
    });
    return {
      policy,
      samples: samples.sort((x, y) => x.t - y.t),
      onMs,
      parks,
      wakes,
      gpus: Object.fromEntries(backends.map((b) => [b.id, gpusOf(b)])),
      expectedColdStart: Object.fromEntries(backends.map((b) => [b.id, list?.data.find((s: BackendStatus) => s.id === b.id)?.cold_start_ms.expected ?? null])),
      warmByHour: byHour,
      roundErrors,
    };
  } finally {
    await stack.close();
  }
}

/**
 * The scale scripts' driver interface over a simulator: "replicas" is 1 unless it is cold; a
 * scale to zero parks it; a scale up sends it a one-token request (it wakes on a request, as a pod
 * starts), without waiting for the answer: the next round sees it ready.
 */
function simDriver(stack: Stack, simState: (id: string) => Promise<string>, onPark: (id: string) => void): ScaleDriver {
  return {
    name: 'kubernetes',
    async current(t: ScaleTarget): Promise<CurrentScale> {
      const state = await simState(t.id);
      return { replicas: state === 'cold' ? 0 : 1, ready: state === 'warm' ? 1 : 0, note: state };
    },
    async scale(t: ScaleTarget, replicas: number) {
      const url = stack.backends[t.id]!;
      if (replicas === 0) {
        const res = await fetch(`${url}/sim/state`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"cold":true}' });
        if (!res.ok) throw new Error(`/sim/state answered ${res.status}`);
        onPark(t.id);
        return { changed: true, detail: 'parked' };
      }
      const b = stack.router.backends.find((x) => x.id === t.id)!;
      const model = stack.router.models.find((m) => m.id === b.models[0]);
      const secret = b.auth_secret ? stack.secrets[b.auth_secret] : undefined;
      void fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(secret ? { authorization: `Bearer ${secret}` } : {}) },
        body: JSON.stringify({ model: model?.served_name ?? model?.id, messages: [{ role: 'user', content: 'wake' }], max_tokens: 1 }),
      })
        .then((r) => r.text())
        .catch(() => {});
      return { changed: true, detail: 'starting' };
    },
  };
}

function sampleOf(a: Arrival, hour: number, r: ChatResult): Sample {
  const ok = answeredOk(r);
  return {
    t: a.t,
    hour,
    region: a.region,
    model: a.model,
    interactive: a.interactive,
    stream: a.stream,
    ok,
    status: r.status,
    latency_ms: r.latencyMs,
    backend: r.router.backend ?? null,
    cold_start: r.router['cold-start'] ?? null,
    fallback: r.router.fallback ?? null,
    error: ok ? null : (r.error ?? r.errorEvent ?? (r.router.degraded === 'true' ? 'degraded answer' : `status ${r.status}`)),
  };
}

// ------------------------------------------------------------------ traffic

/** Poisson arrivals (by thinning) under each region's diurnal curve, plus the bursts; seeded. */
function schedule(dayMs: number, hourMs: number, seed = SEED): Arrival[] {
  const rnd = rng(seed);
  const out: Arrival[] = [];
  const pick = (region: RegionKey, t: number, burst: string | null, model: string | null, interactive: boolean | null): Arrival => {
    const inter = interactive ?? rnd() < INTERACTIVE_SHARE;
    let m = model;
    if (!m) {
      let x = rnd();
      m = MODEL_MIX.find(([, w]) => (x -= w) < 0)?.[0] ?? MODEL_MIX[0]![0];
    }
    return { t, region, model: m, interactive: inter, stream: inter && rnd() < 0.5, burst };
  };
  for (const region of Object.keys(REGIONS) as RegionKey[]) {
    const { peak, utcOffset } = REGIONS[region];
    const perMs = peak / 1000;
    for (let t = 0; ; ) {
      t += -Math.log(1 - rnd()) / perMs;
      if (t >= dayMs) break;
      const local = (((t / hourMs + utcOffset) % 24) + 24) % 24;
      const h = Math.floor(local);
      const share = DIURNAL[h]! + (DIURNAL[(h + 1) % 24]! - DIURNAL[h]!) * (local - h);
      if (rnd() < share) out.push(pick(region, t, null, null, null));
    }
  }
  for (const b of BURSTS) {
    const start = ((((b.localHour - REGIONS[b.region].utcOffset) % 24) + 24) % 24) * hourMs;
    const span = (b.minutes / 60) * hourMs;
    for (let i = 0; i < b.requests; i++) out.push(pick(b.region, start + rnd() * span, b.name, b.model, b.interactive));
  }
  return out.sort((x, y) => x.t - y.t);
}

/**
 * The predictive policy's request history: HISTORY_DAYS earlier days (same curves and bursts, other
 * seeds), each request attributed to the backend that served its region's clients for its model in
 * the always-on run (the most frequent one).
 */
function history(on: RunResult, dayMs: number, hourMs: number): Array<{ backend: string; dayMs: number }> {
  const votes = new Map<string, Map<string, number>>();
  for (const s of on.samples) {
    if (!s.backend) continue;
    const key = `${s.region}|${s.model}`;
    const v = votes.get(key) ?? new Map<string, number>();
    v.set(s.backend, (v.get(s.backend) ?? 0) + 1);
    votes.set(key, v);
  }
  const serving = new Map([...votes].map(([k, v]) => [k, [...v].sort((a, b) => b[1] - a[1])[0]![0]]));
  const out: Array<{ backend: string; dayMs: number }> = [];
  for (let d = 1; d <= HISTORY_DAYS; d++) {
    for (const a of schedule(dayMs, hourMs, SEED + d)) {
      const backend = serving.get(`${a.region}|${a.model}`);
      if (backend) out.push({ backend, dayMs: a.t });
    }
  }
  return out;
}

// ------------------------------------------------------------------ results

interface Summary {
  policy: string;
  backend_hours: number;
  gpu_hours: number;
  requests: number;
  ok: number;
  failed: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  /** Without the first request each backend served after each time it was parked. */
  p95_excl_first_ms: number;
  p99_excl_first_ms: number;
  excluded: number;
  parks: number;
  wakes: number;
  waited: number;
  avoided: number;
  waited_p50_ms: number;
  errors: Record<string, number>;
}

/** The first request each backend served after each park (by start time): the one that paid for the start. */
function firstAfterPark(r: RunResult): Set<Sample> {
  const out = new Set<Sample>();
  for (const [id, times] of Object.entries(r.parks)) {
    for (const t of times) {
      const first = r.samples.find((s) => s.backend === id && s.t >= t);
      if (first) out.add(first);
    }
  }
  return out;
}

function summarize(r: RunResult, hourMs: number): Summary {
  const lat = (xs: Sample[]) => xs.map((s) => s.latency_ms);
  const excluded = firstAfterPark(r);
  const waited = r.samples.filter((s) => s.cold_start === 'waited');
  const sum = (f: (id: string) => number) => Object.keys(r.onMs).reduce((n, id) => n + f(id), 0);
  return {
    policy: r.policy,
    backend_hours: round(sum((id) => r.onMs[id]!) / hourMs, 2),
    gpu_hours: round(sum((id) => (r.onMs[id]! * r.gpus[id]!)) / hourMs, 2),
    requests: r.samples.length,
    ok: r.samples.filter((s) => s.ok).length,
    failed: r.samples.filter((s) => !s.ok).length,
    p50_ms: round(percentile(lat(r.samples), 50), 1),
    p95_ms: round(percentile(lat(r.samples), 95), 1),
    p99_ms: round(percentile(lat(r.samples), 99), 1),
    p95_excl_first_ms: round(percentile(lat(r.samples.filter((s) => !excluded.has(s))), 95), 1),
    p99_excl_first_ms: round(percentile(lat(r.samples.filter((s) => !excluded.has(s))), 99), 1),
    excluded: excluded.size,
    parks: Object.values(r.parks).reduce((n, p) => n + p.length, 0),
    wakes: Object.values(r.wakes).reduce((n, w) => n + w, 0),
    waited: waited.length,
    avoided: r.samples.filter((s) => s.cold_start === 'avoided').length,
    waited_p50_ms: round(percentile(lat(waited), 50), 1),
    errors: r.samples.filter((s) => !s.ok).reduce<Record<string, number>>((m, s) => ((m[s.error ?? '?'] = (m[s.error ?? '?'] ?? 0) + 1), m), {}),
  };
}

type Aims = { policy: string; gpu_hours_ratio: number; gpu_aim_met: boolean; p95_ratio: number; p95_aim_met: boolean };

function tables(runs: RunResult[], summary: Summary[], allAims: Aims[], hourMs: number, factor: number, idleMs: number): BenchTable[] {
  const ms = (x: number) => (Number.isFinite(x) ? `${Math.round(x)} ms` : '-');
  const [s2z, on, pred] = [runs[0]!, runs[1]!, runs[2]!];
  const main: BenchTable = {
    title: `A compressed day: always-on, scale-to-zero (idle window) and predictive parking (7 simulated backends, 3 regions, ${os.cpus().length} cores)`,
    columns: ['policy', 'backend-h', 'GPU-h', 'requests', 'failed', 'p50', 'p95', 'p99', 'p95 w/o 1st after park', 'p99 w/o', 'parks', 'wakes', 'waited', 'avoided'],
    rows: summary.map((s) => [s.policy, s.backend_hours.toFixed(1), s.gpu_hours.toFixed(1), String(s.requests), String(s.failed), ms(s.p50_ms), ms(s.p95_ms), ms(s.p99_ms), `${ms(s.p95_excl_first_ms)} (−${s.excluded})`, ms(s.p99_excl_first_ms), String(s.parks), String(s.wakes), String(s.waited), String(s.avoided)]),
    notes: [
      ...allAims.flatMap((aims) => {
        const s = summary.find((x) => x.policy === aims.policy)!;
        return [
          `${aims.policy}: aim 1, GPU-hours ≤ ${AIM_GPU_RATIO * 100}% of always-on: ${(aims.gpu_hours_ratio * 100).toFixed(1)}% → ${aims.gpu_aim_met ? 'met' : 'NOT met'} (backend-hours: ${((s.backend_hours / summary[1]!.backend_hours) * 100).toFixed(1)}%)`,
          `${aims.policy}: aim 2, p95 without the first request after each park ≤ ${AIM_P95_RATIO}× always-on's p95: ${aims.p95_ratio.toFixed(3)}× → ${aims.p95_aim_met ? 'met' : 'NOT met'}; those first requests are ${((s.excluded / s.requests) * 100).toFixed(1)}% of all (a share near or above 5% empties p95's tail by construction: see p99 w/o)`,
        ];
      }),
      `predictive: profile from ${HISTORY_DAYS} earlier days (seeds ${SEED + 1}…${SEED + HISTORY_DAYS}, same curves and bursts); parks when fewer than ${PARK_PER_GPU} × GPUs requests are expected in the next hour (after 2 idle minutes), starts a parked backend when its usual ramp is within its start + 15 min; the idle window still applies`,
      `compression: a day of ${(24 * hourMs) / 1000} s, an hour of ${hourMs / 1000} s (×${Math.round(factor)}): traffic rates and the ${IDLE_MINUTES}-min idle window (${round(idleMs / 1000, 2)} s) are compressed; request latencies (dev sim profile) are not; cold starts are 0.5 / 1 / 2 s wall (${[500, 1000, 2000].map((x) => `${round((x * factor) / 60_000, 1)} min`).join(' / ')} of the day) for 8B / 70B / 405B`,
      `GPU-hours: time each sim was warm or waking (sampled every ${SAMPLE_MS} ms) × 1 / 4 / 8 GPUs for 8B / 70B / 405B backends; backend-h counts each backend as one`,
      `scale-to-zero: scripts/scale applyRound every ${ROUND_MS} ms (policy.ts: idle ${IDLE_MINUTES} min compressed, min_replicas 0, wake_replicas 1) with a sim driver; wakes = starts counted by the sims; waited / avoided = x-router-cold-start`,
      `interactive requests (${INTERACTIVE_SHARE * 100}%) carry x-router-timeout-ms ${INTERACTIVE_DEADLINE_MS}; loopback regions: an "avoided" request served from another region pays no extra network distance here (it would in production)`,
      ...summary.filter((s) => s.failed > 0).map((s) => `${s.policy} failures: ${Object.entries(s.errors).map(([e, n]) => `${n}× ${e}`).join('; ')}`),
      ...(s2z.roundErrors ? [`scale rounds with an error: ${s2z.roundErrors}`] : []),
      ...(pred.roundErrors ? [`predictive rounds with an error: ${pred.roundErrors}`] : []),
    ],
  };
  const ids = Object.keys(s2z.onMs);
  const perBackend: BenchTable = {
    title: 'Per backend',
    columns: ['backend', 'GPUs', 'warm h (always-on)', 'warm h (s2z)', 'warm h (predictive)', 'parks (pred)', 'wakes (pred)', 'parks', 'wakes', 'served (s2z)', 'waited', 'expected start (router)'],
    rows: ids.map((id) => [
      id,
      String(s2z.gpus[id]),
      (on.onMs[id]! / hourMs).toFixed(1),
      (s2z.onMs[id]! / hourMs).toFixed(1),
      (pred.onMs[id]! / hourMs).toFixed(1),
      String(pred.parks[id]!.length),
      String(pred.wakes[id]),
      String(s2z.parks[id]!.length),
      String(s2z.wakes[id]),
      String(s2z.samples.filter((s) => s.backend === id).length),
      String(s2z.samples.filter((s) => s.backend === id && s.cold_start === 'waited').length),
      s2z.expectedColdStart[id] === null ? '-' : ms(s2z.expectedColdStart[id]!),
    ]),
  };
  const byHour: BenchTable = {
    title: 'By UTC hour (requests by start time)',
    columns: ['hour', 'requests', 'p95 always-on', 'p95 s2z', 'p95 predictive', 'warm backends s2z (avg)', 'warm predictive', 'waited', 'avoided', 'waited (pred)'],
    rows: Array.from({ length: 24 }, (_, h) => {
      const a = on.samples.filter((s) => s.hour === h);
      const z = s2z.samples.filter((s) => s.hour === h);
      const p = pred.samples.filter((s) => s.hour === h);
      const warm = (r: RunResult) => (Number.isFinite(r.warmByHour[h]!) ? r.warmByHour[h]!.toFixed(1) : '-');
      return [`${String(h).padStart(2, '0')}:00`, String(z.length), ms(percentile(a.map((s) => s.latency_ms), 95)), ms(percentile(z.map((s) => s.latency_ms), 95)), ms(percentile(p.map((s) => s.latency_ms), 95)), warm(s2z), warm(pred), String(z.filter((s) => s.cold_start === 'waited').length), String(z.filter((s) => s.cold_start === 'avoided').length), String(p.filter((s) => s.cold_start === 'waited').length)];
    }),
  };
  return [main, perBackend, byHour];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const log = (msg: string) => process.stderr.write(`  · ${msg}\n`);
