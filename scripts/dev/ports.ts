import { createServer } from 'node:net';

/** True when nothing listens on host:port (we can bind it ourselves). */
export function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Throws one message naming every busy port and what it was meant for. */
export async function assertPortsFree(wanted: ReadonlyArray<{ port: number; what: string }>, host = '127.0.0.1'): Promise<void> {
  const busy: string[] = [];
  for (const { port, what } of wanted) {
    if (port !== 0 && !(await isPortFree(port, host))) busy.push(`${host}:${port} (${what})`);
  }
  if (busy.length) {
    throw new Error(`port${busy.length > 1 ? 's' : ''} already in use: ${busy.join(', ')}. Stop whatever listens there (another \`npm start\`?), e.g. find it with \`ss -ltnp | grep :${busy[0]!.split(':')[1]!.split(' ')[0]}\`.`);
  }
}

/** $PORT when set (must be 0-65535), else the fallback. */
export function portFromEnv(fallback: number): number {
  const raw = process.env.PORT;
  if (raw === undefined || raw === '') return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT=${raw} is not a port number (0-65535)`);
  return port;
}
