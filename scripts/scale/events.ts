/**
 * Which events one backend's round reports to the router (POST /admin/backends/:id/events).
 * Pure, so each rule is tested alone. An event is only sent when the router's view differs from
 * what was done or seen, so a second apply in a steady state sends nothing.
 */
import type { BackendEvent, BackendStatus } from '../../worker/protocol/backends-api';
import type { CurrentScale } from './drivers/types';
import type { Decision } from './policy';

export interface EventInput {
  status: BackendStatus | undefined;
  /** What the driver saw before acting. */
  before: CurrentScale;
  decision: Decision;
  /** True when the decision's scale call was made (it may have found the target already set). */
  acted: boolean;
  /** The router's clock, to time cold starts against its own state_since. */
  routerNow: Date;
}

export function eventsFor({ status, before, decision, acted, routerNow }: EventInput): BackendEvent[] {
  if (acted && decision.target !== null) {
    const target = decision.target;
    if (target === 0) return [{ type: 'scaled_down', replicas: 0 }];
    if (before.replicas !== null && target < before.replicas) return [{ type: 'scaled_down', replicas: target }];
    // A start: answers pending wake-ups; `ready` follows once the driver sees replicas serving.
    return [{ type: 'waking', replicas: target }];
  }
  if (!status || decision.action === 'skip') return [];
  const replicas = before.replicas;
  const ready = before.ready;

  // Wake-ups asked for while replicas are already there (started by someone else, or our waking
  // event was lost): answer them with what is true now.
  if (status.pending_wakeups > 0 && replicas !== null && replicas > 0) {
    return ready !== null && ready > 0 ? [{ type: 'ready', replicas: ready }] : [{ type: 'waking', replicas }];
  }
  if (ready !== null && ready > 0 && replicas !== null && replicas > 0) {
    if (status.state === 'waking') {
      const since = status.state_since === null ? Number.NaN : Date.parse(status.state_since);
      const coldStart = routerNow.getTime() - since;
      return [{ type: 'ready', replicas: ready, ...(Number.isFinite(coldStart) && coldStart >= 0 ? { cold_start_ms: Math.round(coldStart) } : {}) }];
    }
    // Started outside these scripts while the router thinks it is parked.
    if (status.state === 'cold') return [{ type: 'ready', replicas: ready }];
  }
  // The router thinks it is warm but nothing runs (parked by hand, or Modal's own scale-down).
  if (status.state === 'warm' && replicas === 0 && ready === 0) return [{ type: 'scaled_down', replicas: 0 }];
  return [];
}
