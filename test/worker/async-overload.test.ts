import { env as testEnv } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { compileConfig } from '../../worker/config/compiled';
import type { Env } from '../../worker/env';
import { resetIsolate } from '../../worker/isolate/registry';
import type { LoadSnapshot } from '../../worker/protocol/backend-metrics';
import { refreshLoad } from '../../worker/routing/load-snapshot';
import { budgetStack, HI } from './budget-support';
import { asyncEnv, deliver, getJob, post } from './async-support';
import { envWith, errorOf } from './support';
import { ledgerRecords } from './usage-support';

// Prefer: respond-async-on-overload decided before the attempt (README "Async requests"): when every
// candidate is at capacity (this isolate's in-flight at the backend's max_concurrency), a request that
// allows it is queued at once (202) without a call to any backend; the job runs once capacity is back.
// The simulator over loopback holds the one slot with a hung request.

const CHAT = '/v1/chat/completions';
const ask = { model: 'm', messages: HI, max_tokens: 20, ignore_eos: true };

async function until<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('respond-async-on-overload before the attempt', () => {
  it('every candidate at max_concurrency: 202 with no backend call; a stream is never queued; the job completes once capacity is back', async () => {
    const s = await budgetStack();
    const backend = { ...s.cfg.backends[0], max_concurrency: 1, timeouts: { total_ms: 3_000 } };
    const cfg = { ...s.cfg, backends: [backend], breaker: { enabled: false }, max_attempts: 1 };
    const { env: e, sent } = asyncEnv(envWith(cfg));
    const chats = async () => Number((await s.sim.stats()).requests.chat ?? 0);

    // Capacity free: served now, nothing queued.
    expect((await post(CHAT, s.key, ask, e, { prefer: 'respond-async-on-overload' })).status).toBe(200);
    expect(sent).toEqual([]);
    expect(await chats()).toBe(1);

    // The one slot held by a request the simulator never answers.
    await s.sim.faults({ hang: true });
    const held = post(CHAT, s.key, ask, e);
    await until('the held request at the backend', chats, (n) => n === 2);

    const res = await post(CHAT, s.key, ask, e, { prefer: 'respond-async-on-overload' });
    expect(res.status).toBe(202);
    const job = (await res.json()) as any;
    expect(job).toMatchObject({ status: 'queued', reason: 'overload' });
    expect(res.headers.get('location')).toBe(`/v1/async/${job.id}`);
    expect(sent).toEqual([{ tenant: s.t, id: job.id }]);
    expect(await chats()).toBe(2); // queued without touching the backend
    // The refused attempt is on the ledger as 503 overloaded (never sent to the client).
    expect((await ledgerRecords(s.t)).filter((r) => r.error_code === 'overloaded').map((r) => r.status)).toEqual([503]);

    // A stream that allows overload queueing is never queued: it goes to the backend as before.
    await s.sim.faults({ error_rate: 1, status: 503 });
    const stream = await post(CHAT, s.key, { ...ask, stream: true }, e, { prefer: 'respond-async-on-overload' });
    expect(stream.status).not.toBe(202);
    expect(sent.length).toBe(1);

    // Capacity back (the held request ends at its total_ms), the job runs and completes.
    await s.sim.faults({});
    const heldRes = await held;
    expect(heldRes.status).toBeGreaterThanOrEqual(500);
    expect(['upstream_timeout', 'upstream_error']).toContain((await errorOf(heldRes)).code);
    const before = await chats();
    await deliver(e, sent);
    const done = (await (await getJob(job.id, s.key, e)).json()) as any;
    expect(done).toMatchObject({ status: 'completed', attempts: 1, response: { status_code: 200 } });
    expect(done.response.body.object).toBe('chat.completion');
    expect(await chats()).toBe(before + 1);
  });

  it('[async].overload_waiting_requests: a backend whose scraped vllm:num_requests_waiting is above it counts as at capacity', async () => {
    const s = await budgetStack();
    const backendId = s.cfg.backends[0].id;
    // A long scrape interval: the isolate keeps the snapshot installed below (no refresh replaces it).
    const base = { ...s.cfg, breaker: { enabled: false }, max_attempts: 1, routing: { scrape_interval_ms: 600_000, load_stale_ms: 600_000 } };
    const chats = async () => Number((await s.sim.stats()).requests.chat ?? 0);

    // This isolate's view of the backend's own queue: 5 waiting (as BackendMetrics would have scraped it).
    resetIsolate();
    const snap: LoadSnapshot = { takenAt: Date.now(), backends: { [backendId]: { running: 2, waiting: 5, kvCacheUsage: 0.5, scrapedAt: Date.now() } } };
    const waits: Promise<unknown>[] = [];
    const fakeNs = { idFromName: (n: string) => n, get: () => ({ snapshot: async () => snap }) };
    const compiled = compileConfig(base);
    if (!compiled.ok) throw new Error(compiled.errors.join('; '));
    refreshLoad({ ...(testEnv as unknown as Env), BACKEND_METRICS: fakeNs } as unknown as Env, { waitUntil: (p) => void waits.push(p) }, compiled.config);
    await Promise.all(waits);

    // At the threshold (5, not above): served now.
    const atLimit = asyncEnv(envWith({ ...base, async: { overload_waiting_requests: 5 } }));
    expect((await post(CHAT, s.key, ask, atLimit.env, { prefer: 'respond-async-on-overload' })).status).toBe(200);
    expect(atLimit.sent).toEqual([]);
    expect(await chats()).toBe(1);
    // Above it: queued before any backend call.
    const above = asyncEnv(envWith({ ...base, async: { overload_waiting_requests: 4 } }));
    const res = await post(CHAT, s.key, ask, above.env, { prefer: 'respond-async-on-overload' });
    expect(res.status).toBe(202);
    expect(((await res.json()) as any).reason).toBe('overload');
    expect(above.sent.length).toBe(1);
    expect(await chats()).toBe(1);
    // Unset: the scraped queue alone does not count (only in-flight against max_concurrency).
    const unset = asyncEnv(envWith(base));
    expect((await post(CHAT, s.key, ask, unset.env, { prefer: 'respond-async-on-overload' })).status).toBe(200);
    expect(await chats()).toBe(2);
    resetIsolate();
  });
});
