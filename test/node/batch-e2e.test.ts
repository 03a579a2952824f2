import OpenAI, { NotFoundError, toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../scripts/dev/stack';
import { until } from '../support/until';

// The Files and Batches APIs end to end with the `openai` SDK against the local stack (simulators,
// the Worker in workerd with Miniflare's R2 and Queues): upload, create, poll, read the output and
// error files, cancel; faults (backend 5xx, a consumer that dies mid-batch) and tenant isolation.
// README "Batch and async".

let stack: Stack;
let demo: OpenAI;
let acme: OpenAI;
/** A tenant of its own with a budget: its ledger and budget hold only this file's batch lines. */
let ledgerTenant: OpenAI;
const LEDGER_TENANT = 'batchledger';
const LIMITED_TENANT = 'batchlimited';
let limited: OpenAI;
const CRASH_AFTER = 4;
const EIGHT_B = ['vllm-us-east-8b', 'vllm-eu-west-8b', 'vllm-ap-southeast-8b'];

beforeAll(async () => {
  stack = await startStack({
    port: 0,
    ephemeralBackends: true,
    persist: false,
    simProfile: 'instant',
    configPatch: (r) => ({
      ...r,
      tenants: {
        ...r.tenants,
        [LEDGER_TENANT]: { models: ['*'], budget: { monthly_tokens: 100_000_000 } },
        // 4 requests per 2 s: its batch lines meet the tenant's own rate limit.
        [LIMITED_TENANT]: { models: ['*'], limits: { tenant: { requests: 4, window_s: 2 } } },
      },
      // The consumer dies once (per isolate) after CRASH_AFTER lines of one delivery were done, before acking them.
      batch: { debug_crash_after_lines: CRASH_AFTER, headroom_wait_ms: 200, max_concurrency: 4 },
    }),
  });
  const client = (apiKey: string) => new OpenAI({ apiKey, baseURL: `${stack.routerUrl}/v1`, maxRetries: 0 });
  demo = client(stack.keys.demo);
  acme = client(stack.keys.acme);
  ledgerTenant = client((await stack.createKey(LEDGER_TENANT, 'batch-ledger')).key);
  limited = client((await stack.createKey(LIMITED_TENANT, 'batch-limited')).key);
}, 90_000);
afterAll(() => stack?.close());

const admin = () => ({ authorization: `Bearer ${stack.adminToken}` });
async function adminJson<T>(path: string): Promise<T> {
  const res = await fetch(`${stack.routerUrl}${path}`, { headers: admin() });
  expect(res.status, path).toBe(200);
  return (await res.json()) as T;
}

function jsonl(n: number, prefix: string, model = 'llama-3.1-8b'): string {
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({ custom_id: `${prefix}-${i}`, method: 'POST', url: '/v1/chat/completions', body: { model, max_tokens: 4, messages: [{ role: 'user', content: `Line ${i} of ${prefix}: say hi.` }] } }),
  ).join('\n');
}

async function upload(client: OpenAI, text: string, name = 'input.jsonl') {
  return client.files.create({ file: await toFile(Buffer.from(text), name), purpose: 'batch' });
}

const FINAL = ['completed', 'failed', 'expired', 'cancelled'];
async function finished(client: OpenAI, id: string, timeoutMs = 60_000) {
  return until(`batch ${id} finished`, () => client.batches.retrieve(id), (b) => FINAL.includes(b.status), timeoutMs, 250);
}

async function linesOf(client: OpenAI, fileId: string | null | undefined): Promise<Array<{ custom_id: string; response: { status_code: number; body: any } | null; error: unknown }>> {
  if (!fileId) return [];
  const text = await (await client.files.content(fileId)).text();
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
}

async function setFaults(ids: string[], faults: Record<string, unknown>) {
  for (const id of ids) {
    const res = await fetch(`${stack.backends[id]}/sim/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(faults) });
    expect(res.status).toBe(200);
  }
}

describe('Batch API end to end (openai SDK)', () => {
  it('a consumer that dies mid-batch: no line lost, none run or billed twice (ledger rows = lines, budget = ledger tokens)', async () => {
    const N = 30;
    const file = await upload(ledgerTenant, jsonl(N, 'crash'));
    const batch = await ledgerTenant.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await finished(ledgerTenant, batch.id);
    expect(done.status).toBe('completed');
    expect(done.request_counts).toEqual({ total: N, completed: N, failed: 0 });
    const out = await linesOf(ledgerTenant, done.output_file_id);
    expect(out.length).toBe(N);
    expect(new Set(out.map((l) => l.custom_id)).size).toBe(N);
    expect(done.error_file_id).toBeNull();
    // Every line billed once: one ledger row per line, and the budget's used tokens are the ledger's.
    type Usage = { rows: { requests: number; prompt_tokens: number; completion_tokens: number }[] };
    const ledger = await until(
      'ledger rows for every line',
      async () => (await adminJson<Usage>(`/admin/usage?group_by=tenant&tenant=${LEDGER_TENANT}`)).rows[0],
      (r) => (r?.requests ?? 0) >= N,
      20_000,
      200,
    );
    expect(ledger!.requests).toBe(N);
    const tokens = ledger!.prompt_tokens + ledger!.completion_tokens;
    expect(tokens).toBe(done.usage!.total_tokens);
    // Every row names its batch, and is priced at [batch].price_factor (0.5) of llama-3.1-8b's $0.05 / $0.08 per M.
    type ByBatch = { rows: { batch_id: string | null; requests: number; prompt_tokens: number; completion_tokens: number; cost_usd: number }[] };
    const byBatch = (await adminJson<ByBatch>(`/admin/usage?group_by=batch_id&tenant=${LEDGER_TENANT}`)).rows;
    expect(byBatch.map((r) => [r.batch_id, r.requests])).toEqual([[batch.id, N]]);
    expect(byBatch[0]!.cost_usd).toBeCloseTo((0.5 * (byBatch[0]!.prompt_tokens * 0.05 + byBatch[0]!.completion_tokens * 0.08)) / 1e6, 12);
    await until('budget settled to the ledger', async () => (await adminJson<{ used_tokens: number }>(`/admin/tenants/${LEDGER_TENANT}/budget`)).used_tokens, (u) => u === tokens, 20_000, 200);
    // The crash really happened: lines were redelivered (the ledger, not luck, kept them single).
    type Queues = { data: Array<{ depth: number; by_tenant: Record<string, { redelivered: number; lines_done: number }> }> };
    const q = await until('the crashed delivery redelivered', () => adminJson<Queues>('/admin/queues'), (x) => x.data[0]!.by_tenant[LEDGER_TENANT]!.redelivered >= CRASH_AFTER, 20_000, 200);
    expect(q.data[0]!.depth).toBe(0);
    expect(q.data[0]!.by_tenant[LEDGER_TENANT]!.lines_done).toBe(N);
    // After the redeliveries: still one output line, one ledger row and one debit per line.
    await new Promise((r) => setTimeout(r, 1_500)); // any late duplicate would have been written by now (a bound, not a measurement)
    expect((await linesOf(ledgerTenant, (await ledgerTenant.batches.retrieve(batch.id)).output_file_id)).length).toBe(N);
    expect((await adminJson<Usage>(`/admin/usage?group_by=tenant&tenant=${LEDGER_TENANT}`)).rows[0]!.requests).toBe(N);
    expect((await adminJson<{ used_tokens: number }>(`/admin/tenants/${LEDGER_TENANT}/budget`)).used_tokens).toBe(tokens);
  });

  it('files.create → batches.create → retrieve until completed → output file; files list/retrieve/delete; batches list', async () => {
    const N = 12;
    // An earlier batch (failed at validation: a bad method), so the listing has two pages of one.
    const earlier = await demo.batches.create({ input_file_id: (await upload(demo, JSON.stringify({ custom_id: 'x', method: 'GET', url: '/v1/chat/completions', body: {} }))).id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    expect(earlier.status).toBe('failed');
    const file = await upload(demo, jsonl(N, 'ok'), 'ok.jsonl');
    expect(file).toMatchObject({ object: 'file', purpose: 'batch', filename: 'ok.jsonl', status: 'processed' });
    expect(file.id).toMatch(/^file-/);
    expect((await demo.files.retrieve(file.id)).bytes).toBe(Buffer.byteLength(jsonl(N, 'ok')));
    const batch = await demo.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { job: 'nightly' } });
    expect(batch).toMatchObject({ object: 'batch', endpoint: '/v1/chat/completions', completion_window: '24h', input_file_id: file.id, metadata: { job: 'nightly' } });
    expect(['validating', 'in_progress', 'finalizing', 'completed']).toContain(batch.status);
    const done = await finished(demo, batch.id);
    expect(done.status).toBe('completed');
    expect(done.request_counts).toEqual({ total: N, completed: N, failed: 0 });
    expect(done.completed_at).toBeGreaterThanOrEqual(done.created_at);
    expect(done.expires_at).toBe(done.created_at + 86_400);
    const out = await linesOf(demo, done.output_file_id);
    expect(out.map((l) => l.custom_id).sort()).toEqual(Array.from({ length: N }, (_, i) => `ok-${i}`).sort());
    for (const l of out) {
      expect(l.response!.status_code).toBe(200);
      expect(l.response!.body.object).toBe('chat.completion');
      expect(l.error).toBeNull();
    }
    const outFile = await demo.files.retrieve(done.output_file_id!);
    expect(outFile.purpose).toBe('batch_output');
    // Listing: newest first, cursor pagination.
    const page = await demo.batches.list({ limit: 1 });
    expect(page.data[0]!.id).toBe(batch.id);
    expect(page.has_more).toBe(true);
    const next = await demo.batches.list({ limit: 1, after: batch.id });
    expect(next.data[0]!.id).toBe(earlier.id);
    const listed = await demo.files.list();
    expect(listed.data.map((f) => f.id)).toEqual(expect.arrayContaining([file.id, done.output_file_id]));
    expect(await demo.files.delete(file.id)).toEqual({ id: file.id, object: 'file', deleted: true });
    await expect(demo.files.retrieve(file.id)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('cancel: lines not started are dropped, the batch ends cancelled with what did run', async () => {
    await setFaults(EIGHT_B, { latency_ms: 1_500 });
    try {
      const N = 200;
      const b = await demo.batches.create({ input_file_id: (await upload(demo, jsonl(N, 'cancel'))).id, endpoint: '/v1/chat/completions', completion_window: '24h' });
      const c = await demo.batches.cancel(b.id);
      expect(['cancelling', 'cancelled']).toContain(c.status);
      expect(c.cancelling_at).toBeGreaterThan(0);
      const done = await finished(demo, b.id, 60_000);
      expect(done.status).toBe('cancelled');
      expect(done.cancelled_at).toBeGreaterThan(0);
      expect(done.request_counts!.completed).toBeLessThan(N);
      const out = await linesOf(demo, done.output_file_id);
      expect(out.length).toBe(done.request_counts!.completed);
    } finally {
      await setFaults(EIGHT_B, {});
    }
  }, 90_000);

  it("another tenant's file (and batch) is a 404, exactly like a missing one", async () => {
    const file = await upload(demo, jsonl(2, 'mine'));
    for (const call of [() => acme.files.retrieve(file.id), () => acme.files.content(file.id), () => acme.files.delete(file.id), () => acme.files.retrieve('file-000000000000000000000000')]) {
      const err = await call().then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(NotFoundError);
      expect((err as NotFoundError).code).toBe('file_not_found');
    }
    await expect(acme.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })).rejects.toBeInstanceOf(NotFoundError);
    const batch = await demo.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await expect(acme.batches.retrieve(batch.id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(acme.batches.cancel(batch.id)).rejects.toBeInstanceOf(NotFoundError);
    expect((await demo.files.retrieve(file.id)).id).toBe(file.id); // still there for its owner
    await finished(demo, batch.id);
  });

  it('invalid lines fail the batch at validation with OpenAI-style errors; a bad body of a valid line lands in the error file', async () => {
    const bad = [
      JSON.stringify({ custom_id: 'a', method: 'POST', url: '/v1/chat/completions', body: { model: 'llama-3.1-8b', messages: [] } }),
      JSON.stringify({ custom_id: 'a', method: 'POST', url: '/v1/chat/completions', body: { model: 'llama-3.1-8b', messages: [] } }),
      JSON.stringify({ custom_id: 'b', method: 'GET', url: '/v1/chat/completions', body: {} }),
      JSON.stringify({ custom_id: 'c', method: 'POST', url: '/v1/images/generations', body: {} }),
    ].join('\n');
    const failed = await demo.batches.create({ input_file_id: (await upload(demo, bad)).id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    expect(failed.status).toBe('failed');
    expect(failed.errors!.data!.map((e) => [e.code, e.line])).toEqual([
      ['duplicate_custom_id', 2],
      ['invalid_method', 3],
      ['invalid_url', 4],
    ]);
    // Not JSONL at all: refused at upload, naming the line.
    const err = await upload(demo, '{"custom_id": "x"}\nnot json').then(() => null, (e: unknown) => e);
    expect((err as { status: number }).status).toBe(400);
    expect((err as { message: string }).message).toMatch(/Line 2/);
    // A line the pipeline refuses (unknown model): not retried, in the error file with its 4xx.
    const mixed = [
      JSON.stringify({ custom_id: 'good', method: 'POST', url: '/v1/chat/completions', body: { model: 'llama-3.1-8b', max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] } }),
      JSON.stringify({ custom_id: 'nomodel', method: 'POST', url: '/v1/chat/completions', body: { model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] } }),
      JSON.stringify({ custom_id: 'badbody', method: 'POST', url: '/v1/chat/completions', body: { model: 'llama-3.1-8b', messages: 'not a list' } }),
    ].join('\n');
    const b = await demo.batches.create({ input_file_id: (await upload(demo, mixed)).id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await finished(demo, b.id);
    expect(done.status).toBe('completed');
    expect(done.request_counts).toEqual({ total: 3, completed: 1, failed: 2 });
    const errs = await linesOf(demo, done.error_file_id);
    expect(errs.map((l) => [l.custom_id, l.response!.status_code]).sort()).toEqual([
      ['badbody', 400],
      ['nomodel', 404],
    ]);
  });

  it("the tenant's own rate limit holds lines back (Retry-After), never fails them nor counts retries", async () => {
    const N = 12;
    const b = await limited.batches.create({ input_file_id: (await upload(limited, jsonl(N, 'limited'))).id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    const done = await finished(limited, b.id, 60_000);
    expect(done.status).toBe('completed');
    expect(done.request_counts).toEqual({ total: N, completed: N, failed: 0 });
    const q = await adminJson<{ data: Array<{ by_tenant: Record<string, { retries: number; dead_letters: number }> }> }>('/admin/queues');
    expect(q.data[0]!.by_tenant[LIMITED_TENANT]).toMatchObject({ retries: 0, dead_letters: 0 });
    // It was limited (not a vacuous pass): the ledger holds the refused attempts as errors, and every line's answer once.
    type Usage = { rows: { requests: number; errors: number }[] };
    const row = await until('every answer in the ledger', async () => (await adminJson<Usage>(`/admin/usage?group_by=tenant&tenant=${LIMITED_TENANT}`)).rows[0], (r) => (r?.requests ?? 0) - (r?.errors ?? 0) >= N, 20_000, 200);
    expect(row!.errors).toBeGreaterThan(0);
    expect(row!.requests - row!.errors).toBe(N);
  }, 90_000);

  it('30% backend 5xx: every line completes or lands in the error file after its retries', async () => {
    await setFaults(EIGHT_B, { error_rate: 0.3, status: 503 });
    try {
      const N = 40;
      const b = await demo.batches.create({ input_file_id: (await upload(demo, jsonl(N, 'flaky'))).id, endpoint: '/v1/chat/completions', completion_window: '24h' });
      const done = await finished(demo, b.id, 90_000);
      expect(done.status).toBe('completed');
      const out = await linesOf(demo, done.output_file_id);
      const errs = await linesOf(demo, done.error_file_id);
      const ids = [...out, ...errs].map((l) => l.custom_id);
      expect(ids.length).toBe(N);
      expect(new Set(ids).size).toBe(N);
      expect(done.request_counts).toEqual({ total: N, completed: out.length, failed: errs.length });
      for (const l of errs) expect(l.response?.status_code ?? 503).toBeGreaterThanOrEqual(500);
    } finally {
      await setFaults(EIGHT_B, {});
    }
  }, 120_000);

  it('a backend that always fails: each line retried 4 times with backoff, then the error file and the dead-letter count', async () => {
    const before = (await adminJson<{ data: Array<{ retries: number; dead_letters: number }> }>('/admin/queues')).data[0]!;
    await setFaults(EIGHT_B, { error_rate: 1, status: 503 });
    try {
      const N = 3;
      const b = await demo.batches.create({ input_file_id: (await upload(demo, jsonl(N, 'dead'))).id, endpoint: '/v1/chat/completions', completion_window: '24h' });
      const done = await finished(demo, b.id, 90_000);
      expect(done.request_counts).toEqual({ total: N, completed: 0, failed: N });
      expect(done.output_file_id).toBeNull();
      const errs = await linesOf(demo, done.error_file_id);
      expect(errs.map((l) => l.custom_id).sort()).toEqual(['dead-0', 'dead-1', 'dead-2']);
      const after = (await adminJson<{ data: Array<{ retries: number; dead_letters: number }> }>('/admin/queues')).data[0]!;
      expect(after.retries - before.retries).toBe(4 * N);
      expect(after.dead_letters - before.dead_letters).toBe(N);
    } finally {
      await setFaults(EIGHT_B, {});
    }
  }, 120_000);

});

describe('Batch expiry (a stack whose "24h" window is 3 s)', () => {
  let short: Stack;
  let client: OpenAI;
  beforeAll(async () => {
    short = await startStack({ port: 0, ephemeralBackends: true, persist: false, simProfile: 'instant', configPatch: (r) => ({ ...r, batch: { completion_window_seconds: 3 } }) });
    client = new OpenAI({ apiKey: short.keys.demo, baseURL: `${short.routerUrl}/v1`, maxRetries: 0 });
  }, 90_000);
  afterAll(() => short?.close());

  it('a batch still running when its window ends is expired: done lines in the output file, the rest batch_expired in the error file', async () => {
    // The 8B backends take 2 s per request: the first lines finish inside the window, later ones do not.
    for (const id of EIGHT_B) {
      const res = await fetch(`${short.backends[id]}/sim/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ latency_ms: 2_000 }) });
      expect(res.status).toBe(200);
    }
    const N = 300;
    const file = await client.files.create({ file: await toFile(Buffer.from(jsonl(N, 'exp')), 'exp.jsonl'), purpose: 'batch' });
    const b = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    expect(b.expires_at).toBe(b.created_at + 3);
    const done = await until(`batch ${b.id} finished`, () => client.batches.retrieve(b.id), (x) => FINAL.includes(x.status), 60_000, 250);
    expect(done.status).toBe('expired');
    expect(done.expired_at).toBeGreaterThanOrEqual(done.expires_at!);
    const errs = await linesOf(client, done.error_file_id);
    const out = await linesOf(client, done.output_file_id);
    expect(errs.length).toBeGreaterThan(0);
    expect(errs.every((l) => (l.error as { code: string }).code === 'batch_expired')).toBe(true);
    expect(out.length + errs.length).toBe(N);
    expect(done.request_counts).toEqual({ total: N, completed: out.length, failed: errs.length });
  }, 90_000);
});
