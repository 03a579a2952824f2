// Shared by the async and idempotency tests: a tenant of the test's own (budgetStack) with the
// async queue's producer recorded, and the consumer run on what it sent (worker/async/consumer.ts).

import { createExecutionContext, createMessageBatch, getQueueResult } from 'cloudflare:test';
import worker from '../../worker/index';
import type { Env } from '../../worker/env';
import { call } from './support';

/**
 * The ROUTER_ASYNC producer's stand-in: it keeps what the route sent, so the test delivers it to
 * the Worker's queue() handler itself (the real queue would deliver it to the test isolate's
 * wrangler.toml config, not the test's own). The end-to-end test uses Miniflare's real queue.
 */
export function asyncEnv(base: Env) {
  const sent: unknown[] = [];
  const queue = { send: async (body: unknown) => void sent.push(structuredClone(body)), sendBatch: async () => {} };
  return { env: { ...base, ROUTER_ASYNC: queue } as unknown as Env, sent };
}

let seq = 0;
/** Delivers the messages sent so far to worker.queue() (one delivery), and empties the list. */
export async function deliver(e: Env, sent: unknown[], attempts = 1) {
  const messages = sent.splice(0).map((body) => ({ id: `m${++seq}`, timestamp: new Date(), attempts, body }));
  const batch = createMessageBatch('edge-router-async', messages);
  const ctx = createExecutionContext();
  await worker.queue!(batch as MessageBatch<unknown>, e, ctx);
  return getQueueResult(batch, ctx);
}

export function post(path: string, key: string, body: unknown, e: Env, headers: Record<string, string> = {}) {
  return call(path, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), env: e });
}

export function getJob(id: string, key: string, e: Env) {
  return call(`/v1/async/${id}`, { headers: { authorization: `Bearer ${key}` }, env: e });
}
