/**
 * Library entry point: start one simulated vLLM server.
 *
 *   const sim = await startSimServer({ models: ['meta-llama/Llama-3.1-8B-Instruct'] });
 *   // sim.url === 'http://127.0.0.1:<port>'
 *   sim.state.setFaults({ error_rate: 1 });
 *   await sim.close();
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseSimOptions, type SimOptions } from './options.js';
import { Sim } from './sim.js';

export type { SimOptions, ResolvedSimOptions, Latency, SimConfig, SimConfigUpdate } from './options.js';
export { ZERO_LATENCY } from './options.js';
export type { Faults, FaultsInput } from './faults.js';
export type { Sim, SimStateSnapshot } from './sim.js';
export type { RequestRecord } from './state.js';

export interface SimServer {
  /** `http://<host>:<port>` (no trailing slash). */
  url: string;
  port: number;
  host: string;
  name: string;
  /** Control and inspection API (same operations as the /sim/* endpoints). */
  state: Sim;
  /** Stops listening, aborts everything in flight and closes every connection. */
  close(): Promise<void>;
  /** The underlying node:http server. */
  server: Server;
}

export async function startSimServer(opts: SimOptions = {}): Promise<SimServer> {
  const o = parseSimOptions(opts);
  const sim = new Sim(o);
  const server = createServer({ keepAlive: true, noDelay: true, requestTimeout: 0 }, sim.handle);
  // Same idle keep-alive as uvicorn (5 s); Node's default headersTimeout is kept.
  server.keepAliveTimeout = 5_000;
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    server.once('error', onError);
    server.listen(o.port, o.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const port = addr.port;
  const hostForUrl = o.host.includes(':') ? `[${o.host}]` : o.host;
  sim.name = o.name ?? `sim-${port}`;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${hostForUrl}:${port}`,
    port,
    host: o.host,
    name: sim.name,
    state: sim,
    server,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        sim.shutdown();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
