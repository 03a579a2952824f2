import { inject } from 'vitest';
import { baseConfig } from './support';

/** A simulated backend (regional/sim) of this test's own, started by the spawner over loopback. */
export class Sim {
  constructor(readonly url: string) {}

  private async post(path: string, body: unknown) {
    const res = await fetch(this.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return res.json();
  }
  faults(f: Record<string, unknown>) {
    return this.post('/sim/faults', f);
  }
  state(s: Record<string, unknown>) {
    return this.post('/sim/state', s);
  }
  config(c: Record<string, unknown>) {
    return this.post('/sim/config', c);
  }
  async stats(): Promise<Record<string, any>> {
    return (await fetch(`${this.url}/sim/stats`)).json();
  }
  async metric(name: string): Promise<number> {
    const text = await (await fetch(`${this.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN;
  }
}

export async function spawnSim(options: Record<string, unknown>): Promise<Sim> {
  const res = await fetch(`${inject('simSpawner')}/spawn`, { method: 'POST', body: JSON.stringify(options) });
  if (!res.ok) throw new Error(`spawn: ${await res.text()}`);
  return new Sim(((await res.json()) as { url: string }).url);
}

export const FAST = { base_ttft_ms: 0, prefill_ms_per_token: 0, itl_ms: 0, max_num_seqs: 64 };

/**
 * The wrangler.toml config with every backend pointed at a fresh simulator of this test's own,
 * serving that backend's models under their served names (and its API key, if it has one).
 */
export async function simulatedConfig(latency: Record<string, number> = FAST) {
  const cfg = baseConfig();
  const served = new Map<string, { name: string; type: string }>(
    cfg.models.map((m: any) => [m.id, { name: m.served_name ?? m.id, type: m.type ?? 'chat' }]),
  );
  const sims: Record<string, Sim> = {};
  await Promise.all(
    cfg.backends.map(async (b: any) => {
      const models = b.models.map((m: string) => served.get(m)!);
      const sim = await spawnSim({
        name: b.id,
        models: models.filter((m: any) => m.type === 'chat').map((m: any) => m.name),
        embedding_models: models.filter((m: any) => m.type === 'embedding').map((m: any) => m.name),
        ...(b.auth_secret ? { api_key: 'test-backend-key' } : {}),
        latency,
      });
      sims[b.id] = sim;
      b.url = sim.url;
    }),
  );
  return { cfg, sims };
}
