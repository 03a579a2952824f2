import type { ScalingConfig } from '../../../worker/config/scaling';
import type { KubernetesDriverOptions } from './kubernetes';
import type { ModalClientLike } from './modal';
import type { ReplicateClientLike } from './replicate';
import type { SimDriverOptions } from './sim';
import type { ScaleDriver } from './types';

export type DriverName = Exclude<ScalingConfig['driver'], 'none'>;
export type Drivers = (name: DriverName) => Promise<ScaleDriver>;

export interface DriverOptions {
  kubernetes?: KubernetesDriverOptions;
  modal?: () => Promise<ModalClientLike>;
  replicate?: () => ReplicateClientLike;
  sim?: SimDriverOptions;
}

/**
 * One driver per kind, loaded on first use: a run with no Kubernetes or Modal backend never loads
 * those SDKs (the Kubernetes client alone costs about a second of start-up), and a missing
 * credential fails only the backends that need it.
 */
export function makeDrivers(options: DriverOptions = {}): Drivers {
  const made = new Map<DriverName, Promise<ScaleDriver>>();
  const load = async (name: DriverName): Promise<ScaleDriver> => {
    switch (name) {
      case 'kubernetes':
        return (await import('./kubernetes')).kubernetesDriver(options.kubernetes);
      case 'modal': {
        const m = await import('./modal');
        return m.modalDriver(options.modal ?? m.sdkModalClient);
      }
      case 'sim':
        return (await import('./sim')).simDriver(options.sim);
      case 'replicate': {
        const r = await import('./replicate');
        return r.replicateDriver(options.replicate ?? (() => r.sdkReplicateClient({ baseUrl: process.env.REPLICATE_BASE_URL })));
      }
    }
  };
  return (name) => {
    let d = made.get(name);
    if (!d) made.set(name, (d = load(name)));
    return d;
  };
}
