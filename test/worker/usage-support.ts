import { env as testEnv } from 'cloudflare:test';
import type { UsageRecord } from '../../worker/protocol/usage-record';
import { usageWritesSettled } from '../../worker/telemetry/batch-queue';
import { ledgerName } from '../../worker/telemetry/record';
import type { Env } from '../../worker/env';

export { uid } from '../support/uid';
export { admin } from './support';
/** The usage HTTP collector's stand-in: a loopback webhook receiver. */
export { spawnWebhook as spawnCollector } from '../support/webhook';

/** Every record in a tenant's ledger, after the writes in flight have landed. */
export async function ledgerRecords(tenant: string): Promise<UsageRecord[]> {
  await usageWritesSettled();
  const ns = (testEnv as unknown as Env).USAGE_LEDGER;
  return ns.get(ns.idFromName(ledgerName(tenant))).records();
}

/** A recording stand-in for an Analytics Engine dataset binding (none exists locally). */
export function fakeAnalytics() {
  const points: { indexes?: string[]; blobs?: (string | null)[]; doubles?: number[] }[] = [];
  return { points, binding: { writeDataPoint: (p: (typeof points)[number]) => void points.push(structuredClone(p)) } };
}
