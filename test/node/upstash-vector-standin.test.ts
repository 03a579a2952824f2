import { Index } from '@upstash/vector';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVectorStandIn, type VectorStandIn } from '../setup/upstash-vector-server';

// The Upstash Vector contract stand-in (test/setup/upstash-vector-server.ts) driven by the real
// @upstash/vector client: what the semantic cache relies on, and the documented wire details.
let s: VectorStandIn;
let index: Index<{ scope: string; n: number }>;
beforeAll(async () => {
  s = await startVectorStandIn({ token: 'vector-test-token' });
  index = new Index({ url: s.url, token: s.token, retry: false, enableTelemetry: false });
});
afterAll(() => s?.close());

describe('Upstash Vector contract stand-in', () => {
  it('upsert-data and query-data per namespace: text in, {result} out, scores (1 + cosine) / 2, data and metadata on request', async () => {
    const ns = index.namespace('tenant-a');
    expect(await ns.upsert([{ id: 'p1', data: 'How do I reset my password?', metadata: { scope: 's1', n: 1 } }, { id: 'p2', data: 'Best pizza in Naples', metadata: { scope: 's1', n: 2 } }])).toBe('Success');
    await index.namespace('tenant-b').upsert({ id: 'p1', data: 'How do I reset my password?', metadata: { scope: 's1', n: 9 } });

    const r = await ns.query({ data: 'how can I reset my password', topK: 2, includeMetadata: true, includeData: true });
    expect(r.map((x) => x.id)).toEqual(['p1', 'p2']);
    expect(r[0]!.score).toBeCloseTo(1, 5); // identical content words: cosine 1
    expect(r[0]).toMatchObject({ data: 'How do I reset my password?', metadata: { scope: 's1', n: 1 } });
    expect(r[1]!.score).toBeLessThan(0.75);
    expect(r[1]!.score).toBeGreaterThanOrEqual(0);
    const bare = await ns.query({ data: 'reset password', topK: 1 });
    expect(bare[0]).toEqual({ id: 'p1', score: expect.any(Number) }); // nothing included unless asked
    expect(await index.query({ data: 'reset password', topK: 5 })).toEqual([]); // the default namespace is another one
  });

  it('filters on metadata (AND, OR, parentheses, strings, numbers) and deletes by filter', async () => {
    const ns = index.namespace('filters');
    await ns.upsert([1, 2, 3, 4].map((n) => ({ id: `e${n}`, data: `entry number ${n}`, metadata: { scope: n % 2 ? 'odd' : 'even', n } })));
    const ids = async (filter: string) => (await ns.query({ data: 'entry', topK: 10, filter })).map((x) => x.id).sort();
    expect(await ids("scope = 'odd'")).toEqual(['e1', 'e3']);
    expect(await ids("scope = 'odd' AND n > 1")).toEqual(['e3']);
    expect(await ids("n <= 1 OR (scope = 'even' AND n >= 4)")).toEqual(['e1', 'e4']);
    expect(await ids("scope != 'odd'")).toEqual(['e2', 'e4']);
    expect(await ns.delete({ filter: 'n < 3' })).toEqual({ deleted: 2 });
    expect(await ids("scope = 'odd' OR scope = 'even'")).toEqual(['e3', 'e4']);
    await expect(ns.query({ data: 'entry', topK: 1, filter: 'n ~ 3' })).rejects.toThrow(/Invalid filter/);
  });

  it('a wrong token is a 401 {"error", "status"}, which the client throws', async () => {
    const res = await fetch(`${s.url}/query-data`, { method: 'POST', headers: { authorization: 'Bearer nope' }, body: JSON.stringify({ data: 'x', topK: 1 }) });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: 'Unauthorized: Invalid auth token', status: 401 });
    const bad = new Index({ url: s.url, token: 'nope', retry: false, enableTelemetry: false });
    await expect(bad.query({ data: 'x', topK: 1 })).rejects.toThrow('Unauthorized: Invalid auth token');
    expect((await fetch(`${s.url}/info`, { method: 'DELETE', headers: { authorization: `Bearer ${s.token}` } })).status).toBe(405);
  });

  it('stop closes the port (the client fails at once); start brings it back with its data', async () => {
    await index.namespace('outage').upsert({ id: 'x', data: 'kept across a restart' });
    await s.stop();
    await expect(index.namespace('outage').query({ data: 'kept', topK: 1 })).rejects.toThrow();
    await s.start();
    expect((await index.namespace('outage').query({ data: 'kept across a restart', topK: 1 }))[0]?.id).toBe('x');
  });
});
