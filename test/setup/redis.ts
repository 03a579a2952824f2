import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { RespConnection, startUpstashBridge, type UpstashBridge } from './upstash-bridge';

/**
 * Global setup (both test projects): a real `redis-server` on a free loopback port, without
 * persistence, behind an Upstash REST bridge (test/setup/upstash-bridge.ts). Provides:
 *
 * - `upstash`: `{ url, token }` of the shared bridge (use your own key prefix per test file);
 * - `upstashControl`: a loopback control server for bridges of a test's own, which the test can
 *   stop and start (Upstash going down mid-test): `POST /bridges` → `{ id, url, token }`,
 *   `POST /bridges/<id>/stop` (closed port), `POST /bridges/<id>/hang` (accepts, never answers),
 *   `POST /bridges/<id>/start` (back to normal), `GET /bridges/<id>` → `{ running, stats }`.
 *
 * A missing `redis-server` fails the run (it does not skip): CI installs it (`.ci/run`).
 * `REDIS_SERVER` may name another binary.
 */
export default async function setup(project: TestProject) {
  const redis = await startRedis();
  const token = randomBytes(18).toString('base64url');
  const shared = await startUpstashBridge({ redisPort: redis.port, token });
  const own = new Map<string, UpstashBridge>();

  const control: Server = createHttpServer((req, res) => {
    const reply = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    req.resume();
    req.on('end', async () => {
      try {
        const parts = (req.url ?? '').split('/').filter(Boolean); // bridges[/id[/action]]
        if (parts[0] !== 'bridges') return reply(404, { error: 'unknown route' });
        if (parts.length === 1 && req.method === 'POST') {
          const bridge = await startUpstashBridge({ redisPort: redis.port, token: randomBytes(18).toString('base64url') });
          const id = String(own.size + 1);
          own.set(id, bridge);
          return reply(200, { id, url: bridge.url, token: bridge.token });
        }
        const bridge = own.get(parts[1] ?? '');
        if (!bridge) return reply(404, { error: 'unknown bridge' });
        if (parts[2] === 'stop' && req.method === 'POST') await bridge.stop();
        else if (parts[2] === 'start' && req.method === 'POST') await bridge.start();
        else if (parts[2] === 'hang' && req.method === 'POST') await bridge.hang();
        else if (parts.length !== 2) return reply(404, { error: 'unknown route' });
        return reply(200, { running: bridge.running, stats: bridge.stats });
      } catch (e) {
        return reply(500, { error: String(e) });
      }
    });
  });
  await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));

  project.provide('upstash', { url: shared.url, token: shared.token });
  project.provide('upstashControl', `http://127.0.0.1:${(control.address() as AddressInfo).port}`);

  return async () => {
    await new Promise<void>((resolve) => control.close(() => resolve()));
    await Promise.all([shared, ...own.values()].map((b) => b.close().catch(() => {})));
    await redis.stop();
  };
}

export interface RedisServer {
  port: number;
  stop(): Promise<void>;
}

/** Starts redis-server on a free loopback port (no RDB, no AOF) and waits for PING. */
export async function startRedis(): Promise<RedisServer> {
  const bin = process.env.REDIS_SERVER || 'redis-server';
  let lastError: Error | null = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'edge-router-redis-'));
    const child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<Error>((resolve) => {
      child.once('error', (e: NodeJS.ErrnoException) =>
        resolve(
          e.code === 'ENOENT'
            ? new Error(`redis-server not found ("${bin}"). Tests of the Upstash path need a real Redis: apt-get install -y redis-server (.ci/run does it).`)
            : e,
        ),
      );
      child.once('exit', (code, signal) => resolve(new Error(`redis-server exited (${code ?? signal}) before answering PING: ${stderr.trim()}`)));
    });
    const ready = await Promise.race([waitForPing(port, 10_000), exited]);
    if (ready === true) {
      return { port, stop: () => stopChild(child, dir) };
    }
    lastError = ready instanceof Error ? ready : new Error('redis-server did not answer PING within 10 s');
    await stopChild(child, dir);
    if ((lastError as Error).message.includes('not found')) break;
  }
  throw lastError!;
}

async function waitForPing(port: number, timeoutMs: number): Promise<true | Error> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      const conn = await RespConnection.open(port);
      try {
        if ((await conn.send(['PING'])) === 'PONG') return true;
      } finally {
        conn.close();
      }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return new Error(`redis-server did not answer PING on port ${port} within ${timeoutMs} ms`);
}

function stopChild(child: ChildProcess, dir: string): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      rmSync(dir, { recursive: true, force: true });
      resolve();
    };
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return done();
    const kill = setTimeout(() => child.kill('SIGKILL'), 3_000);
    child.once('exit', () => {
      clearTimeout(kill);
      done();
    });
    child.kill('SIGTERM');
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

declare module 'vitest' {
  export interface ProvidedContext {
    upstash: { url: string; token: string };
    upstashControl: string;
  }
}
