import { servesTextOnly } from '../backends';
import { textUnsupported } from '../backends/translate';
import type { EndpointKind } from '../openai/schemas';
import type { Candidate } from './plan';

/**
 * Drops from the chain the backends that cannot serve this request (a text-only kind asked for
 * tools, n > 1, logprobs, a JSON mode or images), so that it goes to one that can instead of
 * ending on that backend's 400 (a 400 is never retried elsewhere). When none of the chain can,
 * it is left as it is: the first backend's 400 then tells the client what is unsupported.
 * Free for chains without a text-only backend (one pass, no allocation).
 */
export function servableChain(candidates: Candidate[], endpoint: EndpointKind, body: Record<string, unknown>): Candidate[] {
  if (!candidates.some((c) => servesTextOnly(c.backend))) return candidates;
  if (!textUnsupported(endpoint, body)) return candidates;
  const able = candidates.filter((c) => !servesTextOnly(c.backend));
  return able.length > 0 ? able : candidates;
}
