// The isolate kit (worker/isolate/): background work, single flight, the batched report loop
// and the registry of isolate state. The views that use it are tested in workerd
// (breakers, cold-start, load-snapshot); these pin the kit's own rules.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { background, backgroundSettled, GIVE_UP_MS, type WaitUntil } from '../../worker/isolate/background';
import { registerIsolateState, resetIsolate } from '../../worker/isolate/registry';
import { ReportLoop } from '../../worker/isolate/report-loop';
import { SingleFlight } from '../../worker/isolate/single-flight';

const ctx = (): WaitUntil & { handed: Promise<unknown>[] } => {
  const handed: Promise<unknown>[] = [];
  return { handed, waitUntil: (p) => void handed.push(p) };
};

afterEach(() => vi.restoreAllMocks());

describe('background()', () => {
  it('hands the work to waitUntil and backgroundSettled() waits for it and for what it starts', async () => {
    const c = ctx();
    const order: string[] = [];
    let release!: () => void;
    const first = new Promise<void>((r) => (release = r)).then(() => {
      order.push('first');
      background(c, Promise.resolve().then(() => order.push('second')), 'test');
    });
    expect(background(c, first, 'test')).toBe(true);
    expect(c.handed).toEqual([first]);
    const settled = backgroundSettled().then(() => order.push('settled'));
    await Promise.resolve();
    expect(order).toEqual([]);
    release();
    await settled;
    expect(order).toEqual(['first', 'second', 'settled']);
  });

  it('a refused waitUntil is logged, not thrown, and a rejected task does not fail backgroundSettled()', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const refusing: WaitUntil = {
      waitUntil: () => {
        throw new Error('context finished');
      },
    };
    const failing = Promise.reject(new Error('lost'));
    failing.catch(() => {});
    expect(background(refusing, failing, 'views')).toBe(false);
    expect(warn).toHaveBeenCalledWith('views: waitUntil refused: context finished');
    await expect(backgroundSettled()).resolves.toBeUndefined();
  });
});

describe('SingleFlight', () => {
  it('runs one call at a time, gives up on one after GIVE_UP_MS, and a taken-over call changes nothing', () => {
    const f = new SingleFlight();
    expect(f.running(0)).toBe(false);
    const a = f.start(1_000);
    expect(f.running(1_000 + GIVE_UP_MS - 1)).toBe(true);
    expect(f.running(1_000 + GIVE_UP_MS)).toBe(false); // taken as cut short
    const b = f.start(1_000 + GIVE_UP_MS);
    expect(f.holds(a)).toBe(false);
    f.done(a); // the old call ends late
    expect(f.running(1_000 + GIVE_UP_MS + 1)).toBe(true);
    expect(f.holds(b)).toBe(true);
    f.done(b);
    expect(f.running(1_000 + GIVE_UP_MS + 1)).toBe(false);
  });
});

/** A view with a counter to report: successes wait `gap` ms after the last report, news goes at once. */
function counterView(gap: number, maxLoopMs?: number) {
  const v = { pending: 0, news: false, lastFlushAt: Number.NEGATIVE_INFINITY, sent: [] as number[], applied: [] as string[] };
  const replies: ((reply: string) => void)[] = [];
  const loop = new ReportLoop<null, number, string>({
    what: 'counter',
    maxLoopMs,
    due: (now) => (v.pending === 0 ? 'idle' : v.news ? 0 : Math.max(0, gap - (now - v.lastFlushAt))),
    take: (now) => {
      const n = v.pending;
      v.pending = 0;
      v.news = false;
      v.lastFlushAt = now;
      return n;
    },
    send: (n) => {
      v.sent.push(n);
      return new Promise<string>((r) => replies.push(r));
    },
    apply: (reply) => void v.applied.push(reply),
    failed: () => {},
  });
  return { v, loop, replies };
}

const until = async (what: () => boolean) => {
  for (let i = 0; i < 200 && !what(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(what()).toBe(true);
};

describe('ReportLoop', () => {
  it('keeps one report in flight: what arrives meanwhile rides on the next one', async () => {
    const { v, loop, replies } = counterView(0);
    const c = ctx();
    v.pending = 1;
    loop.pump(c, null);
    await until(() => v.sent.length === 1);
    v.pending += 2;
    loop.pump(c, null); // a loop is running: it picks these up
    loop.pump(c, null);
    expect(c.handed).toHaveLength(1);
    expect(v.sent).toEqual([1]);
    replies[0]!('first');
    await until(() => v.sent.length === 2);
    expect(v.sent).toEqual([1, 2]);
    expect(v.applied).toEqual(['first']);
    replies[1]!('second');
    await backgroundSettled();
    expect(v.applied).toEqual(['first', 'second']);
    expect(loop.running(Date.now())).toBe(false);
  });

  it('an idle view starts no loop; news goes at once, counts wait in the loop until due', async () => {
    const { v, loop, replies } = counterView(40);
    const c = ctx();
    loop.pump(c, null);
    expect(c.handed).toHaveLength(0); // nothing to say
    v.pending = 1;
    v.lastFlushAt = Date.now();
    v.news = true;
    loop.pump(c, null);
    await until(() => v.sent.length === 1);
    replies[0]!('ok');
    await until(() => !loop.running(Date.now()));
    // Counts only, 40 ms after the last report: the loop that starts waits for them to be due.
    v.pending = 2;
    loop.pump(c, null);
    expect(loop.running(Date.now())).toBe(true);
    expect(v.sent).toEqual([1]);
    await until(() => v.sent.length === 2);
    expect(v.sent).toEqual([1, 2]);
    replies[1]!('ok');
    await backgroundSettled();
  });

  it('hands over after maxLoopMs: the next pump starts a fresh loop', async () => {
    const { v, loop, replies } = counterView(0, 1);
    const c = ctx();
    v.pending = 1;
    loop.pump(c, null);
    await until(() => v.sent.length === 1);
    v.pending = 1;
    await new Promise((r) => setTimeout(r, 5));
    replies[0]!('ok');
    await backgroundSettled(); // the loop ended past maxLoopMs with a count unsent
    expect(v.sent).toEqual([1]);
    expect(v.pending).toBe(1);
    loop.pump(c, null);
    await until(() => v.sent.length === 2);
    replies[1]!('ok');
    await backgroundSettled();
  });
});

describe('resetIsolate()', () => {
  it('resets every registered state, or only the named ones, and refuses an unknown name', () => {
    const done: string[] = [];
    registerIsolateState('kit-test-a', () => done.push('a'));
    registerIsolateState('kit-test-b', () => done.push('b'));
    resetIsolate('kit-test-b');
    expect(done).toEqual(['b']);
    resetIsolate();
    expect(done).toEqual(['b', 'a', 'b']);
    expect(() => resetIsolate('kit-test-typo')).toThrow(/no isolate state named "kit-test-typo"/);
    expect(done).toEqual(['b', 'a', 'b']);
  });
});
