import type { ReplicaPolicy } from './types';

// Per-isolate counters: the baseline the prefix-aware policy is benchmarked against.
const next = new Map<string, number>();

export const roundRobin: ReplicaPolicy = {
  order(replicas, ctx) {
    const n = next.get(ctx.pool) ?? 0;
    next.set(ctx.pool, n + 1);
    const start = n % replicas.length;
    return { ordered: [...replicas.slice(start), ...replicas.slice(0, start)], decision: replicas.length > 1 ? 'round-robin' : 'single' };
  },
};
