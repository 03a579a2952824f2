import { env as testEnv } from 'cloudflare:test';
import { inject } from 'vitest';
import type { UsageRecord } from '../../worker/protocol/usage-record';
import { usageWritesSettled } from '../../worker/telemetry/batch-queue';
import { ledgerName } from '../../worker/telemetry/record';
import type { Env } from '../../worker/env';
import { ADMIN_TOKEN, call } from './support';

export const uid = () => crypto.randomUUID().slice(0, 8);

/** Every record in a tenant's ledger, after the writes in flight have landed. */
export async function ledgerRecords(tenant: string): Promise<UsageRecord[]> {
  await usageWritesSettled();
  const ns = (testEnv as unknown as Env).USAGE_LEDGER;
  return ns.get(ns.idFromName(ledgerName(tenant))).records();
}

/** A loopback webhook receiver (test/setup/sim-spawner.ts): the HTTP collector's stand-in. */
export async function spawnCollector(opts: { fail_first?: number; fail_status?: number } = {}) {
  const res = await fetch(`${inject('simSpawner')}/spawn-webhook`, { method: 'POST', body: JSON.stringify(opts) });
  const { url } = (await res.json()) as { url: string };
  return {
    url,
    async calls(): Promise<{ body: string; status: number; headers: Record<string, string> }[]> {
      return (await fetch(`${url}/calls`)).json();
    },
  };
}

/** A recording stand-in for an Analytics Engine dataset binding (none exists locally). */
export function fakeAnalytics() {
  const points: { indexes?: string[]; blobs?: (string | null)[]; doubles?: number[] }[] = [];
  return { points, binding: { writeDataPoint: (p: (typeof points)[number]) => void points.push(structuredClone(p)) } };
}

export function admin(path: string, e?: Env) {
  return call(path, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, ...(e ? { env: e } : {}) });
}
