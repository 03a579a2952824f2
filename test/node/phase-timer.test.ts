import { describe, expect, it } from 'vitest';
import { PhaseTimer } from '../../worker/routing/phase-timer';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('PhaseTimer', () => {
  it('moving to a later deadline runs only the new callback, and not before its deadline', async () => {
    const t = new PhaseTimer();
    const fired: { phase: string; early: number }[] = [];
    const at1 = Date.now() + 30;
    t.set(at1, () => fired.push({ phase: 'connect', early: at1 - Date.now() }));
    const at2 = Date.now() + 120;
    t.set(at2, () => fired.push({ phase: 'total', early: at2 - Date.now() }));
    await sleep(60);
    expect(fired).toEqual([]); // the armed timer fired at at1 and re-armed
    while (fired.length === 0 && Date.now() < at2 + 2_000) await sleep(10);
    expect(fired.map((f) => f.phase)).toEqual(['total']);
    expect(fired[0]!.early).toBeLessThanOrEqual(1);
  });

  it('an earlier deadline re-arms the timer; clear() cancels; each callback runs once', async () => {
    const t = new PhaseTimer();
    let n = 0;
    t.set(Date.now() + 10_000, () => (n += 100));
    t.set(Date.now() + 20, () => n++);
    while (n === 0) await sleep(5);
    await sleep(50);
    expect(n).toBe(1);
    t.set(Date.now() + 20, () => (n += 10));
    t.clear();
    await sleep(80);
    expect(n).toBe(1);
    t.set(Date.now() - 5, () => (n += 1_000)); // already past: runs at once
    await sleep(20);
    expect(n).toBe(1_001);
  });
});
