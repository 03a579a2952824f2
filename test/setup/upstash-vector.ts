import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestProject } from 'vitest/node';
import { startVectorStandIn, type VectorStandIn } from './upstash-vector-server';

/**
 * Global setup of the workerd test project: a loopback control server for Upstash Vector
 * contract stand-ins (test/setup/upstash-vector-server.ts), each test file starting its own so
 * that it can take it down. Provides `upstashVectorControl`:
 *
 *   POST /servers            → { id, url, token }   a new stand-in, empty
 *   POST /servers/<id>/stop  → closed port (and open connections dropped): calls fail at once
 *   POST /servers/<id>/start → back, with its data
 *   GET  /servers/<id>       → { running, stats: { requests, unauthorized, byCommand } }
 */
export default async function setup(project: TestProject) {
  const servers = new Map<string, VectorStandIn>();
  const control: Server = createServer((req, res) => {
    const reply = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    req.resume();
    req.on('end', async () => {
      try {
        const parts = (req.url ?? '').split('/').filter(Boolean);
        if (parts[0] !== 'servers') return reply(404, { error: 'unknown route' });
        if (parts.length === 1 && req.method === 'POST') {
          const s = await startVectorStandIn({ token: randomBytes(18).toString('base64url') });
          const id = String(servers.size + 1);
          servers.set(id, s);
          return reply(200, { id, url: s.url, token: s.token });
        }
        const s = servers.get(parts[1] ?? '');
        if (!s) return reply(404, { error: 'unknown server' });
        if (parts[2] === 'stop' && req.method === 'POST') await s.stop();
        else if (parts[2] === 'start' && req.method === 'POST') await s.start();
        else if (parts.length !== 2) return reply(404, { error: 'unknown route' });
        return reply(200, { running: s.running, stats: s.stats });
      } catch (e) {
        return reply(500, { error: String(e) });
      }
    });
  });
  await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));
  project.provide('upstashVectorControl', `http://127.0.0.1:${(control.address() as AddressInfo).port}`);
  return async () => {
    await new Promise<void>((resolve) => control.close(() => resolve()));
    await Promise.all([...servers.values()].map((s) => s.close().catch(() => {})));
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    upstashVectorControl: string;
  }
}
