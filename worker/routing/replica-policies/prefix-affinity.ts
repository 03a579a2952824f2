import { hash32, mix32 } from '../hash';
import { byLoad } from './least-loaded';
import type { ReplicaPolicy } from './types';

/**
 * Requests sharing a prompt prefix go to the same replica, so vLLM's prefix cache is reused.
 * The replica is chosen by rendezvous (highest-random-weight) hashing of the prefix with each
 * replica id: when a replica joins or leaves, only the prefixes it wins or held move.
 * Affinity yields to load: if the preferred replica carries more than `affinity_load_slack`
 * requests above the least-loaded one, the request goes to the lighter of two random
 * replicas (power of two choices), which spreads a hot prefix without herding.
 */
export const prefixAffinity: ReplicaPolicy = {
  order(replicas, ctx) {
    if (replicas.length === 1) return { ordered: [...replicas], decision: 'single' };
    const loadSorted = byLoad(replicas, ctx);
    if (ctx.prefixKey === null) return { ordered: loadSorted, decision: 'least-loaded' };

    let preferred = replicas[0]!;
    let best = -1;
    for (const r of replicas) {
      const w = mix32(ctx.prefixKey ^ hash32(r.id));
      if (w > best) {
        best = w;
        preferred = r;
      }
    }
    const lightest = loadSorted[0]!;
    if (ctx.loadOf(preferred) - ctx.loadOf(lightest) <= ctx.routing.affinity_load_slack) {
      return { ordered: [preferred, ...loadSorted.filter((r) => r !== preferred)], decision: 'affinity' };
    }
    const a = replicas[Math.floor(Math.random() * replicas.length)]!;
    let b = replicas[Math.floor(Math.random() * (replicas.length - 1))]!;
    if (b === a) b = replicas[replicas.length - 1]!;
    const pick = ctx.loadOf(a) <= ctx.loadOf(b) ? a : b;
    return { ordered: [pick, ...loadSorted.filter((r) => r !== pick)], decision: 'yielded' };
  },
};
