import OpenAI from 'openai';
import type { ChatCompletion } from 'openai/resources/chat/completions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../scripts/dev/stack';
import { until } from '../support/until';

// Async requests and Idempotency-Key end to end (README "Async requests", "Idempotency"): the
// `openai` SDK over a real socket against the local stack, the job run by Miniflare's real queue
// (ROUTER_ASYNC) and its consumer, the answer read back through the SDK.

let stack: Stack;
let demo: OpenAI;
const TENANT = 'asyncledger';
let ledgerClient: OpenAI;

beforeAll(async () => {
  stack = await startStack({
    port: 0,
    ephemeralBackends: true,
    persist: false,
    simProfile: 'instant',
    configPatch: (r) => ({ ...r, tenants: { ...r.tenants, [TENANT]: { models: ['*'], budget: { monthly_tokens: 100_000_000 } } } }),
  });
  const client = (apiKey: string) => new OpenAI({ apiKey, baseURL: `${stack.routerUrl}/v1`, maxRetries: 0 });
  demo = client(stack.keys.demo);
  ledgerClient = client((await stack.createKey(TENANT, 'async-ledger')).key);
}, 90_000);
afterAll(() => stack?.close());

const body = { model: 'llama-3.1-8b', max_tokens: 8, messages: [{ role: 'user' as const, content: 'Say hi.' }] };

interface Job {
  id: string;
  object: string;
  status: string;
  response: { status_code: number; body: ChatCompletion } | null;
}

describe('async requests and idempotency end to end (openai SDK)', () => {
  it('Prefer: respond-async → 202 and Location; the queue runs it; the SDK reads the answer as a ChatCompletion', async () => {
    const { data, response } = await demo.chat.completions.create(body, { headers: { prefer: 'respond-async' } }).withResponse();
    expect(response.status).toBe(202);
    const job = data as unknown as Job;
    expect(job.object).toBe('async.job');
    expect(response.headers.get('location')).toBe(`/v1/async/${job.id}`);
    const done = await until('the job completed', () => demo.get<Job>(`/async/${job.id}`), (j) => j.status === 'completed' || j.status === 'failed', 30_000, 100);
    expect(done.status).toBe('completed');
    expect(done.response!.status_code).toBe(200);
    const sync = await demo.chat.completions.create(body);
    const answer = done.response!.body;
    expect(Object.keys(answer).sort()).toEqual(Object.keys(sync).sort());
    expect(answer.object).toBe('chat.completion');
    expect(typeof answer.choices[0]!.message.content).toBe('string');
    expect(answer.usage!.total_tokens).toBeGreaterThan(0);
    // Another tenant: the SDK's NotFoundError, as for an unknown id.
    await expect(ledgerClient.get(`/async/${job.id}`)).rejects.toMatchObject({ status: 404 });
  });

  it('Idempotency-Key: the retry is the first answer replayed; one ledger row, one debit', async () => {
    const a = await ledgerClient.chat.completions.create(body, { headers: { 'Idempotency-Key': 'e2e-key-1' } }).withResponse();
    const b = await ledgerClient.chat.completions.create(body, { headers: { 'Idempotency-Key': 'e2e-key-1' } }).withResponse();
    expect(b.response.headers.get('idempotent-replayed')).toBe('true');
    expect(b.data).toEqual(a.data);
    type Usage = { rows: { requests: number; prompt_tokens: number; completion_tokens: number }[] };
    const admin = { authorization: `Bearer ${stack.adminToken}` };
    const rows = await until(
      'the ledger row',
      async () => ((await (await fetch(`${stack.routerUrl}/admin/usage?group_by=tenant&tenant=${TENANT}`, { headers: admin })).json()) as Usage).rows,
      (r) => (r[0]?.requests ?? 0) >= 1,
      20_000,
      100,
    );
    const tokens = a.data.usage!.prompt_tokens + a.data.usage!.completion_tokens;
    await until('budget settled', async () => ((await (await fetch(`${stack.routerUrl}/admin/tenants/${TENANT}/budget`, { headers: admin })).json()) as { used_tokens: number }).used_tokens, (u) => u === tokens, 20_000, 100);
    expect(rows[0]!.requests).toBe(1);
    const other = await ledgerClient.chat.completions.create({ ...body, max_tokens: 3 }, { headers: { 'Idempotency-Key': 'e2e-key-1' } }).catch((e: unknown) => e);
    expect(other).toMatchObject({ status: 422 });
  });
});
