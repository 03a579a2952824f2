// The distance model of the local stack (dev and bench only; never part of the deployed Worker:
// worker/index.ts does not import this folder). On Cloudflare a Durable Object lives in one
// location and Upstash in one region, so a Worker far from them waits a round trip for every call;
// on this machine every such call is a loopback call. Here each call from the Worker to a Durable
// Object binding or to an Upstash origin waits ROUTER_SIM_REMOTE_RTT_MS: half before the call
// (the request travelling), half after (the reply). Calls made by the objects themselves are not
// delayed: they run where the object lives.
//
// Each request counts the remote calls made on its behalf (AsyncLocalStorage: calls started while
// it runs, by it or by the background work it starts). A call that has completed by the time the
// request's response is returned is counted as waited for ("synchronous"); one still in flight
// then was not on the request's path. It is an upper bound: a background call that finishes while
// the request waits for something else counts too (always likely at RTT 0); a call it joined that
// another request started is that request's. The bench also reports the direct measure, the added
// median latency over the RTT.

import { AsyncLocalStorage } from 'node:async_hooks';

export const RTT_VAR = 'ROUTER_SIM_REMOTE_RTT_MS';

/** One request's remote calls. */
export interface RemoteCalls {
  started: number;
  /** Completed while the request was still being answered (it waited for them). */
  waited: number;
  /** The most calls of this request in flight at once (2+: round trips overlapped). */
  maxInFlight: number;
  inFlight: number;
  /** Each call the request waited for, `binding.method:start-end` on a clock that ticks at every start and end. */
  log: string[];
  clock: number;
  open: boolean;
}

const calls = new AsyncLocalStorage<RemoteCalls>();

/** Runs one request's handling with its own call log; `waited` is final once `fn` resolves. */
export async function countingRemoteCalls<T>(fn: () => Promise<T>): Promise<{ value: T; calls: RemoteCalls }> {
  const log: RemoteCalls = { started: 0, waited: 0, maxInFlight: 0, inFlight: 0, log: [], clock: 0, open: true };
  try {
    const value = await calls.run(log, fn);
    return { value, calls: log };
  } finally {
    log.open = false;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One remote call: half the RTT out, the call, half the RTT back; counted for the current request. */
export async function remoteCall<T>(rttMs: number, call: () => Promise<T>, name = 'fetch'): Promise<T> {
  const log = calls.getStore();
  const start = log ? log.clock++ : 0;
  if (log) {
    log.started++;
    log.maxInFlight = Math.max(log.maxInFlight, ++log.inFlight);
  }
  try {
    if (rttMs > 0) await sleep(rttMs / 2);
    return await call();
  } finally {
    if (rttMs > 0) await sleep(rttMs / 2);
    if (log) log.inFlight--;
    if (log?.open) {
      log.waited++;
      log.log.push(`${name}:${start}-${log.clock++}`);
    }
  }
}

/** The RTT from the binding: a non-negative number of ms, else an error (the dev entry is only used with it set). */
export function rttFrom(env: Record<string, unknown>): number {
  const ms = Number(env[RTT_VAR]);
  if (env[RTT_VAR] === undefined || !Number.isFinite(ms) || ms < 0) throw new Error(`${RTT_VAR} must be a number of milliseconds >= 0 (got ${String(env[RTT_VAR])})`);
  return ms;
}

const isNamespace = (v: unknown): v is DurableObjectNamespace =>
  typeof v === 'object' && v !== null && typeof (v as DurableObjectNamespace).idFromName === 'function' && typeof (v as DurableObjectNamespace).get === 'function';

/** A stub whose every method call (RPC or fetch) is a remote call. */
function distantStub<S extends object>(stub: S, rttMs: number, binding: string): S {
  return new Proxy(stub, {
    get(target, prop) {
      const value = (target as Record<PropertyKey, unknown>)[prop];
      if (typeof prop === 'symbol' || prop === 'then' || typeof value !== 'function') return value;
      // Called on the stub itself: an RPC method's own `.apply` would be a remote property.
      return (...args: unknown[]) => remoteCall(rttMs, async () => (target as Record<PropertyKey, (...a: unknown[]) => Promise<unknown>>)[prop]!(...args), `${binding}.${prop}`);
    },
  });
}

function distantNamespace(ns: DurableObjectNamespace, rttMs: number, binding: string): DurableObjectNamespace {
  return new Proxy(ns, {
    get(target, prop) {
      const value = (target as unknown as Record<PropertyKey, unknown>)[prop];
      if (typeof value !== 'function') return value;
      const method = (...args: unknown[]) => Reflect.apply(value as (...a: unknown[]) => unknown, target, args);
      if (prop === 'get' || prop === 'getByName') return (...args: unknown[]) => distantStub(method(...args) as object, rttMs, binding);
      return method;
    },
  });
}

/** The Upstash origins in the ROUTER config (Redis and Vector REST URLs): fetches to them are remote calls. */
export function upstashOrigins(router: unknown): Set<string> {
  const up = (router as { upstash?: { redis_url?: unknown; vector_url?: unknown } } | null)?.upstash;
  const out = new Set<string>();
  for (const url of [up?.redis_url, up?.vector_url]) {
    if (typeof url !== 'string') continue;
    try {
      out.add(new URL(url).origin);
    } catch {
      // an invalid URL fails the config check; nothing to delay
    }
  }
  return out;
}

const distantEnvs = new WeakMap<object, Record<string, unknown>>();

/**
 * The env the Worker sees: every Durable Object namespace wrapped. Made once per env object, so
 * the Worker's per-isolate memos (stores keyed by namespace or config) stay stable.
 */
export function distantEnv<E extends Record<string, unknown>>(env: E, rttMs: number): E {
  let out = distantEnvs.get(env);
  if (!out) {
    out = { ...env };
    for (const [name, value] of Object.entries(env)) if (isNamespace(value)) out[name] = distantNamespace(value, rttMs, name);
    distantEnvs.set(env, out);
  }
  return out as E;
}

let fetchPatched = false;

/** Global fetch, delayed for the given origins (Upstash's REST clients call the global fetch per request). */
export function distantFetch(origins: Set<string>, rttMs: number): void {
  if (fetchPatched || origins.size === 0) return;
  fetchPatched = true;
  const original = globalThis.fetch;
  globalThis.fetch = ((input: RequestInfo | URL, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input);
    let origin: string | null = null;
    try {
      origin = new URL(url).origin;
    } catch {
      // not a URL: the original fetch reports it
    }
    return origin !== null && origins.has(origin) ? remoteCall(rttMs, () => original(input, init)) : original(input, init);
  }) as typeof fetch;
}
