/**
 * The local stack: simulated backends (one child process) + the Worker under Miniflare's API
 * (no wrangler dev proxy, so benchmarks see the router's own cost). Used by `npm start`, the
 * end-to-end tests and the benchmarks.
 */
import { Log, LogLevel, Miniflare } from 'miniflare';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { RouterConfigInput } from '../../worker/config/schema';
import { createKey, ensureTenantKeys, type CreatedKey } from './keys';
import { ROOT, WRANGLER_TOML } from './paths';
import { assertPortsFree, portFromEnv } from './ports';
import { randomSecret, secretNames } from './secrets';
import { applyDevLayer } from './dev-layer';
import { isStandIn, standInSecrets, startStandIns } from './serverless';
import { fleetFromConfig, startSimFleet, type SimFleet } from './sim-fleet';
import type { SimOverrides, SimProfileName } from './sim-profiles';
import { readWranglerConfig, validRouter } from './wrangler-config';
import { bundleWorker } from './worker-bundle';

export interface StackOptions {
  /** Router port; 0 = ephemeral. Default: $PORT, else 8787. */
  port?: number;
  /** Sims on ephemeral ports, backend URLs rewritten in ROUTER (tests, benches); else the ports in wrangler.toml. */
  ephemeralBackends?: boolean;
  /** Root for local state, like `wrangler dev --persist-to` (DOs under <dir>/v3/do); false = in memory. */
  persist?: string | false;
  simProfile?: SimProfileName;
  /** Per-backend sim changes on top of simProfile (a bench's prefill cost, prefix-cache size, …). */
  simOverrides?: (backend: RouterConfigInput['backends'][number]) => SimOverrides | undefined;
  /** Runs before the sims are derived from the config: every backend it leaves gets a sim. */
  configPatch?: (router: RouterConfigInput) => RouterConfigInput;
  /** Backends served by the caller's own server instead of a sim (backend id → its base URL): a test's stand-in. */
  standIns?: Record<string, string>;
  /** Default: random per stack. */
  adminToken?: string;
  /** Values of backend `auth_secret`s (e.g. TRTLLM_EU_WEST_KEY); missing ones are random. */
  secrets?: Record<string, string>;
  /** Keys to keep if they still authenticate (npm start's previous run), by tenant. */
  reuseKeys?: Partial<Record<string, string>>;
  /**
   * Serve routerUrl from a socket straight into the Worker, skipping Miniflare's entry worker
   * (request logs, request.cf injection, error pages). That dev-only layer adds ~0.1 ms per request
   * here and cuts throughput by ~40%; the benches skip it. request.cf is then absent.
   */
  directSocket?: boolean;
  /** Open workerd's DevTools inspector on this port (CPU profiles of the router). */
  inspectorPort?: number;
  /** Forward sim and workerd output (npm start); tests keep it quiet. */
  log?: boolean;
  configPath?: string;
  /** Put scripts/dev/dev-layer.toml over the config (npm start: serverless backends, a parkable sim). */
  devLayer?: boolean;
  /**
   * The distance model (worker/dev/remote-rtt.ts): every call from the Worker to a Durable Object or
   * to Upstash waits this round trip, and answers carry x-router-debug-remote-calls. Default:
   * $ROUTER_SIM_REMOTE_RTT_MS; unset = the plain Worker (no wrapper, no debug header).
   */
  remoteRttMs?: number;
}

export interface Stack {
  routerUrl: string;
  adminToken: string;
  /** Sim URL by backend id. */
  backends: Record<string, string>;
  /** One API key per dev tenant. */
  keys: { demo: string; acme: string };
  /** The ROUTER config the Worker runs with (after configPatch and URL rewrite). */
  router: RouterConfigInput;
  /** All Worker secrets, by name. */
  secrets: Record<string, string>;
  createKey(tenant: string, name: string): Promise<CreatedKey>;
  close(): Promise<void>;
}

/** Tenants the stack makes a key for (both are in the top-level config). */
export const DEV_TENANTS = ['demo', 'acme'] as const;
/** request.cf without a location: routing without x-router-debug-geo then follows config order. */
const LOCAL_CF = { colo: 'LOCAL', httpProtocol: 'HTTP/1.1' };

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const port = opts.port ?? portFromEnv(8787);
  const ephemeral = opts.ephemeralBackends ?? false;
  const wrangler = readWranglerConfig(opts.configPath ?? WRANGLER_TOML);
  let router: RouterConfigInput = structuredClone(wrangler.router);
  if (opts.devLayer) router = applyDevLayer(router);
  if (opts.configPatch) router = validRouter(opts.configPatch(router), 'after configPatch');
  for (const tenant of DEV_TENANTS) {
    if (!router.tenants?.[tenant]) throw new Error(`the stack needs a tenant "${tenant}" in [vars.ROUTER.tenants]`);
  }

  const secrets: Record<string, string> = {};
  for (const name of secretNames(router)) secrets[name] = opts.secrets?.[name] ?? randomSecret('sk_');
  Object.assign(secrets, opts.secrets); // and any the caller brings (e.g. an Upstash token)
  secrets.ADMIN_TOKEN = opts.adminToken ?? opts.secrets?.ADMIN_TOKEN ?? randomSecret('adm_');
  Object.assign(secrets, standInSecrets(router, secrets));

  const remoteRtt = opts.remoteRttMs ?? remoteRttFromEnv();
  const external = opts.standIns ?? {};
  const specs = fleetFromConfig({ ...router, backends: router.backends.filter((b) => !(b.id in external)) }, { profile: opts.simProfile ?? 'dev', ephemeral, secrets, simOverrides: opts.simOverrides });
  const standInPorts = ephemeral ? [] : router.backends.filter(isStandIn).map((b) => ({ port: Number(new URL(b.url).port || 80), what: `stand-in backend ${b.id}` }));
  await assertPortsFree([...specs.map((s) => ({ port: s.port, what: `simulated backend ${s.name}` })), ...standInPorts, { port, what: 'router' }]);

  const cleanups: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
  };
  try {
    // Both settle before going on, so sims that came up are closed even if the bundle failed.
    const [fleetResult, bundleResult] = await Promise.allSettled([startSimFleet(specs, { log: opts.log }), bundleWorker(
        remoteRtt === undefined ? (wrangler.main ?? 'worker/index.ts') : REMOTE_RTT_ENTRY,
        wrangler.define,
        remoteRtt === undefined ? {} : { outName: 'worker-remote-rtt.js', external: ['node:async_hooks'] },
      ),
    ]);
    if (fleetResult.status === 'fulfilled') cleanups.push(() => fleetResult.value.close());
    if (fleetResult.status === 'rejected') throw fleetResult.reason;
    if (bundleResult.status === 'rejected') throw bundleResult.reason;
    const standIns = await startStandIns(router, { ephemeral, secrets, log: opts.log, instant: opts.simProfile === 'instant' });
    cleanups.push(() => standIns.close());
    const fleet: SimFleet = { ...fleetResult.value, servers: { ...fleetResult.value.servers, ...standIns.servers } };
    const scriptPath = bundleResult.value;
    if (ephemeral) router = withSimUrls(router, fleet, external);
    else router = { ...router, backends: router.backends.map((b) => (external[b.id] ? { ...b, url: external[b.id]! } : b)) };

    const mf = new Miniflare({
      ...wrangler.workerOptions,
      // wrangler dev keys DO storage by worker name too, so <persist>/v3/do is shared with `npm run dev`.
      name: wrangler.name,
      scriptPath,
      modules: true,
      modulesRoot: ROOT,
      host: '127.0.0.1',
      port: opts.directSocket ? 0 : port,
      unsafeDirectSockets: opts.directSocket ? [{ host: '127.0.0.1', port }] : undefined,
      cf: LOCAL_CF,
      // The distance model counts calls per request with AsyncLocalStorage (dev entry only).
      ...(remoteRtt === undefined ? {} : { compatibilityFlags: [...(wrangler.workerOptions.compatibilityFlags ?? []), 'nodejs_als'] }),
      ...(opts.inspectorPort ? { inspectorPort: opts.inspectorPort } : {}),
      durableObjectsPersist: opts.persist ? join(opts.persist, 'v3', 'do') : false,
      // Batch files (R2) next to the batches that name them (README "Batch and async"); the queue itself is in memory.
      r2Persist: opts.persist ? join(opts.persist, 'v3', 'r2') : false,
      bindings: { ...wrangler.bindings, ...secrets, ROUTER: router, ...(remoteRtt === undefined ? {} : { [RTT_VAR]: String(remoteRtt) }) },
      log: opts.log ? new Log(LogLevel.INFO) : undefined,
      handleRuntimeStdio: opts.log ? undefined : quietStdio,
    });
    cleanups.push(() => mf.dispose());
    const entryUrl = (await mf.ready).origin;
    const routerUrl = opts.directSocket ? (await mf.unsafeGetDirectURL()).origin : entryUrl;

    const adminToken = secrets.ADMIN_TOKEN;
    const keys = await ensureTenantKeys(routerUrl, adminToken, DEV_TENANTS, opts.reuseKeys);
    return {
      routerUrl,
      adminToken,
      backends: fleet.servers,
      keys: { demo: keys.demo!, acme: keys.acme! },
      router,
      secrets,
      createKey: (tenant, name) => createKey(routerUrl, adminToken, tenant, name),
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/** The dev-only entry that wraps the Worker's bindings in the distance model (never deployed). */
const REMOTE_RTT_ENTRY = 'worker/dev/remote-rtt-entry.ts';
const RTT_VAR = 'ROUTER_SIM_REMOTE_RTT_MS';

function remoteRttFromEnv(): number | undefined {
  const raw = process.env[RTT_VAR];
  if (raw === undefined || raw === '') return undefined;
  const ms = Number(raw);
  if (!Number.isFinite(ms) || ms < 0) throw new Error(`${RTT_VAR} must be a number of milliseconds >= 0 (got "${raw}")`);
  return ms;
}

/** Points each backend at its sim, keeping any path of the configured URL. */
function withSimUrls(router: RouterConfigInput, fleet: SimFleet, standIns: Record<string, string>): RouterConfigInput {
  return {
    ...router,
    backends: router.backends.map((b) => {
      if (standIns[b.id]) return { ...b, url: standIns[b.id]! };
      const sim = fleet.servers[b.id];
      if (!sim) throw new Error(`the sim fleet has no server for backend ${b.id}`);
      const url = new URL(b.url);
      const simUrl = new URL(sim);
      url.protocol = simUrl.protocol;
      url.host = simUrl.host;
      return { ...b, url: url.href.replace(/\/$/, '') };
    }),
  };
}

/** Drop workerd's stdout (request logs) but keep its stderr, where uncaught errors land. */
function quietStdio(stdout: Readable, stderr: Readable): void {
  stdout.resume();
  stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));
}
