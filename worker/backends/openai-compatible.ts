import type { BackendConfig } from '../config/schema';
import type { BackendAdapter, SendInit, UpstreamRequest } from './types';

// vLLM (`vllm serve`) and TensorRT-LLM (`trtllm-serve`) both serve OpenAI's API, so the
// request goes through as it is: only the URL and the auth header are the backend's own.

const paths = {
  chat: '/v1/chat/completions',
  completions: '/v1/completions',
  embeddings: '/v1/embeddings',
} as const;

/** One OpenAI-style call: the body as it is, the backend's auth header, and any headers of the provider's own. */
export function sendOpenAIStyle(backend: BackendConfig, request: UpstreamRequest, { signal, secret }: Pick<SendInit, 'signal' | 'secret'>, extra: Record<string, string> = {}): Promise<Response> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: request.stream ? 'text/event-stream' : 'application/json',
    'x-request-id': request.requestId,
    ...extra,
  };
  if (secret) headers[backend.auth_header] = backend.auth_header === 'authorization' ? `Bearer ${secret}` : secret;
  return fetch(backend.url.replace(/\/+$/, '') + paths[request.endpoint], {
    method: 'POST',
    headers,
    body: JSON.stringify(request.body),
    signal,
  });
}

export const openAICompatibleAdapter: BackendAdapter = {
  send: (backend, request, options) => sendOpenAIStyle(backend, request, options),
};
