import { unsupportedBy } from '../backends';
import type { EndpointKind } from '../openai/schemas';
import type { Candidate } from './plan';

/**
 * Drops from the chain the backends that cannot serve this request (a text-only kind asked for
 * tools, n > 1, logprobs, a JSON mode or images; Anthropic or Bedrock asked for n > 1, logprobs
 * or a JSON mode; Vertex asked for legacy completions), so that it goes to one that can instead
 * of ending on that backend's 400 (a 400 is never retried elsewhere). When none of the chain
 * can, it is left as it is: the first backend's 400 then tells the client what is unsupported.
 * Free for chains of OpenAI-speaking backends (one pass, no allocation).
 */
export function servableChain(candidates: Candidate[], endpoint: EndpointKind, body: Record<string, unknown>): Candidate[] {
  let able: Candidate[] | null = null; // allocated at the first backend that cannot
  for (const [i, c] of candidates.entries()) {
    const cannot = unsupportedBy(c.backend, endpoint, body) !== null;
    if (cannot) able ??= candidates.slice(0, i);
    else able?.push(c);
  }
  return able === null || able.length === 0 ? candidates : able;
}
