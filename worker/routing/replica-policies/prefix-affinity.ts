import { hash32, mix32 } from '../hash';
import { byLoad } from './least-loaded';
import type { ReplicaPolicy } from './types';

/**
 * Requests sharing a prompt prefix go to the same replica, so vLLM's prefix cache is reused.
 * Replicas are ranked by rendezvous (highest-random-weight) hashing of the prefix with each
 * replica id: when a replica joins or leaves, only the prefixes it ranked first move.
 * Affinity yields to load: the request goes to the first replica in that ranking whose load is
 * within `affinity_load_slack` requests of the least loaded. A hot prefix so spills to a
 * consistent second home (which then warms its cache for it) rather than to a random replica
 * that has none of it; with every replica past the slack, the least loaded takes it.
 */
export const prefixAffinity: ReplicaPolicy = {
  order(replicas, ctx) {
    if (replicas.length === 1) return { ordered: [...replicas], decision: 'single' };
    const loadSorted = byLoad(replicas, ctx);
    if (ctx.prefixKey === null) return { ordered: loadSorted, decision: 'least-loaded' };

    const key = ctx.prefixKey;
    const ranked = replicas
      .map((r) => ({ r, w: mix32(key ^ hash32(r.id)) }))
      .sort((a, b) => b.w - a.w)
      .map((x) => x.r);
    const floor = ctx.loadOf(loadSorted[0]!) + ctx.routing.affinity_load_slack;
    const pick = ranked.find((r) => ctx.loadOf(r) <= floor) ?? loadSorted[0]!;
    return {
      ordered: [pick, ...ranked.filter((r) => r !== pick)],
      decision: pick === ranked[0] ? 'affinity' : 'yielded',
    };
  },
};
