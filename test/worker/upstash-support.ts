import { inject } from 'vitest';

/** The shared Upstash REST bridge (test/setup/redis.ts) in front of a real redis-server. */
export const upstash = () => inject('upstash');

/** A bridge of this test's own, which it can stop (Upstash down) and start again. */
export interface OwnBridge {
  url: string;
  token: string;
  /** Closes the port: calls fail at once (connection refused). */
  stop(): Promise<void>;
  /** Accepts calls and never answers: callers must time out. */
  hang(): Promise<void>;
  /** Back to normal. */
  start(): Promise<void>;
  state(): Promise<{ running: boolean; stats: { requests: number; commands: number; unauthorized: number } }>;
}

export async function ownBridge(): Promise<OwnBridge> {
  const control = inject('upstashControl');
  const res = await fetch(`${control}/bridges`, { method: 'POST' });
  if (!res.ok) throw new Error(`bridge: ${await res.text()}`);
  const { id, url, token } = (await res.json()) as { id: string; url: string; token: string };
  const post = async (action: string) => {
    const r = await fetch(`${control}/bridges/${id}/${action}`, { method: 'POST' });
    if (!r.ok) throw new Error(`bridge ${action}: ${await r.text()}`);
    await r.json();
  };
  return {
    url,
    token,
    stop: () => post('stop'),
    hang: () => post('hang'),
    start: () => post('start'),
    state: async () => (await fetch(`${control}/bridges/${id}`)).json() as never,
  };
}
