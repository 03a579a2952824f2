/**
 * Sim driver (`driver = "sim"`): the local stack's backends (regional/sim, and the serverless
 * stand-ins of scripts/dev/standins/) parked and woken through their control route:
 *   GET  <url>/sim/state   {"state": "warm" | "cold" | "waking", ...}
 *   POST <url>/sim/state   {"cold": true} parks, {"cold": false} warms
 * One replica at most: cold is 0, warm or waking is 1; `ready` is 1 only when warm. A wake-up by a
 * request (the sim starts on its own, taking its cold_start_ms) needs nothing from here; a scale-up
 * of a parked sim warms it at once, as a simulator has nothing to boot.
 * Loopback only: the URL is the backend's own (or [scaling.sim].url), and it must be 127.0.0.1.
 */
import { z } from 'zod';
import type { CurrentScale, ScaleDriver, ScaleResult, ScaleTarget } from './types';
import { DriverError, errorMessage } from './types';

export interface SimDriverOptions {
  /** Per-call time limit (default 5 s). */
  timeoutMs?: number;
}

const stateSchema = z.object({ state: z.enum(['warm', 'cold', 'waking']) });
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

export function simDriver(options: SimDriverOptions = {}): ScaleDriver {
  const timeoutMs = options.timeoutMs ?? 5_000;

  const stateUrl = (t: ScaleTarget): string => {
    const base = t.scaling.sim?.url ?? t.url;
    if (!base) throw new DriverError(`sim: backend ${t.id} has no url to find /sim/state at`);
    const url = new URL('/sim/state', base);
    if (url.protocol !== 'http:' || !LOOPBACK.has(url.hostname)) throw new DriverError(`sim: ${url.origin} is not a loopback http URL (the sim driver is for the local stack)`);
    return url.href;
  };

  async function call(t: ScaleTarget, init?: { cold: boolean }): Promise<z.infer<typeof stateSchema>> {
    const url = stateUrl(t);
    let res: Response;
    try {
      res = await fetch(url, {
        method: init ? 'POST' : 'GET',
        headers: init ? { 'content-type': 'application/json' } : undefined,
        body: init ? JSON.stringify(init) : undefined,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      throw new DriverError(`sim: ${init ? 'POST' : 'GET'} ${url}: ${errorMessage(e)} (is the local stack running?)`, e);
    }
    const text = await res.text();
    if (!res.ok) throw new DriverError(`sim: ${init ? 'POST' : 'GET'} ${url}: HTTP ${res.status} ${text.slice(0, 200)}`);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const parsed = stateSchema.safeParse(body);
    if (!parsed.success) throw new DriverError(`sim: ${url} answered without a state (not a simulator?)`);
    return parsed.data;
  }

  return {
    name: 'sim',

    async current(t): Promise<CurrentScale> {
      const { state } = await call(t);
      return { replicas: state === 'cold' ? 0 : 1, ready: state === 'warm' ? 1 : 0, note: state };
    },

    async scale(t, replicas): Promise<ScaleResult> {
      const before = (await call(t)).state;
      const cold = replicas === 0;
      if (cold === (before === 'cold')) return { changed: false, detail: `already ${before}` };
      const after = (await call(t, { cold })).state;
      return { changed: true, detail: `POST /sim/state cold=${cold} (${before} → ${after})` };
    },
  };
}
