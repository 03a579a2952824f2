import { beforeEach, describe, expect, it } from 'vitest';
import type { Bucket, LimiterStore, LimitResult } from './store';

/**
 * The contract every rate-limit store passes (embedded Durable Objects, Upstash through
 * @upstash/ratelimit, the fallback wrapper): call it from a test file with a factory; it
 * registers the tests. Buckets are random per test, and windows long (an hour) except where a
 * test waits for a refill, so no assertion depends on timing.
 */
export function limiterContract(name: string, factory: () => LimiterStore | Promise<LimiterStore>) {
  describe(`LimiterStore contract: ${name}`, () => {
    let store: LimiterStore;
    let run = '';
    const HOUR = 3_600_000;
    const bucket = (id: string, over: Partial<Bucket> = {}): Bucket => {
      const b: Bucket = { dimension: 'key', subject: id, unit: 'requests', limit: 10, windowMs: HOUR, cost: 1, shard: `tenant:${run}`, key: '', ...over };
      return { ...b, key: `${b.unit}:${b.dimension}:${run}-${id}:${b.limit}:${b.windowMs}` };
    };
    const one = (b: Bucket) => store.limit({ groups: [[b]] });
    const state = (r: LimitResult, g = 0, i = 0) => r.groups[g]!.states[i]!;

    beforeEach(async () => {
      run = crypto.randomUUID().slice(0, 12);
      store = await factory();
    });

    it('counts down to the limit, then refuses (remaining 0, the refill time as reset) and takes nothing', async () => {
      const b = bucket('countdown', { limit: 3 });
      const before = Date.now();
      const got: number[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await one(b);
        expect(r.groups[0]!.admitted).toBe(true);
        got.push(state(r).remaining);
        expect(state(r)).toMatchObject({ ok: true, limit: 3 });
        expect(state(r).resetAt).toBeGreaterThan(before);
        expect(state(r).resetAt).toBeLessThanOrEqual(Date.now() + HOUR);
      }
      expect(got).toEqual([2, 1, 0]);
      const refused = await one(b);
      expect(refused.groups[0]!.admitted).toBe(false);
      expect(state(refused)).toMatchObject({ ok: false, limit: 3, remaining: 0 });
      expect(state(refused).resetAt).toBeGreaterThanOrEqual(before + HOUR);
      expect(refused.store).toEqual(expect.any(String));
    });

    it('50 at once against a limit of 10: exactly 10 admitted, their remaining exactly 9…0', async () => {
      const b = bucket('burst', { limit: 10 });
      const results = await Promise.all(Array.from({ length: 50 }, () => one(b)));
      const admitted = results.filter((r) => r.groups[0]!.admitted);
      expect(admitted).toHaveLength(10);
      expect(admitted.map((r) => state(r).remaining).sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      for (const r of results.filter((x) => !x.groups[0]!.admitted)) expect(state(r).remaining).toBe(0);
    });

    it('takes N units only when N are left: a larger reservation is refused and takes nothing', async () => {
      const b = (cost: number) => bucket('tokens', { unit: 'tokens', limit: 100, cost });
      expect(state(await one(b(70)))).toMatchObject({ ok: true, remaining: 30 });
      expect(state(await one(b(50)))).toMatchObject({ ok: false, remaining: 0 });
      expect(state(await one(b(30)))).toMatchObject({ ok: true, remaining: 0 });
      // More than the whole limit never fits.
      expect(state(await one(bucket('huge', { unit: 'tokens', limit: 100, cost: 101 })))).toMatchObject({ ok: false });
    });

    it('a group is all-or-nothing: one full bucket refuses it and the others keep their units', async () => {
      const full = bucket('full', { limit: 1 });
      const free = bucket('free', { dimension: 'tenant', limit: 5 });
      await one(full);
      const r = await store.limit({ groups: [[free, full]] });
      expect(r.groups[0]!.admitted).toBe(false);
      expect(r.groups[0]!.states[1]!.ok).toBe(false);
      expect(state(await one(free))).toMatchObject({ ok: true, remaining: 4 });
    });

    it('groups go in order: a refused requests group takes no tokens; a refused tokens group keeps its request', async () => {
      const req = bucket('req', { limit: 1 });
      const tok = bucket('tok', { unit: 'tokens', limit: 100, cost: 40 });
      const first = await store.limit({ groups: [[req], [tok]] });
      expect(first.groups.map((g) => g.admitted)).toEqual([true, true]);
      expect(state(first, 1)).toMatchObject({ ok: true, remaining: 60 });
      const second = await store.limit({ groups: [[req], [tok]] });
      expect(second.groups.map((g) => g.admitted)).toEqual([false, false]);
      expect(state(await one(tok))).toMatchObject({ ok: true, remaining: 20 }); // the refused request took no tokens

      const req2 = bucket('req2', { limit: 5 });
      const big = bucket('tok', { unit: 'tokens', limit: 100, cost: 40 }); // 0 left after the line above
      const third = await store.limit({ groups: [[req2], [big]] });
      expect(third.groups.map((g) => g.admitted)).toEqual([true, false]);
      expect(state(await one(req2))).toMatchObject({ ok: true, remaining: 3 }); // the request stayed taken
    });

    it('corrections: a refund gives units back (never above the limit), a charge takes more, another period is left alone', async () => {
      const b = bucket('adjust', { unit: 'tokens', limit: 100, cost: 60 });
      const r = await one(b);
      const periodStart = state(r).resetAt - b.windowMs;
      await store.adjust([{ bucket: b, periodStart, delta: 50 }], r.store); // used 10 of the 60
      expect(state(await one({ ...b, cost: 1 }))).toMatchObject({ ok: true, remaining: 89 });
      await store.adjust([{ bucket: b, periodStart, delta: 500 }], r.store); // capped at the limit
      expect(state(await one({ ...b, cost: 1 }))).toMatchObject({ ok: true, remaining: 99 });
      await store.adjust([{ bucket: b, periodStart, delta: -30 }], r.store); // used 30 more than reserved
      expect(state(await one({ ...b, cost: 1 }))).toMatchObject({ ok: true, remaining: 68 });
      await store.adjust([{ bucket: b, periodStart: periodStart - b.windowMs, delta: 20 }], r.store); // an earlier period: nothing
      await store.adjust([{ bucket: bucket('never-taken', { unit: 'tokens', limit: 100 }), periodStart, delta: 20 }], r.store); // no bucket: nothing
      expect(state(await one({ ...b, cost: 1 }))).toMatchObject({ ok: true, remaining: 67 });
    });

    it('buckets of different shards (tenant and global) are decided together, all-or-nothing', async () => {
      const global = bucket('global', { dimension: 'global', shard: `global-${run}`, limit: 1 });
      const tenant = bucket('tenant', { dimension: 'tenant', limit: 5 });
      expect((await store.limit({ groups: [[tenant, global]] })).groups[0]!.admitted).toBe(true);
      const refused = await store.limit({ groups: [[tenant, global]] });
      expect(refused.groups[0]!.admitted).toBe(false);
      expect(state(await one(tenant))).toMatchObject({ ok: true, remaining: 3 }); // 5 − the admitted one − this one
    });

    it('refills in full when the window has passed (real clock)', async () => {
      const b = bucket('refill', { limit: 2, windowMs: 1_000 });
      await one(b);
      await one(b);
      expect(state(await one(b)).ok).toBe(false);
      await new Promise((r) => setTimeout(r, 1_100));
      expect(state(await one(b))).toMatchObject({ ok: true, remaining: 1 });
    });
  });
}
