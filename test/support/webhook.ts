import { inject } from 'vitest';

export interface WebhookCall {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
  status: number;
}

/**
 * A loopback webhook receiver started by the worker project's global setup
 * (test/setup/sim-spawner.ts, `POST /spawn-webhook`): it records every call and answers
 * `fail_status` (default 500) to the first `fail_first` of them. Stands in for alert webhooks and
 * the usage HTTP collector. Runs in workerd.
 */
export async function spawnWebhook(opts: { fail_first?: number; fail_status?: number } = {}): Promise<{ url: string; calls(): Promise<WebhookCall[]> }> {
  const res = await fetch(`${inject('simSpawner')}/spawn-webhook`, { method: 'POST', body: JSON.stringify(opts) });
  if (!res.ok) throw new Error(`spawn-webhook: ${res.status} ${await res.text()}`);
  const { url } = (await res.json()) as { url: string };
  return { url, calls: async () => (await (await fetch(`${url}/calls`)).json()) as WebhookCall[] };
}
