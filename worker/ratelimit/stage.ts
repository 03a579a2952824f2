import { FEATURE_HEADER } from '../budget/settings';
import type { Stage } from '../pipeline/types';
import { rateLimit } from './request';

/**
 * Rate limits: the request is taken and its tokens reserved in one call to the limiter, before the
 * budget and the caches; nothing (no I/O) when no limit applies. A requests refusal throws 429 here;
 * a tokens refusal waits for the caches (deferred: a hit needs no tokens). The hold is a participant:
 * its x-ratelimit-* headers go on every answer from here on, the reservation is corrected to what
 * was used (settle) or given back (release).
 */
export const rateLimitStage: Stage = {
  name: 'rate-limit',
  async run(r) {
    const hold = await rateLimit({
      config: r.config,
      env: r.env,
      ctx: r.ctx,
      key: r.key,
      user: r.user,
      featureHeader: r.raw.headers.get(FEATURE_HEADER) ?? undefined,
      endpoint: r.kind,
      body: r.body,
      models: r.route.stages.flatMap((s) => s.targets.map((t) => t.model)),
    });
    if (!hold) return;
    r.limits = hold;
    r.join({
      name: 'rate-limit',
      settle: (s) => hold.settle(s),
      release: () => hold.release(),
      finish: ({ response }) => {
        for (const [k, v] of Object.entries(hold.headers)) if (!response.headers.has(k)) response.headers.set(k, v);
      },
    });
  },
};
