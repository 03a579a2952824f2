import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestProject } from 'vitest/node';
import { startSimServer } from '../../regional/sim/server';

/**
 * Global setup of the workerd test project. Tests in workerd cannot start Node servers, so
 * this runs a small spawner on loopback: `POST /spawn` with simulator options starts a fresh
 * regional/sim server (each test gets its own, so injected faults never leak between files)
 * and answers `{"url"}`; everything is closed at teardown.
 */
export default async function setup(project: TestProject) {
  const sims: { close(): Promise<void> }[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', async () => {
      try {
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

declare module 'vitest' {
  export interface ProvidedContext {
    simSpawner: string;
  }
}
