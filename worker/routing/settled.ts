import type { Settled } from './execute';

type OnSettled = (settled: Settled) => void;

/**
 * Several accounts of one answer (budget reservation, rate-limit token reservation, …) behind
 * the executor's single onSettled: each called once, in order, and one that throws does not
 * keep the next from running. Returns `{}` when there is none, for spreading into execute()'s input.
 */
export function settledBy(...callbacks: (OnSettled | null | undefined)[]): { onSettled?: OnSettled } {
  const fns = callbacks.filter((f): f is OnSettled => typeof f === 'function');
  if (fns.length === 0) return {};
  if (fns.length === 1) return { onSettled: fns[0]! };
  return {
    onSettled: (s) => {
      for (const f of fns) {
        try {
          f(s);
        } catch (e) {
          console.error(JSON.stringify({ msg: 'onSettled callback failed', error: String(e) }));
        }
      }
    },
  };
}
