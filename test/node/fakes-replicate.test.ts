import Replicate from 'replicate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANSWER_TOKENS } from '../../scripts/dev/standins/common';
import { startReplicateFake } from '../../scripts/dev/standins/replicate';
import type { Fake } from '../../scripts/dev/standins/common';

// The Replicate stand-in (scripts/dev/standins/replicate.ts), driven by Replicate's own npm client:
// if the client reads it, the router's adapter is tested against the wire format the client
// (and so Replicate) speaks.

let fake: Fake;
let client: Replicate;
beforeAll(async () => {
  fake = await startReplicateFake({ token: 'r8_node' });
  client = new Replicate({ auth: 'r8_node', baseUrl: `${fake.url}/v1` });
});
afterAll(() => fake?.close());

describe('the replicate client against the stand-in', () => {
  it('creates on a model and on a deployment with Prefer: wait, and reads the output', async () => {
    const p = await client.predictions.create({ model: 'meta/llama-fake', input: { prompt: 'Hi there', max_tokens: 3 }, wait: 5 });
    expect(p).toMatchObject({ status: 'succeeded', output: ANSWER_TOKENS.slice(0, 3), metrics: { input_token_count: 2, output_token_count: 3 } });
    expect(p.urls).toMatchObject({ get: expect.any(String), cancel: expect.any(String), stream: expect.any(String) });
    const d = await client.deployments.predictions.create('acme', 'prod', { input: { prompt: 'Hi' }, wait: true });
    expect(d.status).toBe('succeeded');
  });

  it('streams output events then done, as replicate.stream() reads them', async () => {
    const events: { event: string; data: string }[] = [];
    for await (const e of client.stream('meta/llama-fake', { input: { prompt: 'Hi' } })) events.push({ event: e.event, data: e.data });
    expect(events.filter((e) => e.event === 'output').map((e) => e.data).join('')).toBe(ANSWER_TOKENS.join(''));
    expect(events.at(-1)).toEqual({ event: 'done', data: '{}' });
  });

  it('gets, cancels, and refuses a bad token or an invalid input as problem+json', async () => {
    const p = await client.predictions.create({ model: 'meta/llama-fake', input: { prompt: 'Hi [slow]' } });
    expect(p.status).toBe('starting');
    expect((await client.predictions.get(p.id)).status).toBe('processing');
    expect((await client.predictions.cancel(p.id)).status).toBe('canceled');
    const bad = new Replicate({ auth: 'wrong', baseUrl: `${fake.url}/v1` });
    await expect(bad.predictions.create({ model: 'a/b', input: { prompt: 'x' } })).rejects.toMatchObject({ response: { status: 401 } });
    await expect(client.predictions.create({ model: 'a/b', input: { text: 'x' } })).rejects.toMatchObject({ response: { status: 422 } });
  });
});
