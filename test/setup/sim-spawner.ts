import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestProject } from 'vitest/node';
import { startSimServer } from '../../regional/sim/server';
import { fakeKinds, startFakeBackend, type FakeKind } from '../../scripts/dev/standins';

/**
 * Global setup of the workerd test project. Tests in workerd cannot start Node servers, so
 * this runs a small spawner on loopback: `POST /spawn` with simulator options starts a fresh
 * regional/sim server (each test gets its own, so injected faults never leak between files)
 * and answers `{"url"}`; `POST /spawn-webhook` starts a webhook receiver (see below);
 * `POST /spawn-fake/<kind>` a stand-in backend (scripts/dev/standins/: modal, replicate, triton, and the managed providers openai, azure, anthropic, bedrock, vertex). Everything
 * is closed at teardown.
 */
export default async function setup(project: TestProject) {
  const sims: { close(): Promise<void> }[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', async () => {
      try {
        if (req.method === 'POST' && req.url === '/spawn-webhook') {
          const hook = await startWebhookReceiver(JSON.parse(body || '{}') as WebhookOptions);
          sims.push(hook);
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ url: hook.url }));
          return;
        }
        const fake = /^\/spawn-fake\/([a-z]+)$/.exec(req.url ?? '');
        if (req.method === 'POST' && fake && (fakeKinds as readonly string[]).includes(fake[1]!)) {
          // A stand-in for a serverless/Triton backend (scripts/dev/standins/), options as the body.
          const server = await startFakeBackend(fake[1] as FakeKind, JSON.parse(body || '{}') as Record<string, unknown>);
          sims.push(server);
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ url: server.url }));
          return;
        }
        if (req.method !== 'POST' || req.url !== '/spawn') throw new Error(`unknown ${req.method} ${req.url}`);
        const sim = await startSimServer({ host: '127.0.0.1', port: 0, ...JSON.parse(body || '{}') });
        sims.push(sim);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ url: sim.url }));
      } catch (e) {
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String(e) }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  project.provide('simSpawner', `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  return async () => {
    await Promise.all(sims.map((s) => s.close().catch(() => {})));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
}

interface WebhookOptions {
  /** Answer this many deliveries with `fail_status` before accepting (tests of retries). */
  fail_first?: number;
  fail_status?: number;
}

/**
 * A webhook receiver for the budget-alert tests: every request but `GET /calls` is recorded
 * (method, path, headers, raw body, the status it got) and answered 200, or `fail_status`
 * (default 500) for the first `fail_first` ones. `GET /calls` answers the records, oldest first.
 */
async function startWebhookReceiver(opts: WebhookOptions): Promise<{ url: string; close(): Promise<void> }> {
  const calls: { method: string; path: string; headers: Record<string, string>; body: string; status: number; at: number }[] = [];
  let failures = opts.fail_first ?? 0;
  const hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (req.method === 'GET' && req.url === '/calls') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(calls));
        return;
      }
      const status = failures > 0 ? (opts.fail_status ?? 500) : 200;
      if (failures > 0) failures--;
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')]));
      calls.push({ method: req.method ?? '', path: req.url ?? '', headers, body, status, at: Date.now() });
      res.writeHead(status, { 'content-type': 'application/json' }).end(status === 200 ? '{"ok":true}' : '{"error":"injected failure"}');
    });
  });
  await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => hook.close(() => resolve())),
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    simSpawner: string;
  }
}
