import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

// Plumbing shared by the stand-in servers of the serverless/Triton backends (replicate.ts,
// triton.ts, modal.ts here). Each records every call it gets (method, path, headers, body) and
// answers two control routes the tests use:
//   GET  /_fake/calls    the calls so far, oldest first (control routes are not recorded)
//   POST /_fake/release  lets go of every request the fake is holding (see `hold`)
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

export async function startFake(handler: FakeHandler): Promise<Fake> {
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
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')]));
      calls.push({ method: req.method ?? '', path, headers, body });
      try {
        await handler(req, body, res, ctx);
      } catch (e) {
        if (!res.headersSent) json(res, 500, { error: `fake failed: ${String(e)}` });
        else res.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  ctx.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: ctx.url,
    close: () =>
      new Promise<void>((resolve) => {
        release();
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
