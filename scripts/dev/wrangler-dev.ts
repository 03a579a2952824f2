/**
 * `npm run dev`: the same Worker under `wrangler dev` (live reload) instead of Miniflare's API.
 * Slower per request (wrangler's proxy sits in front), so benchmarks never use it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { DEV_DIR, ROOT } from './paths';

export interface WranglerDev {
  routerUrl: string;
  /** Resolves with wrangler's exit code. */
  exited: Promise<number>;
  close(): Promise<void>;
}

export async function startWranglerDev(o: { port: number; persistTo: string; secrets: Record<string, string> }): Promise<WranglerDev> {
  // wrangler dev reads secrets from .dev.vars (git-ignored).
  writeFileSync(join(ROOT, '.dev.vars'), Object.entries(o.secrets).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join('\n') + '\n', { mode: 0o600 });
  // Without this, Miniflare fetches request.cf from the internet (unreachable here) and falls back to a
  // placeholder located in Austin; a cf without a location keeps routing in config order, as under startStack.
  const cfFile = join(DEV_DIR, 'cf.json');
  writeFileSync(cfFile, JSON.stringify({ colo: 'LOCAL', httpProtocol: 'HTTP/1.1' }));

  const bin = createRequire(import.meta.url).resolve('wrangler/bin/wrangler.js');
  const child = spawn(process.execPath, [bin, 'dev', '--ip', '127.0.0.1', '--port', String(o.port), '--persist-to', o.persistTo], {
    cwd: ROOT,
    stdio: 'inherit',
    env: { ...process.env, CLOUDFLARE_CF_FETCH_PATH: cfFile, WRANGLER_SEND_METRICS: 'false' },
  });
  const exited = new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))));
  const routerUrl = `http://127.0.0.1:${o.port}`;
  try {
    await waitForHealth(routerUrl, child, 60_000);
  } catch (e) {
    await stop(child, exited);
    throw e;
  }
  return { routerUrl, exited, close: () => stop(child, exited) };
}

async function waitForHealth(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited with code ${child.exitCode}`);
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`wrangler dev did not answer ${url}/healthz within ${timeoutMs / 1000} s`);
}

async function stop(child: ChildProcess, exited: Promise<number>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM'); // bin/wrangler.js forwards it to its own child
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}
