import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

// Plumbing shared by the stand-in servers of the serverless/Triton backends (replicate.ts,
// triton.ts, modal.ts here): the tests' wire-format stand-ins, and the serverless backends of
// `npm start` (scripts/dev/serverless.ts). Each records every call it gets (method, path,
// headers, body) and answers two control routes the tests use:
//   GET  /_fake/calls    the calls so far, oldest first (control routes are not recorded)
//   POST /_fake/release  lets go of every request the fake is holding (see `hold`)
// With `lifecycle` set it also scales to zero like a serverless platform, with the same control
// route as the regional simulator (regional/sim), so the "sim" scale driver drives both:
//   GET  /sim/state      {"name","state":"warm"|"cold"|"waking","cold_start_ms","idle_scale_down_ms","last_request_at","wakes"}
//   POST /sim/state      {"cold": true} parks it; {"cold": false} warms it at once
// A request arriving cold starts a wake of cold_start_ms that every request waits for.
// Loopback only.

export interface RecordedCall {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

export interface FakeContext {
  /** The fake's own base URL (http://127.0.0.1:<port>). */
  url: string;
  calls: RecordedCall[];
  /** Resolves at the next /_fake/release (or when the server closes). */
  hold(): Promise<void>;
}

export type FakeHandler = (req: IncomingMessage, body: string, res: ServerResponse, ctx: FakeContext) => void | Promise<void>;

export interface Fake {
  url: string;
  close(): Promise<void>;
}

/** Scale-to-zero behaviour of a stand-in (off by default: the tests' stand-ins are always warm). */
export interface LifecycleOptions {
  name?: string;
  cold_start_ms?: number;
  /** Park after this long with nothing in flight and no request (0 = never), as Modal's scaledown window does. */
  idle_scale_down_ms?: number;
  start_cold?: boolean;
  log?: (line: string) => void;
}

/** Options every stand-in takes besides its own. */
export interface StandInServerOptions {
  /** Fixed port (npm start); default 0, ephemeral. */
  port?: number;
  lifecycle?: LifecycleOptions;
}

type State = 'warm' | 'cold' | 'waking';

/** Warm / cold / waking, as regional/sim/state.ts models it (requests wait for one shared wake). */
class Lifecycle {
  state: State;
  wakes = 0;
  lastRequestAt: number | null = null;
  inFlight = 0;
  private waiters: (() => void)[] = [];
  private wakeTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  constructor(private readonly o: LifecycleOptions) {
    this.state = o.start_cold ? 'cold' : 'warm';
    this.armIdle();
  }
  private log(msg: string) {
    this.o.log?.(`${this.o.name ?? 'stand-in'}: ${msg}`);
  }
  snapshot() {
    return {
      name: this.o.name ?? 'stand-in',
      state: this.state,
      cold_start_ms: this.o.cold_start_ms ?? 0,
      idle_scale_down_ms: this.o.idle_scale_down_ms ?? 0,
      last_request_at: this.lastRequestAt === null ? null : new Date(this.lastRequestAt).toISOString(),
      wakes: this.wakes,
    };
  }
  /** Resolves once warm; a cold stand-in starts its wake. */
  async warm(): Promise<void> {
    this.lastRequestAt = Date.now();
    if (this.state === 'warm') return;
    if (this.state === 'cold') {
      this.state = 'waking';
      this.log(`waking (cold start ${this.o.cold_start_ms ?? 0} ms)`);
      this.wakeTimer = setTimeout(() => this.finishWake(true), this.o.cold_start_ms ?? 0);
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }
  setCold(cold: boolean) {
    if (cold && this.state === 'warm') {
      this.state = 'cold';
      this.disarmIdle();
      this.log('scaled to zero (cold)');
    } else if (!cold && this.state !== 'warm') this.finishWake(false);
  }
  /** Request accounting for the idle timer. */
  begin() {
    this.inFlight++;
    this.disarmIdle();
  }
  end() {
    this.inFlight--;
    this.armIdle();
  }
  close() {
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.disarmIdle();
    this.finishWaiters();
  }
  private finishWake(counted: boolean) {
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    this.state = 'warm';
    if (counted) this.wakes++;
    this.log('warm');
    this.finishWaiters();
    this.armIdle();
  }
  private finishWaiters() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  private armIdle() {
    this.disarmIdle();
    const ms = this.o.idle_scale_down_ms ?? 0;
    if (ms > 0 && this.state === 'warm' && this.inFlight === 0) {
      this.idleTimer = setTimeout(() => this.setCold(true), ms);
      this.idleTimer.unref();
    }
  }
  private disarmIdle() {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }
}

export async function startFake(handler: FakeHandler, serverOpts: StandInServerOptions = {}): Promise<Fake> {
  const lifecycle = serverOpts.lifecycle ? new Lifecycle(serverOpts.lifecycle) : null;
  const calls: RecordedCall[] = [];
  let waiters: (() => void)[] = [];
  const release = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  const ctx: FakeContext = { url: '', calls, hold: () => new Promise<void>((resolve) => waiters.push(resolve)) };
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', async () => {
      const path = req.url ?? '/';
      if (req.method === 'GET' && path === '/_fake/calls') return json(res, 200, calls);
      if (req.method === 'POST' && path === '/_fake/release') {
        release();
        return json(res, 200, { ok: true });
      }
      if (lifecycle && path === '/sim/state') {
        if (req.method === 'GET') return json(res, 200, lifecycle.snapshot());
        const cold = req.method === 'POST' ? (parseBody(body)?.cold as unknown) : undefined;
        if (typeof cold !== 'boolean') return json(res, req.method === 'POST' ? 400 : 405, { detail: 'POST {"cold": true|false}' });
        lifecycle.setCold(cold);
        return json(res, 200, lifecycle.snapshot());
      }
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')]));
      calls.push({ method: req.method ?? '', path, headers, body });
      if (lifecycle) {
        lifecycle.begin();
        res.once('close', () => lifecycle.end());
        await lifecycle.warm();
      }
      try {
        await handler(req, body, res, ctx);
      } catch (e) {
        if (!res.headersSent) json(res, 500, { error: `fake failed: ${String(e)}` });
        else res.destroy();
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(serverOpts.port ?? 0, '127.0.0.1', () => resolve());
  });
  ctx.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: ctx.url,
    close: () =>
      new Promise<void>((resolve) => {
        release();
        lifecycle?.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function json(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(value));
}

export function parseBody(body: string): Record<string, any> | null {
  try {
    const v = JSON.parse(body);
    return v && typeof v === 'object' && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

/** The canned answer every fake model gives, token by token (one with a newline, to test multi-line SSE data). */
export const ANSWER_TOKENS = ['Hello', ',', ' world', '!\n', 'Second', ' line', '.'];

/** Resolves when the client has gone away (its connection closed). */
export function clientGone(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => res.on('close', () => resolve()));
}
