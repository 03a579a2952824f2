import type { Env, RequestStore } from '../env';
import { errors } from '../http/errors';

/** A tenant's RequestStore: its async jobs and Idempotency-Key records (durable-objects/request-store.ts). */
export function requestStore(env: Env, tenant: string): DurableObjectStub<RequestStore> {
  const ns = env.ASYNC_JOBS;
  if (!ns) throw errors.unavailable('Async requests and idempotency need the ASYNC_JOBS Durable Object binding (wrangler.toml).', 'async_unavailable');
  return ns.get(ns.idFromName(`tenant:${tenant}`));
}

export function randomHex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))].map((x) => x.toString(16).padStart(2, '0')).join('');
}

export async function sha256Hex(data: string | ArrayBuffer): Promise<string> {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  return [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))].map((x) => x.toString(16).padStart(2, '0')).join('');
}
