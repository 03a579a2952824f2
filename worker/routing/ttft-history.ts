import type { AttemptObserver } from './attempt-observers';
import { registerIsolateState } from '../isolate/registry';

// Time to first token this isolate has seen per backend (the last SAMPLES answers): the hedge
// delay is a multiple of its p95. Local and approximate on purpose: a hedge is a latency decision
// for this isolate's requests, and what matters is how slow this backend is right now.

const SAMPLES = 128;

interface Ring {
  values: number[];
  next: number;
}

const rings = new Map<string, Ring>();
registerIsolateState('ttft-history', () => rings.clear());

export function noteTtft(backendId: string, ms: number): void {
  let r = rings.get(backendId);
  if (!r) rings.set(backendId, (r = { values: [], next: 0 }));
  if (r.values.length < SAMPLES) r.values.push(ms);
  else r.values[r.next] = ms;
  r.next = (r.next + 1) % SAMPLES;
}

/** The p95 of the TTFTs seen, or null with fewer than `minSamples`. */
export function observedP95(backendId: string, minSamples: number): number | null {
  const r = rings.get(backendId);
  if (!r || r.values.length < minSamples) return null;
  const sorted = [...r.values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)]!;
}

/** Records each attempt's first answer (attempt-observers.ts). */
export const ttftHistory: AttemptObserver = {
  name: 'ttft-history',
  begin({ backend, at }) {
    return { answered: (now) => noteTtft(backend.id, now - at) };
  },
};
