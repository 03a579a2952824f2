/** Issue 12 item 7: the simulator answers an oversized token-array embeddings request 400 (as vLLM does) and keeps serving. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SimServer, startSimServer, ZERO_LATENCY } from '../../regional/sim/server';

const EMB = 'BAAI/bge-small-en-v1.5';
let sim: SimServer;

beforeAll(async () => {
  sim = await startSimServer({ embedding_models: [EMB], latency: ZERO_LATENCY });
});
afterAll(async () => {
  await sim?.close();
});

const embed = (input: unknown) =>
  fetch(`${sim.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: EMB, input }) });

describe('embeddings token-array bounds (sim)', () => {
  it('answers 100,000 one-token inputs with 400, then still serves', async () => {
    const res = await embed(Array.from({ length: 100_000 }, () => [1]));
    expect(res.status).toBe(400);
    const j = (await res.json()) as { error: { message: string; type: string } };
    expect(j.error.type).toBe('BadRequestError');
    expect(j.error.message).toMatch(/2048/);
    const ok = await embed([[1, 2, 3]]);
    expect(ok.status).toBe(200);
  });

  it('answers an input longer than the context with 400', async () => {
    const res = await embed([Array.from({ length: 100_000 }, () => 1)]);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/maximum context length is 512/);
  });

  it('serves exactly 2048 inputs', async () => {
    const res = await embed(Array.from({ length: 2048 }, () => [1]));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { data: unknown[] }).data).toHaveLength(2048);
  });
});
