/**
 * `npm start`: simulated backends on the ports in wrangler.toml + the router on 127.0.0.1:8787
 * ($PORT overrides), state under .dev/. `--wrangler-dev` (npm run dev) runs the Worker under
 * `wrangler dev` for live reload instead of Miniflare's API.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { banner } from './dev/banner';
import { rememberedKeys, writeEndpoints } from './dev/endpoints';
import { ensureTenantKeys } from './dev/keys';
import { writeEffectiveConfig } from './dev/dev-layer';
import { DEV_DIR, WRANGLER_TOML } from './dev/paths';
import { assertPortsFree, portFromEnv } from './dev/ports';
import { loadOrCreateSecrets, secretNames } from './dev/secrets';
import { fleetFromConfig, startSimFleet } from './dev/sim-fleet';
import { DEV_TENANTS, startStack } from './dev/stack';
import { startWranglerDev } from './dev/wrangler-dev';
import { readWranglerConfig } from './dev/wrangler-config';
import type { RouterConfigInput } from '../worker/config/schema';

const ENDPOINTS = join(DEV_DIR, 'endpoints.json');
const PERSIST = join(DEV_DIR, 'do');
/** The config the local stack runs, for `npm run scale` and `npm run finops`. */
const EFFECTIVE_CONFIG = join(DEV_DIR, 'wrangler.toml');

interface Running {
  routerUrl: string;
  adminToken: string;
  keys: Record<string, string>;
  backends: Record<string, string>;
  /** The config the Worker runs (npm start: with the dev layer). */
  router: RouterConfigInput;
  close(): Promise<void>;
  exited?: Promise<number>;
}

async function main(): Promise<void> {
  const wranglerDev = process.argv.includes('--wrangler-dev');
  const port = portFromEnv(8787);
  mkdirSync(DEV_DIR, { recursive: true });
  const { router } = readWranglerConfig(WRANGLER_TOML);
  const secrets = loadOrCreateSecrets(join(DEV_DIR, 'secrets.json'), secretNames(router));
  const remembered = rememberedKeys(ENDPOINTS);

  const running: Running = wranglerDev
    ? await startWithWrangler(router, port, secrets, remembered)
    : await startStack({ port, persist: PERSIST, simProfile: 'dev', secrets, reuseKeys: remembered, log: true, directSocket: true, devLayer: true });
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) process.exit(code); // a second Ctrl-C: don't wait
    stopping = true;
    console.log('\nstopping…');
    await running.close();
    process.exit(code);
  };
  // Miniflare's own SIGINT/SIGTERM hook exits synchronously, which would SIGKILL the sims on the way
  // out; take the signals over so close() runs in order (it also removes Miniflare's hook).
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.removeAllListeners(signal);
    process.on(signal, () => void stop(0));
  }
  running.exited?.then((code) => void stop(code));

  writeEffectiveConfig(EFFECTIVE_CONFIG, running.router);
  writeEndpoints(ENDPOINTS, {
    router: running.routerUrl,
    admin_token: running.adminToken,
    tenants: Object.fromEntries(Object.entries(running.keys).map(([t, k]) => [t, { api_key: k }])),
    backends: running.backends,
    config: EFFECTIVE_CONFIG,
  });
  const model = router.models.find((m) => (m.type ?? 'chat') === 'chat')?.id ?? router.models[0]!.id;
  console.log(banner({ routerUrl: running.routerUrl, keys: running.keys, model, endpointsFile: ENDPOINTS, mode: wranglerDev ? 'wrangler dev' : 'Miniflare' }));
}

/** The same sims on the same fixed ports, with the Worker under `wrangler dev` (it reads wrangler.toml itself). */
async function startWithWrangler(
  router: RouterConfigInput,
  port: number,
  secrets: Record<string, string>,
  remembered: Record<string, string | undefined>,
): Promise<Running> {
  const specs = fleetFromConfig(router, { profile: 'dev', ephemeral: false, secrets });
  await assertPortsFree([...specs.map((s) => ({ port: s.port, what: `simulated backend ${s.name}` })), { port, what: 'router (wrangler dev)' }]);
  const fleet = await startSimFleet(specs, { log: true });
  try {
    const dev = await startWranglerDev({ port, persistTo: PERSIST, secrets });
    const close = async () => {
      await dev.close();
      await fleet.close();
    };
    try {
      const keys = await ensureTenantKeys(dev.routerUrl, secrets.ADMIN_TOKEN!, DEV_TENANTS, remembered);
      return { routerUrl: dev.routerUrl, adminToken: secrets.ADMIN_TOKEN!, keys, backends: fleet.servers, router, close, exited: dev.exited };
    } catch (e) {
      await close();
      throw e;
    }
  } catch (e) {
    await fleet.close();
    throw e;
  }
}

main().catch((e: unknown) => {
  console.error(`npm start failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
