/**
 * Modal driver: a deployed Function (e.g. a vLLM web server) whose autoscaler is overridden with
 * `Function_.updateAutoscaler()` from the `modal` SDK (0.11; it speaks gRPC, needs Node, and reads
 * MODAL_TOKEN_ID / MODAL_TOKEN_SECRET or ~/.modal.toml).
 *
 * Modal scales a Function between minContainers and maxContainers by itself and down to zero when
 * idle, so "replicas" here is the warm floor, minContainers: 0 parks (Modal stops the last
 * container after its scaledown window, which is set to the policy's idle window, capped at
 * Modal's 20 minutes), N keeps N warm or starts them for a wake-up.
 *
 * The SDK can set the autoscaler but not read it back, so `current().replicas` is the floor last
 * reported to the router by a scale event (`replicas` in /admin/backends; null before the first).
 * Modal's own `getCurrentStats().numTotalRunners` gives the containers running, used for `ready`.
 * A `modal deploy` resets the autoscaler to the decorator's values; the next policy change sets it
 * again.
 */
import type { CurrentScale, ScaleDriver, ScaleResult, ScaleTarget } from './types';
import { DriverError, errorMessage } from './types';

/** The subset of `modal`'s Function_ used here. */
export interface ModalFunctionHandle {
  updateAutoscaler(params: { minContainers?: number; maxContainers?: number; scaledownWindowMs?: number }): Promise<unknown>;
  getCurrentStats(): Promise<{ backlog: number; numTotalRunners: number }>;
}

/** The subset of `modal`'s ModalClient used here: tests pass a recording object. */
export interface ModalClientLike {
  functions: { fromName(appName: string, name: string, params?: { environment?: string }): Promise<ModalFunctionHandle> };
}

/** Modal's longest scaledown window (2 s to 1200 s). */
export const MODAL_MAX_SCALEDOWN_MS = 20 * 60_000;

export function modalDriver(client: () => Promise<ModalClientLike>): ScaleDriver {
  let made: Promise<ModalClientLike> | undefined;
  const fn = async (t: ScaleTarget): Promise<{ handle: ModalFunctionHandle; ref: string }> => {
    const m = t.scaling.modal;
    if (!m) throw new DriverError('driver "modal" needs a [scaling.modal] table');
    const ref = `${m.app}/${m.function}${m.environment ? ` (environment ${m.environment})` : ''}`;
    try {
      const c = await (made ??= client());
      return { handle: await c.functions.fromName(m.app, m.function, m.environment ? { environment: m.environment } : undefined), ref };
    } catch (e) {
      throw new DriverError(`modal: look up function ${ref}: ${errorMessage(e)}`, e);
    }
  };

  return {
    name: 'modal',

    async current(t): Promise<CurrentScale> {
      const { handle, ref } = await fn(t);
      let running: number;
      try {
        running = (await handle.getCurrentStats()).numTotalRunners;
      } catch (e) {
        throw new DriverError(`modal: read stats of ${ref}: ${errorMessage(e)}`, e);
      }
      const floor = t.status?.replicas ?? null;
      return { replicas: floor, ready: running, note: `${running} running${floor === null ? '; floor never set' : ''}` };
    },

    async scale(t, replicas): Promise<ScaleResult> {
      const { handle, ref } = await fn(t);
      const params = {
        minContainers: replicas,
        maxContainers: Math.max(replicas, t.scaling.max_replicas),
        scaledownWindowMs: Math.min(t.scaling.idle_minutes * 60_000, MODAL_MAX_SCALEDOWN_MS),
      };
      try {
        await handle.updateAutoscaler(params);
      } catch (e) {
        throw new DriverError(`modal: update autoscaler of ${ref}: ${errorMessage(e)}`, e);
      }
      return { changed: true, detail: `updateAutoscaler min=${params.minContainers} max=${params.maxContainers} scaledown=${params.scaledownWindowMs / 1000}s` };
    },
  };
}

/** The real SDK client, loaded only when a backend uses Modal (it opens gRPC channels). */
export async function sdkModalClient(): Promise<ModalClientLike> {
  const { ModalClient } = await import('modal');
  return new ModalClient();
}
