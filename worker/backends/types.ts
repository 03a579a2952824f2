import type { BackendConfig } from '../config/schema';
import type { EndpointKind } from '../openai/schemas';

/** One OpenAI-format request for one backend; `model` is already the backend's served name. */
export interface UpstreamRequest {
  endpoint: EndpointKind;
  body: Record<string, unknown>;
  stream: boolean;
  requestId: string;
}

export interface SendInit {
  /** Aborts when the client leaves or the attempt's time is up. */
  signal: AbortSignal;
  secret?: string;
  /** Worker secrets by name, for adapters whose config names more than one (Modal's proxy auth). */
  env?: Record<string, unknown>;
  /** Epoch ms by which this attempt must be over (its total timeout or the request's deadline). */
  deadline?: number;
  /** Keeps background work (cancelling an abandoned upstream job) alive after the response. */
  waitUntil?: (p: Promise<unknown>) => void;
}

/**
 * Every backend kind sits behind this interface. `send` resolves when the upstream has
 * answered with headers, and the Response it gives speaks OpenAI's wire format (JSON, or SSE
 * chunks ending in `data: [DONE]`) whatever the backend speaks: an adapter translates.
 * Failing to connect rejects; an HTTP error status resolves (the executor classifies it).
 * A translated stream that fails after its first chunk errors its body with an
 * UpstreamStreamError (the relay turns it into an SSE error event).
 */
export interface BackendAdapter {
  send(backend: BackendConfig, request: UpstreamRequest, init: SendInit): Promise<Response>;
}

/** A failure the backend reported in the middle of a stream (an error event after a 200). */
export class UpstreamStreamError extends Error {
  override readonly name = 'UpstreamStreamError';
}

/** Response header an adapter sets when the answer's usage is the router's estimate. */
export const USAGE_HEADER = 'x-router-usage';
