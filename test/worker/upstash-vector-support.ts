import { inject } from 'vitest';

/** An Upstash Vector contract stand-in of this test's own (test/setup/upstash-vector.ts), which it can stop and start. */
export interface OwnVectorIndex {
  url: string;
  token: string;
  /** Closes the port: calls fail at once (connection refused). */
  stop(): Promise<void>;
  start(): Promise<void>;
  state(): Promise<{ running: boolean; stats: { requests: number; unauthorized: number; byCommand: Record<string, number> } }>;
}

export async function ownVectorIndex(): Promise<OwnVectorIndex> {
  const control = inject('upstashVectorControl');
  const res = await fetch(`${control}/servers`, { method: 'POST' });
  if (!res.ok) throw new Error(`vector stand-in: ${await res.text()}`);
  const { id, url, token } = (await res.json()) as { id: string; url: string; token: string };
  const post = async (action: string) => {
    const r = await fetch(`${control}/servers/${id}/${action}`, { method: 'POST' });
    if (!r.ok) throw new Error(`vector stand-in ${action}: ${await r.text()}`);
    await r.json();
  };
  return { url, token, stop: () => post('stop'), start: () => post('start'), state: async () => (await fetch(`${control}/servers/${id}`)).json() as never };
}
