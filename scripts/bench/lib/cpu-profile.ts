/**
 * CPU profiles of the router's isolate through workerd's DevTools inspector (startStack's
 * inspectorPort): Profiler.start, a load run, Profiler.stop, then the samples summed by function
 * (self time) and the busy time per request, a stand-in for the CPU time Cloudflare bills (it
 * excludes idle time, i.e. time spent waiting on I/O).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import WebSocket from 'ws';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface HotItem {
  fn: string;
  where: string;
  self_ms: number;
  self_pct: number;
}

export interface CpuSummary {
  wall_ms: number;
  busy_ms: number;
  /**
   * Busy time by who runs it, from the outermost JS frame of each sample: the Worker's request
   * handling, the Durable Objects' methods (billed to the objects, not the Worker), and samples
   * with no JS frame at all (the runtime's own work, e.g. "(program)", GC between calls).
   */
  by_owner_ms: { worker: number; durable_objects: number; runtime: number };
  idle_ms: number;
  gc_ms: number;
  requests: number;
  /** Non-idle CPU per request (ms): JS, GC and native time inside the isolate's thread. */
  busy_ms_per_request: number;
  worker_ms_per_request: number;
  do_ms_per_request: number;
  top: HotItem[];
}

export interface Profiler {
  start(): Promise<void>;
  /** Stops, summarizes, and writes the raw profile (DevTools' .cpuprofile format) to `saveTo` if given. */
  stop(requests: number, opts?: { topN?: number; saveTo?: string; bundle?: string }): Promise<CpuSummary>;
  close(): void;
}

/** Connects to the inspector target whose title or url matches `worker` (first target otherwise). */
export async function connectProfiler(inspectorPort: number, worker?: string): Promise<Profiler> {
  const targets = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json/list`)).json()) as { id: string; title?: string; url?: string; webSocketDebuggerUrl?: string }[];
  const target = targets.find((t) => worker && `${t.title ?? ''} ${t.url ?? ''} ${t.id}`.includes(worker)) ?? targets.find((t) => !/entry|core:/.test(`${t.title} ${t.id}`)) ?? targets[0];
  if (!target) throw new Error(`no inspector target on port ${inspectorPort}`);
  const wsUrl = target.webSocketDebuggerUrl ?? `ws://127.0.0.1:${inspectorPort}/${target.id}`;
  const ws = new WebSocket(wsUrl);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let next = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  ws.on('message', (data) => {
    const msg = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string } };
    if (msg.id === undefined) return;
    const p = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.error) p?.reject(new Error(msg.error.message));
    else p?.resolve(msg.result);
  });
  const send = <T>(method: string, params?: object): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  await send('Profiler.enable');
  await send('Profiler.setSamplingInterval', { interval: 100 });
  return {
    start: () => send('Profiler.start'),
    async stop(requests, { topN = 25, saveTo, bundle } = {}) {
      const { profile } = await send<{ profile: Profile }>('Profiler.stop');
      if (saveTo) writeFileSync(saveTo, JSON.stringify(profile));
      return summarize(profile, requests, topN, bundle ? moduleIndex(readFileSync(bundle, 'utf8')) : null);
    },
    close: () => ws.close(),
  };
}

/** esbuild's bundle marks each module's start with a `// path/to/module.ts` line: line → module. */
function moduleIndex(bundle: string): (line: number) => string {
  const starts: { line: number; module: string }[] = [];
  bundle.split('\n').forEach((text, i) => {
    const m = /^\/\/ (\S+\.[cm]?[jt]s)$/.exec(text);
    if (m) starts.push({ line: i, module: m[1]! });
  });
  return (line) => {
    let lo = 0;
    let hi = starts.length - 1;
    let found = '';
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]!.line <= line) {
        found = starts[mid]!.module;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  };
}

function summarize(profile: Profile, requests: number, topN: number, moduleOf: ((line: number) => string) | null): CpuSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  // A sample's time is the delta to the next sample.
  for (let i = 0; i < samples.length; i++) {
    const dt = deltas[i + 1] ?? 0;
    selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + dt);
  }
  const where = (f: CallFrame) => (f.url ? (moduleOf?.(f.lineNumber) || `${shortUrl(f.url)}:${f.lineNumber + 1}`) : '');
  /** The module of the outermost JS frame: who this sample works for. */
  const owner = (id: number): string => {
    let out = '';
    for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) {
      const f = byId.get(x)!.callFrame;
      if (f.url) out = where(f);
    }
    return out;
  };
  const byFn = new Map<string, { fn: string; where: string; us: number }>();
  const owners = { worker: 0, durable_objects: 0, runtime: 0 };
  let idle = 0;
  let gc = 0;
  let total = 0;
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    total += us;
    if (f.functionName === '(idle)') {
      idle += us;
      continue;
    }
    if (f.functionName === '(garbage collector)') gc += us;
    const o = owner(id);
    if (o === '') owners.runtime += us;
    else if (o.startsWith('durable-objects/')) owners.durable_objects += us;
    else owners.worker += us;
    const w = where(f);
    const key = `${f.functionName}@${w}`;
    const item = byFn.get(key) ?? { fn: f.functionName || '(anonymous)', where: w, us: 0 };
    item.us += us;
    byFn.set(key, item);
  }
  const busy = total - idle;
  const top = [...byFn.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, topN)
    .map((x) => ({ fn: x.fn, where: x.where, self_ms: x.us / 1000, self_pct: busy ? (100 * x.us) / busy : 0 }));
  const perReq = (us: number) => (requests ? us / 1000 / requests : 0);
  return {
    wall_ms: total / 1000,
    busy_ms: busy / 1000,
    by_owner_ms: { worker: owners.worker / 1000, durable_objects: owners.durable_objects / 1000, runtime: owners.runtime / 1000 },
    idle_ms: idle / 1000,
    gc_ms: gc / 1000,
    requests,
    busy_ms_per_request: perReq(busy),
    worker_ms_per_request: perReq(owners.worker),
    do_ms_per_request: perReq(owners.durable_objects),
    top,
  };
}

function shortUrl(url: string): string {
  const i = url.lastIndexOf('/');
  return i >= 0 ? url.slice(i + 1) : url;
}
