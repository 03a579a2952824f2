import { describe, expect, it } from 'vitest';
import { expectedRequests, learnProfile } from '../../scripts/scale/predictive';

describe('expectedRequests on any clock', () => {
  it('ends on days whose slots are not whole milliseconds (the bench smoke: a 1 s day), summing what the profile holds', () => {
    const dayMs = 1000; // 96 slots of 10.41666… ms: boundaries fall between floats
    const profile = learnProfile(Array.from({ length: 96 }, (_, i) => ({ backend: 'b', dayMs: (i + 0.5) * (dayMs / 96) })), 1, { dayMs, smooth: 0 });
    // Every window over a whole number of slots expects that many requests (one per slot).
    for (let from = 0; from < 96; from++) {
      for (const slots of [1, 7, 24, 95]) {
        const got = expectedRequests(profile, 'b', from * (dayMs / 96), (from + slots) * (dayMs / 96));
        expect(Math.abs(got - slots), `${from} + ${slots} slots: ${got}`).toBeLessThan(1.01);
      }
    }
  });
});
