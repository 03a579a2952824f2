import type { Stage } from '../pipeline/types';
import { refreshBreakers } from './breaker-view';
import { servableChain } from './capabilities';
import { planColdStarts } from './cold-start';
import { clientLocation } from './geo';
import { loadOf } from './load';
import { refreshLoad } from './load-snapshot';
import { nearestRegionId, planCandidates, withColdPassedOver } from './plan';
import { prefixKey } from './prefix-key';
import { refuseIfOverloaded } from '../async/overload';

/**
 * The candidates, in the order they will be tried: region, tier, replica policy, then the backends
 * this request's features need (capabilities.ts), then cold backends behind warm ones unless the
 * deadline allows waiting for the start (cold-start.ts). Isolate views refresh in the background.
 */
export const planStage: Stage = {
  name: 'plan',
  run(r) {
    const { config, kind, body } = r;
    refreshLoad(r.env, r.ctx, config); // background: never awaited here
    const location = clientLocation(r.raw, config.raw);
    const candidates = servableChain(
      planCandidates({
        config,
        route: r.route,
        tenant: config.raw.tenants[r.tenantId]!,
        location,
        prefixKey: kind === 'embeddings' || config.raw.routing.policy !== 'prefix-affinity' ? null : prefixKey(body, config.raw.routing),
        loadOf,
      }),
      kind,
      body,
    );
    refreshBreakers(r.env, r.ctx, config); // background: due reports, and copies older than refresh_ms
    r.cold = planColdStarts({ config, env: r.env, ctx: r.ctx, candidates, deadline: r.deadline, stream: body.stream === true });
    r.candidates = withColdPassedOver(r.cold.candidates, nearestRegionId(config, location));
    // Prefer: respond-async-on-overload: queued before any backend is called when all are at capacity.
    refuseIfOverloaded(r.raw, r.candidates, config.raw.async.overload_waiting_requests);
  },
};
