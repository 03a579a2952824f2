/**
 * The stand-in servers of the local stack's Modal, Replicate and Triton backends (any backend of
 * those kinds in the config: the dev layer adds three), in this process. Each gets the backend's
 * credentials, and the serverless ones (modal, replicate) the platform's lifecycle: they start
 * cold, wake in the backend's cold_start_ms on a request, and park after scaling.idle_minutes.
 */
import type { BackendKind, RouterConfigInput } from '../../worker/config/schema';
import { randomSecret } from './secrets';
import { startFakeBackend, type Fake, type FakeKind } from './standins';

export const STAND_IN_KINDS: readonly BackendKind[] = ['modal', 'replicate', 'triton'];
const SERVERLESS: readonly BackendKind[] = ['modal', 'replicate'];

type Backend = RouterConfigInput['backends'][number];

export const isStandIn = (b: Backend) => STAND_IN_KINDS.includes(b.kind);

/** Secret names the stand-ins check, by backend. */
function secretNamesOf(b: Backend): string[] {
  return [b.auth_secret, b.modal?.key_secret, b.modal?.secret_secret].filter((s): s is string => !!s);
}

/** Values for the stand-ins' secrets the caller did not bring (both ends are ours). */
export function standInSecrets(router: RouterConfigInput, have: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const b of router.backends.filter(isStandIn)) for (const name of secretNamesOf(b)) if (!have[name] && !out[name]) out[name] = randomSecret('sk_');
  return out;
}

export interface StandIns {
  /** Stand-in URL by backend id. */
  servers: Record<string, string>;
  close(): Promise<void>;
}

export async function startStandIns(
  router: RouterConfigInput,
  opts: { ephemeral: boolean; secrets: Readonly<Record<string, string>>; log?: boolean; instant?: boolean },
): Promise<StandIns> {
  const started: Array<{ id: string; fake: Fake }> = [];
  const close = async () => {
    await Promise.all(started.map((s) => s.fake.close().catch(() => {})));
  };
  try {
    for (const b of router.backends.filter(isStandIn)) {
      const port = opts.ephemeral ? 0 : Number(new URL(b.url).port || 80);
      const secret = (name: string | undefined) => (name ? opts.secrets[name] : undefined);
      const serverless = SERVERLESS.includes(b.kind) && !opts.instant;
      const lifecycle = serverless
        ? {
            name: b.id,
            cold_start_ms: b.cold_start_ms ?? 0,
            idle_scale_down_ms: (b.scaling?.idle_minutes ?? 0) * 60_000,
            start_cold: true,
            log: opts.log ? (line: string) => process.stderr.write(`[stand-in] ${line}\n`) : undefined,
          }
        : undefined;
      const options: Record<string, unknown> = { port, lifecycle };
      if (b.kind === 'modal') Object.assign(options, { key: secret(b.modal?.key_secret), secret: secret(b.modal?.secret_secret), bearer: secret(b.auth_secret) });
      if (b.kind === 'replicate') Object.assign(options, { token: secret(b.auth_secret) });
      if (b.kind === 'triton') Object.assign(options, { models: [b.triton?.model ?? 'ensemble'] });
      const fake = await startFakeBackend(b.kind as FakeKind, options);
      started.push({ id: b.id, fake });
      if (opts.log) process.stderr.write(`[stand-in] ${b.id} (${b.kind}${serverless ? `, cold start ${b.cold_start_ms ?? 0} ms` : ''}) on ${fake.url}\n`);
    }
  } catch (e) {
    await close();
    throw new Error(`stand-in backends did not start: ${e instanceof Error ? e.message : String(e)}`);
  }
  return { servers: Object.fromEntries(started.map((s) => [s.id, s.fake.url])), close };
}
