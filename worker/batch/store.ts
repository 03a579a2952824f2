import type { BatchStore, Env } from '../env';
import { errors } from '../http/errors';

/** A tenant's BatchStore (one per tenant: see durable-objects/batch-store.ts for why). */
export function batchStore(env: Env, tenant: string): DurableObjectStub<BatchStore> {
  const ns = env.BATCHES;
  if (!ns) throw errors.unavailable('Batches are not configured (the BATCHES Durable Object binding).', 'batches_unavailable');
  return ns.get(ns.idFromName(`tenant:${tenant}`));
}

export function randomHex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))].map((x) => x.toString(16).padStart(2, '0')).join('');
}
