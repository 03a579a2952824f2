/**
 * One simulated backend per [[vars.ROUTER.backends]] entry, all in ONE child process
 * (`regional/sim/main.ts --fleet`), so benchmarks see the sims and the router on separate
 * event loops, and one kill stops them all.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';
import type { RouterConfigInput } from '../../worker/config/schema';
import { ROOT } from './paths';
import { isStandIn } from './serverless';
import { simTimingFor, type SimOverrides, type SimProfileName, type SimTiming } from './sim-profiles';

/** What one entry of the `--fleet` JSON array holds (regional/sim/options.ts). */
export interface SimSpec extends SimTiming {
  name: string;
  host: string;
  port: number;
  models: string[];
  embedding_models: string[];
  api_key?: string;
  prefix_block_tokens?: number;
  prefix_cache_blocks?: number;
  max_model_len?: number;
}

export interface FleetOptions {
  profile: SimProfileName;
  /** Port 0 for every sim instead of the port in each backend's url. */
  ephemeral: boolean;
  /** Secret values by name, for backends with `auth_secret`. */
  secrets: Readonly<Record<string, string>>;
  /** Per-backend sim changes on top of the profile (undefined = the profile as it is). */
  simOverrides?: (backend: RouterConfigInput['backends'][number]) => SimOverrides | undefined;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost']);

/**
 * The fleet a router config implies: each backend serves its models' `served_name`s. Modal,
 * Replicate and Triton backends are not simulated here: they get stand-ins (serverless.ts).
 */
export function fleetFromConfig(router: RouterConfigInput, opts: FleetOptions): SimSpec[] {
  return router.backends.filter((b) => !isStandIn(b)).map((b) => {
    const models = b.models.map((id) => router.models.find((m) => m.id === id));
    const names = (type: 'chat' | 'embedding') =>
      models.filter((m) => m && (m.type ?? 'chat') === type).map((m) => m!.served_name ?? m!.id);
    const url = new URL(b.url);
    // A fixed-port sim stands in for the URL as written, so that URL must point at this machine.
    if (!opts.ephemeral && (url.protocol !== 'http:' || !LOOPBACK.has(url.hostname))) {
      throw new Error(`backend ${b.id}: ${b.url} is not an http://127.0.0.1 URL; the local stack simulates every backend of the top-level config`);
    }
    const spec: SimSpec = {
      name: b.id,
      host: '127.0.0.1',
      port: opts.ephemeral ? 0 : Number(url.port || 80),
      models: names('chat'),
      embedding_models: names('embedding'),
      ...withOverrides(simTimingFor(opts.profile, b.models), opts.simOverrides?.(b)),
    };
    if (b.auth_secret) {
      const key = opts.secrets[b.auth_secret];
      if (!key) throw new Error(`backend ${b.id}: no value for its auth_secret ${b.auth_secret}`);
      spec.api_key = key;
    }
    return spec;
  });
}

function withOverrides(timing: SimTiming, o: SimOverrides | undefined): Omit<SimSpec, 'name' | 'host' | 'port' | 'models' | 'embedding_models'> {
  if (!o) return timing;
  const { latency, ...rest } = o;
  return { ...timing, ...rest, latency: { ...timing.latency, ...latency } };
}

export interface SimFleet {
  /** Sim URL by backend id (= sim name). */
  servers: Record<string, string>;
  pid: number;
  close(): Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;
const EXIT_WITH_PARENT = pathToFileURL(join(ROOT, 'scripts/dev/exit-with-parent.ts')).href;

export async function startSimFleet(specs: readonly SimSpec[], opts: { log?: boolean } = {}): Promise<SimFleet> {
  const dir = mkdtempSync(join(tmpdir(), 'edge-router-fleet-'));
  const fleetFile = join(dir, 'fleet.json');
  writeFileSync(fleetFile, JSON.stringify(specs, null, 2));
  // `node --import tsx` rather than the tsx CLI: the CLI forks a second process, and a kill of the
  // first would leave the second serving.
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', EXIT_WITH_PARENT, 'regional/sim/main.ts', '--fleet', fleetFile, '--ready-json'], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  let stderrTail = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderrTail = (stderrTail + chunk).slice(-4_000);
    if (opts.log) process.stderr.write(chunk.replace(/^(?=.)/gm, '[sim] '));
  });

  try {
    const servers = await waitForReady(child, () => stderrTail);
    return {
      servers,
      pid: child.pid!,
      close: async () => {
        process.removeListener('exit', killOnExit);
        await stopChild(child);
      },
    };
  } catch (e) {
    process.removeListener('exit', killOnExit);
    await stopChild(child);
    throw e;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Resolves with the `servers` map of the `{"ready": true, ...}` line the sim prints on stdout. */
function waitForReady(child: ChildProcess, stderr: () => string): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const fail = (why: string) => {
      clearTimeout(timer);
      reject(new Error(`simulated backends did not start: ${why}${stderr() ? `\n--- sim stderr ---\n${stderr().trim()}` : ''}`));
    };
    const timer = setTimeout(() => fail(`no ready line within ${READY_TIMEOUT_MS / 1000} s`), READY_TIMEOUT_MS);
    child.once('error', (e) => fail(e.message));
    child.once('exit', (code, signal) => fail(`the sim process exited (${signal ?? `code ${code}`})`));
    lines.on('line', (line) => {
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        return; // not the ready line
      }
      if (typeof msg === 'object' && msg !== null && (msg as { ready?: unknown }).ready === true) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve((msg as { servers: Record<string, string> }).servers);
      }
    });
  });
}

/** SIGTERM, then SIGKILL if it is still there after a grace period. */
async function stopChild(child: ChildProcess, graceMs = 3_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
