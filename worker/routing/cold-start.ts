// Cold-start-aware ordering of a planned chain (issue 6): what to do with a candidate whose
// backend this isolate believes cold or waking. Runs after planCandidates, from memory only.
//
// For such a candidate the expected start is the backend's learnt one (median of observed starts)
// or its configured cold_start_ms, less what a wake under way has already done.
//   - The deadline allows that start plus the backend's normal answer time: keep it where it is
//     and wait (its attempt's timeouts are extended by the start; the attempt itself is the wake-up).
//   - It does not, and a warm candidate comes later in the chain: move the cold one behind it
//     ("avoided") and wake it in the background: a pending wake-up in its object (the scale scripts
//     start Kubernetes backends from it) and a minimal real request (serverless platforms and the
//     simulator start on a request), whose answer is a measured cold start.
//   - No warm alternative: keep it and wait; a slow answer beats none.
// One refinement: a backend already waking (someone else's request or a scale event started it)
// needs no request of ours to start, so while a warm backend serves the same model, requests go
// there instead of queueing behind the start: only the request that started a wake waits for it.
// x-router-cold-start says which of the two happened to the answer the client got.

import { adapterFor } from '../backends';
import { backendSecret } from '../protocol/rules/backend-endpoints';
import type { CompiledConfig } from '../config/compiled';
import type { BackendConfig, Timeouts } from '../config/schema';
import type { EndpointKind } from '../openai/schemas';
import {
  coldStateOf,
  DEFAULT_NORMAL_MS,
  lifecycleAnswered,
  lifecycleBegin,
  lifecycleEnd,
  lifecycleFailed,
  refreshBackendLifecycles,
  requestWake,
  type ColdView,
} from './backend-lifecycle-view';
import { background, errorMessage, type WaitUntil } from '../isolate/background';
import { tracked } from '../protocol/rules/lifecycle-rules';
import type { Candidate } from './plan';

export const COLD_START_HEADER = 'x-router-cold-start';

export interface ColdStartPlan {
  candidates: readonly Candidate[];
  /** A cold candidate was moved behind warm ones (and woken in the background). */
  avoided: boolean;
}

export interface ColdStartInput {
  config: CompiledConfig;
  env: Record<string, unknown>;
  ctx: WaitUntil;
  candidates: readonly Candidate[];
  /** Epoch ms by which the client must have an answer. */
  deadline: number;
  stream: boolean;
  now?: number;
}

/** A wake-up request is given at most this long (waitUntil may not last longer anyway). */
const PING_MAX_MS = 25_000;
const PING_MARGIN_MS = 5_000;

export function planColdStarts(input: ColdStartInput): ColdStartPlan {
  const { candidates, config } = input;
  // The common case (no backend with cold_start_ms in the chain) costs this loop and nothing else.
  if (!candidates.some((c) => tracked(c.backend))) return { candidates, avoided: false };
  const now = input.now ?? Date.now();
  refreshBackendLifecycles(input.env, input.ctx, config, candidates.map((c) => c.backend), now);
  const views: (ColdView | null)[] = candidates.map((c) => coldStateOf(config, c.backend, input.stream, now));
  if (views.every((v) => v === null)) return { candidates, avoided: false };

  // Only the candidates the request would reach first are decided: from the head of the chain up
  // to the first one it will go to (a warm one, or a cold one it waits for). Those after it are
  // fallbacks, tried only if that one fails: they keep their place (and their wait), and nobody
  // wakes them for a request that does not need them.
  const firstWarm = views.indexOf(null);
  const warmModels = new Set<string>();
  views.forEach((v, i) => v === null && warmModels.add(candidates[i]!.model.id));
  const budget = input.deadline - now;
  const out: Candidate[] = [];
  const moved: Candidate[] = [];
  let deciding = true;
  candidates.forEach((c, i) => {
    const v = views[i];
    if (!v) {
      out.push(c);
      deciding = false;
      // The cold ones passed over go right behind the warm one that replaced them.
      if (i === firstWarm) out.push(...moved);
      return;
    }
    // Even a candidate moved back waits for the start if it is ever tried.
    const planned: Candidate = { ...c, coldStartWaitMs: v.remainingMs };
    if (!deciding || firstWarm < 0) {
      out.push(planned);
      deciding = false;
      return;
    }
    if (v.state === 'waking' && warmModels.has(c.model.id)) {
      moved.push(planned); // started already: nothing to wake
      return;
    }
    if (budget >= v.remainingMs + v.allowanceMs) {
      out.push(planned);
      deciding = false;
      return;
    }
    moved.push(planned);
    wakeInBackground(input, c.backend, v, now);
  });
  return { candidates: out, avoided: moved.length > 0 };
}

/** The header for the answer served by `served` (null: degraded or nothing), or null for none. */
export function coldStartHeader(plan: ColdStartPlan, served: Candidate | null): 'waited' | 'avoided' | null {
  if (!served) return null;
  if (served.coldStartWaitMs) return 'waited';
  return plan.avoided ? 'avoided' : null;
}

/** The attempt's timeouts, each extended by the cold start it plans to wait for (the deadline still caps them). */
export function withColdStart(t: Timeouts, waitMs: number | undefined): Timeouts {
  if (!waitMs) return t;
  return { connect_ms: t.connect_ms + waitMs, ttft_ms: t.ttft_ms + waitMs, total_ms: t.total_ms + waitMs };
}

function wakeInBackground(input: ColdStartInput, backend: BackendConfig, v: ColdView, now: number): void {
  if (!requestWake(input.ctx, input.env, input.config, backend, now)) return; // one under way already
  const timeoutMs = Math.min(PING_MAX_MS, v.remainingMs + (v.allowanceMs || DEFAULT_NORMAL_MS) + PING_MARGIN_MS);
  background(input.ctx, ping(input, backend, timeoutMs), 'cold-start ping');
}

/**
 * The smallest real request the backend serves: one token of chat (or an embedding), with its
 * auth, through its adapter. Counted like any attempt, so its answer is a measured cold start.
 */
async function ping(input: ColdStartInput, backend: BackendConfig, timeoutMs: number): Promise<void> {
  const model = backend.models.map((id) => input.config.modelsByName.get(id)).find((m) => m !== undefined);
  if (!model) return;
  const endpoint: EndpointKind = model.type === 'embedding' ? 'embeddings' : 'chat';
  const name = model.served_name ?? model.id;
  const body = endpoint === 'embeddings' ? { model: name, input: 'ping' } : { model: name, messages: [{ role: 'user', content: 'ping' }], max_tokens: 1 };
  const a = lifecycleBegin(input.ctx, input.env, input.config, backend, false);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort('wake-up timed out'), timeoutMs);
  try {
    const res = await adapterFor(backend).send(backend, { endpoint, body, stream: false, requestId: `wake_${crypto.randomUUID().replaceAll('-', '')}` }, {
      signal: controller.signal,
      secret: backendSecret(backend, input.env),
      env: input.env,
      deadline: Date.now() + timeoutMs,
      waitUntil: (p) => background(input.ctx, p, 'cold-start ping'),
    });
    await res.text().catch(() => '');
    if (res.ok) lifecycleAnswered(a);
    else lifecycleFailed(a, { kind: 'status', status: res.status });
  } catch (e) {
    if (!controller.signal.aborted) lifecycleFailed(a, { kind: 'connect' });
    else console.warn(`cold start: wake-up of ${backend.id} got no answer in ${timeoutMs} ms: ${errorMessage(e)}`);
  } finally {
    clearTimeout(timer);
    lifecycleEnd(a);
  }
}
