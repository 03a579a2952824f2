// What this isolate has seen of each backend: requests in flight and recent failures.
// It is a local view, not the truth across the edge (Durable Object breakers hold that):
// it lets a request skip a backend that just failed here without asking anyone.

import { registerIsolateState } from '../isolate/registry';

const FAILURES_TO_SKIP = 3;
const SKIP_MS = 10_000;

interface BackendView {
  inFlight: number;
  consecutiveFailures: number;
  skipUntil: number;
}

const views = new Map<string, BackendView>();

function view(id: string): BackendView {
  let v = views.get(id);
  if (!v) views.set(id, (v = { inFlight: 0, consecutiveFailures: 0, skipUntil: 0 }));
  return v;
}

export const isolateState = {
  inFlight: (id: string) => views.get(id)?.inFlight ?? 0,
  begin(id: string): () => void {
    const v = view(id);
    v.inFlight++;
    let done = false;
    return () => {
      if (!done) {
        done = true;
        v.inFlight--;
      }
    };
  },
  success(id: string) {
    const v = view(id);
    v.consecutiveFailures = 0;
    v.skipUntil = 0;
  },
  failure(id: string, now = Date.now()) {
    const v = view(id);
    if (++v.consecutiveFailures >= FAILURES_TO_SKIP) v.skipUntil = now + SKIP_MS;
  },
  usable: (id: string, now = Date.now()) => (views.get(id)?.skipUntil ?? 0) <= now,
};

registerIsolateState('backend-memory', () => views.clear());
