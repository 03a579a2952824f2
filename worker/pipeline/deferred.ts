import type { Stage } from './types';

/**
 * Every cache lookup missed: refusals kept for this point are due now, in order: a budget soft-limit
 * block first, then a rate limit's tokens refusal (which gives back the request it took). A cache
 * hit above needed neither, so a blocked tenant still gets its cached answers.
 */
export const enforceDeferredStage: Stage = {
  name: 'deferred-refusals',
  run(r) {
    const first = r.deferred[0];
    if (first) throw first;
    r.limits?.requireTokens();
  },
};
