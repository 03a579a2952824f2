import { describe, expect, it } from 'vitest';
import { budgetStack, HI, U } from './budget-support';
import { asyncEnv, post } from './async-support';
import { call, createKey, errorOf } from './support';
import { ledgerRecords } from './usage-support';

// Idempotency-Key on POST (README "Idempotency"): a retry gets the first answer, replayed, never run
// or billed twice; another body → 422; a retry while the first runs → 409 + Retry-After; streams
// replayed as SSE; keys per tenant. Real RequestStore, ledger and budget objects.

const CHAT = '/v1/chat/completions';
const ask = { model: 'm', messages: HI, max_tokens: 20, ignore_eos: true };

describe('Idempotency-Key', () => {
  it('a retry gets the first body, marked replayed; one usage record with tokens, the budget moved once', async () => {
    const s = await budgetStack();
    const first = await post(CHAT, s.key, ask, s.e, { 'idempotency-key': 'retry-1' });
    expect(first.status).toBe(200);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const body1 = await first.text();
    const again = await post(CHAT, s.key, ask, s.e, { 'idempotency-key': 'retry-1' });
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.headers.get('content-type')).toContain('application/json');
    expect(await again.text()).toBe(body1);
    const records = await ledgerRecords(s.t);
    expect(records.length).toBe(1);
    expect((await s.budget()).used_tokens).toBe(U);
    // Without the key, the same body runs again (and is billed again).
    expect((await post(CHAT, s.key, ask, s.e)).status).toBe(200);
    expect((await ledgerRecords(s.t)).length).toBe(2);
    expect((await s.budget()).used_tokens).toBe(2 * U);
  });

  it('the same key with another body is 422 idempotency_key_reused; a bad key is 400', async () => {
    const s = await budgetStack();
    expect((await post(CHAT, s.key, ask, s.e, { 'idempotency-key': 'k-body' })).status).toBe(200);
    const other = await post(CHAT, s.key, { ...ask, max_tokens: 5 }, s.e, { 'idempotency-key': 'k-body' });
    expect(other.status).toBe(422);
    expect(await errorOf(other)).toMatchObject({ code: 'idempotency_key_reused', param: 'Idempotency-Key', type: 'invalid_request_error' });
    const long = await post(CHAT, s.key, ask, s.e, { 'idempotency-key': 'x'.repeat(256) });
    expect(long.status).toBe(400);
    expect((await errorOf(long)).code).toBe('invalid_idempotency_key');
    const spaced = await post(CHAT, s.key, ask, s.e, { 'idempotency-key': 'has space' });
    expect((await errorOf(spaced)).code).toBe('invalid_idempotency_key');
    expect((await ledgerRecords(s.t)).length).toBe(1);
  });

  it('keys are per tenant: the same key in another tenant runs its own request', async () => {
    const s = await budgetStack();
    const other = (await createKey(`free-${s.t}`, s.e)).key;
    expect((await post(CHAT, s.key, ask, s.e, { 'idempotency-key': 'shared' })).status).toBe(200);
    const theirs = await post(CHAT, other, { ...ask, max_tokens: 3 }, s.e, { 'idempotency-key': 'shared' });
    expect(theirs.status).toBe(200);
    expect(theirs.headers.get('idempotent-replayed')).toBeNull();
  });

  it('concurrent duplicates: one runs, the others get 409 with Retry-After, then the replay', async () => {
    const s = await budgetStack({ sim: { latency: { base_ttft_ms: 300, prefill_ms_per_token: 0, itl_ms: 5, max_num_seqs: 64 } } });
    const answers = await Promise.all(Array.from({ length: 4 }, () => post(CHAT, s.key, ask, s.e, { 'idempotency-key': 'dup' })));
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 409, 409, 409]);
    for (const r of answers.filter((a) => a.status === 409)) {
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect((await errorOf(r)).code).toBe('idempotency_key_in_use');
    }
    const winner = await answers.find((a) => a.status === 200)!.text();
    const replay = await post(CHAT, s.key, ask, s.e, { 'idempotency-key': 'dup' });
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(await replay.text()).toBe(winner);
    expect((await ledgerRecords(s.t)).length).toBe(1);
    expect((await s.budget()).used_tokens).toBe(U);
  });

  it('a streamed first answer is stored assembled and replayed as SSE', async () => {
    const s = await budgetStack();
    const first = await post(CHAT, s.key, { ...ask, stream: true }, s.e, { 'idempotency-key': 'sse' });
    expect(first.headers.get('content-type')).toContain('text/event-stream');
    const text = await first.text();
    expect(text.trim().endsWith('data: [DONE]')).toBe(true);
    let replay: Response | null = null;
    for (let i = 0; i < 50; i++) {
      replay = await post(CHAT, s.key, { ...ask, stream: true }, s.e, { 'idempotency-key': 'sse' });
      if (replay.status !== 409) break;
      await replay.text();
      await new Promise((r) => setTimeout(r, 20)); // the stored copy lands as the stream ends
    }
    expect(replay!.status).toBe(200);
    expect(replay!.headers.get('idempotent-replayed')).toBe('true');
    expect(replay!.headers.get('content-type')).toContain('text/event-stream');
    expect(await replay!.text()).toBe(text);
    expect((await ledgerRecords(s.t)).length).toBe(1);
  });

  it('a failed first answer (5xx) is not kept: the retry runs', async () => {
    const s = await budgetStack();
    await s.sim.faults({ error_rate: 1, status: 503 });
    const failed = await post(CHAT, s.key, ask, s.e, { 'idempotency-key': 'fail-then-ok' });
    expect(failed.status).toBeGreaterThanOrEqual(500);
    await s.sim.faults({});
    const ok = await post(CHAT, s.key, ask, s.e, { 'idempotency-key': 'fail-then-ok' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('idempotent-replayed')).toBeNull();
  });

  it('an async request retried with its key gets the same job (202), queued once', async () => {
    const s = await budgetStack();
    const { env: e, sent } = asyncEnv(s.e);
    const a = await post(CHAT, s.key, ask, e, { prefer: 'respond-async', 'idempotency-key': 'job-1' });
    const b = await post(CHAT, s.key, ask, e, { prefer: 'respond-async', 'idempotency-key': 'job-1' });
    expect([a.status, b.status]).toEqual([202, 202]);
    expect(b.headers.get('location')).toBe(a.headers.get('location'));
    expect(b.headers.get('idempotent-replayed')).toBe('true');
    expect(sent.length).toBe(1);
  });

  it('covers every POST under /v1: a file upload retried (the form re-encoded with a new boundary) is the same file, stored once', async () => {
    const { key, e } = await budgetStack(); // a tenant of its own: its file list is this test's
    const line = JSON.stringify({ custom_id: 'a', method: 'POST', url: '/v1/chat/completions', body: { model: 'small', messages: [{ role: 'user', content: 'hi' }] } });
    const upload = (text: string) => {
      const f = new FormData();
      f.append('purpose', 'batch');
      f.append('file', new Blob([text]), 'in.jsonl');
      return call('/v1/files', { method: 'POST', headers: { authorization: `Bearer ${key}`, 'idempotency-key': 'upload-1' }, body: f, env: e });
    };
    const a = await upload(line);
    expect(a.status).toBe(200);
    const fa = (await a.json()) as any;
    const b = await upload(line);
    expect(b.headers.get('idempotent-replayed')).toBe('true');
    expect(((await b.json()) as any).id).toBe(fa.id);
    const list = (await (await call('/v1/files', { headers: { authorization: `Bearer ${key}` }, env: e })).json()) as any;
    expect(list.data.map((f: any) => f.id)).toEqual([fa.id]);
    // Another file under the same key: 422, nothing stored.
    const c = await upload(`${line}\n${line}`);
    expect(c.status).toBe(422);
  });

  it('the store unreachable: 503 idempotency_unavailable in OpenAI format, and nothing ran', async () => {
    const s = await budgetStack();
    const down = { idFromName: (n: string) => n, get: () => new Proxy({}, { get: () => async () => { throw new Error('connection lost'); } }) };
    const e = { ...s.e, ASYNC_JOBS: down } as unknown as typeof s.e;
    const res = await post(CHAT, s.key, ask, e, { 'idempotency-key': 'down-1' });
    expect(res.status).toBe(503);
    expect((await errorOf(res)).code).toBe('idempotency_unavailable');
    expect((await ledgerRecords(s.t)).length).toBe(0);
  });
});
