import { describe, expect, it } from 'vitest';
import { StoreBatches } from '../../worker/cache/semantic/store-batch';

// The semantic index's stores batched per isolate and tenant (store-batch.ts): what is added
// while a write is in flight goes in the next one, every store settles only once its own write
// did, and the request that runs the writes hands over after maxRounds batches.

/** A write that waits until the test lets it go, recording each batch. */
function gatedWriter() {
  const batches: { key: string; items: number[] }[] = [];
  const gates: { release: () => void; fail: (e: Error) => void }[] = [];
  const write = (key: string, items: number[]) =>
    new Promise<void>((resolve, reject) => {
      batches.push({ key, items: [...items] });
      gates.push({ release: resolve, fail: reject });
    });
  return { write, batches, gates };
}

const tick = () => new Promise<void>((r) => setTimeout(r, 0));

function tracked(p: Promise<void>) {
  const state = { settled: false, error: null as unknown };
  p.then(
    () => (state.settled = true),
    (e) => {
      state.settled = true;
      state.error = e;
    },
  );
  return state;
}

describe('StoreBatches', () => {
  it('writes the first store at once, then everything added meanwhile in one batch, in order; each settles when its own batch is written', async () => {
    const w = gatedWriter();
    const b = new StoreBatches<number>(w.write, 32, 8);
    const first = tracked(b.add('t', 1));
    await tick();
    expect(w.batches).toEqual([{ key: 't', items: [1] }]);
    const rest = [2, 3, 4].map((n) => tracked(b.add('t', n)));
    const other = tracked(b.add('u', 9)); // another tenant: its own writes
    await tick();
    expect(w.batches).toEqual([
      { key: 't', items: [1] },
      { key: 'u', items: [9] },
    ]);
    expect(b.waiting('t')).toBe(3);
    w.gates[0]!.release();
    await tick();
    expect(w.batches[2]).toEqual({ key: 't', items: [2, 3, 4] });
    expect(rest.some((s) => s.settled)).toBe(false); // not before their own write
    expect(first.settled).toBe(false); // the runner waits for the writes it started
    w.gates[2]!.release();
    w.gates[1]!.release();
    await tick();
    expect([first, ...rest, other].every((s) => s.settled && s.error === null)).toBe(true);
    expect(b.waiting('t')).toBe(0);
    // Nothing in flight: the next store goes at once again.
    const later = tracked(b.add('t', 5));
    await tick();
    expect(w.batches[3]).toEqual({ key: 't', items: [5] });
    w.gates[3]!.release();
    await tick();
    expect(later.settled).toBe(true);
  });

  it('a failed write fails its own stores only; later batches still go', async () => {
    const w = gatedWriter();
    const b = new StoreBatches<number>(w.write, 32, 8);
    const first = tracked(b.add('t', 1));
    await tick();
    const second = [2, 3].map((n) => tracked(b.add('t', n)));
    w.gates[0]!.fail(new Error('object unreachable'));
    await tick();
    expect(w.batches[1]).toEqual({ key: 't', items: [2, 3] });
    w.gates[1]!.release();
    await tick();
    expect(String(first.error)).toMatch(/object unreachable/);
    expect(second.every((s) => s.settled && s.error === null)).toBe(true);
  });

  it('caps a batch at maxBatch, and hands the writes over to the next waiting store after maxRounds batches: none is lost', async () => {
    const w = gatedWriter();
    const b = new StoreBatches<number>(w.write, 2, 2);
    const all = [tracked(b.add('t', 0))];
    await tick();
    for (let n = 1; n <= 7; n++) all.push(tracked(b.add('t', n)));
    // Release every write as it comes, until all went out.
    for (let i = 0; i < 20 && w.gates.length > i; i++) {
      w.gates[i]!.release();
      await tick();
      await tick();
    }
    expect(w.batches.map((x) => x.items)).toEqual([[0], [1, 2], [3, 4], [5, 6], [7]]);
    expect(all.every((s) => s.settled && s.error === null)).toBe(true);
    expect(b.waiting('t')).toBe(0);
  });

  it('the runner stops after maxRounds: its own store settles while later ones are written by the store that took over', async () => {
    const w = gatedWriter();
    const b = new StoreBatches<number>(w.write, 1, 1);
    const runner = tracked(b.add('t', 0));
    await tick();
    const next = tracked(b.add('t', 1));
    const last = tracked(b.add('t', 2));
    w.gates[0]!.release();
    await tick();
    await tick();
    expect(runner.settled).toBe(true); // one round: done, the rest is not its to wait for
    expect(w.batches.map((x) => x.items)).toEqual([[0], [1]]); // store 1 took over
    w.gates[1]!.release();
    await tick();
    await tick();
    expect(next.settled).toBe(true);
    expect(w.batches.map((x) => x.items)).toEqual([[0], [1], [2]]);
    w.gates[2]!.release();
    await tick();
    await tick();
    expect(last.settled).toBe(true);
  });
});
