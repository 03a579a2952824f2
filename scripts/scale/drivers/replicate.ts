/**
 * Replicate driver: a deployment ("owner/name") whose instance bounds are set with the `replicate`
 * client (GET / PATCH /v1/deployments/{owner}/{name}; REPLICATE_API_TOKEN).
 *
 * Like Modal, Replicate autoscales between min_instances and max_instances and to zero when
 * min_instances is 0, so "replicas" is min_instances, the warm floor; max_instances is set to the
 * policy's max_replicas with it. Every PATCH creates a new release of the deployment, which is one
 * more reason to write only when the floor differs. Replicate does not report running instances
 * on the deployment, so `ready` is unknown here and wake-ups are answered with `waking` only.
 */
import Replicate from 'replicate';
import { z } from 'zod';
import type { CurrentScale, ScaleDriver, ScaleResult, ScaleTarget } from './types';
import { DriverError, errorMessage } from './types';

/** The subset of the `replicate` client used here. */
export interface ReplicateClientLike {
  deployments: {
    get(owner: string, name: string): Promise<unknown>;
    update(owner: string, name: string, config: { min_instances?: number; max_instances?: number }): Promise<unknown>;
  };
}

const deploymentSchema = z.object({
  current_release: z.object({
    number: z.number().optional(),
    configuration: z.object({ min_instances: z.number().int().nonnegative(), max_instances: z.number().int().nonnegative() }),
  }),
});

export function replicateDriver(client: () => ReplicateClientLike): ScaleDriver {
  let made: ReplicateClientLike | undefined;
  const target = (t: ScaleTarget) => {
    const r = t.scaling.replicate;
    if (!r) throw new DriverError('driver "replicate" needs a [scaling.replicate] table');
    const [owner = '', name = ''] = r.deployment.split('/');
    return { owner, name, ref: r.deployment, c: (made ??= client()) };
  };

  async function read(t: ScaleTarget) {
    const { owner, name, ref, c } = target(t);
    let body: unknown;
    try {
      body = await c.deployments.get(owner, name);
    } catch (e) {
      throw replicateError(`get deployment ${ref}`, e);
    }
    const parsed = deploymentSchema.safeParse(body);
    if (!parsed.success) throw new DriverError(`replicate: get deployment ${ref}: unexpected answer (no current_release.configuration)`);
    return { owner, name, ref, c, config: parsed.data.current_release.configuration };
  }

  return {
    name: 'replicate',

    async current(t): Promise<CurrentScale> {
      const { config } = await read(t);
      return { replicas: config.min_instances, ready: null, note: `instances ${config.min_instances}..${config.max_instances}` };
    },

    async scale(t, replicas): Promise<ScaleResult> {
      const { owner, name, ref, c, config } = await read(t);
      const max = Math.max(replicas, t.scaling.max_replicas);
      if (config.min_instances === replicas && config.max_instances === max) return { changed: false, detail: `${ref} already ${replicas}..${max}` };
      try {
        await c.deployments.update(owner, name, { min_instances: replicas, max_instances: max });
      } catch (e) {
        throw replicateError(`update deployment ${ref}`, e);
      }
      return { changed: true, detail: `PATCH deployments/${ref} min_instances=${replicas} max_instances=${max}` };
    },
  };
}

export function sdkReplicateClient(options: { auth?: string; baseUrl?: string } = {}): ReplicateClientLike {
  const auth = options.auth ?? process.env.REPLICATE_API_TOKEN;
  if (!auth) throw new DriverError('replicate: REPLICATE_API_TOKEN is not set');
  return new Replicate({ auth, ...(options.baseUrl ? { baseUrl: options.baseUrl } : {}) });
}

/** The client's ApiError says "Request to <url> failed with status 404 Not Found: {json}."; keep the status and Replicate's `detail`. */
function replicateError(what: string, e: unknown): DriverError {
  const response = typeof e === 'object' && e !== null && 'response' in e ? (e as { response?: unknown }).response : undefined;
  if (response instanceof Response) {
    const detail = /"detail"\s*:\s*"((?:[^"\\]|\\.)*)"/.exec(errorMessage(e))?.[1];
    const hint = response.status === 401 ? ' (check REPLICATE_API_TOKEN)' : response.status === 404 ? ' (check [scaling.replicate].deployment)' : '';
    return new DriverError(`replicate: ${what}: HTTP ${response.status}${detail ? `: ${detail}` : ''}${hint}`, e);
  }
  return new DriverError(`replicate: ${what}: ${errorMessage(e)}`, e);
}
