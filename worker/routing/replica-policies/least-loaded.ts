import type { BackendConfig } from '../../config/schema';
import type { ReplicaContext, ReplicaPolicy } from './types';

/** Replicas by load, lightest first; config order breaks ties. */
export function byLoad(replicas: readonly BackendConfig[], ctx: ReplicaContext): BackendConfig[] {
  return replicas
    .map((b, i) => ({ b, i, load: ctx.loadOf(b) }))
    .sort((x, y) => x.load - y.load || x.i - y.i)
    .map((x) => x.b);
}

export const leastLoaded: ReplicaPolicy = {
  order(replicas, ctx) {
    return { ordered: byLoad(replicas, ctx), decision: replicas.length > 1 ? 'least-loaded' : 'single' };
  },
};
