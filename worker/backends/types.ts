import type { BackendConfig } from '../config/schema';
import type { EndpointKind } from '../openai/schemas';

/** One OpenAI-format request for one backend; `model` is already the backend's served name. */
export interface UpstreamRequest {
  endpoint: EndpointKind;
  body: Record<string, unknown>;
  stream: boolean;
  requestId: string;
}

/**
 * Every backend kind sits behind this interface. `send` resolves when the upstream has
 * answered with headers, and the Response it gives speaks OpenAI's wire format (JSON, or SSE
 * chunks ending in `data: [DONE]`) whatever the backend speaks: an adapter translates.
 * Failing to connect rejects; an HTTP error status resolves (the executor classifies it).
 */
export interface BackendAdapter {
  send(backend: BackendConfig, request: UpstreamRequest, init: { signal: AbortSignal; secret?: string }): Promise<Response>;
}
