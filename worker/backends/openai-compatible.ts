import type { BackendConfig } from '../config/schema';
import type { BackendAdapter, SendInit, UpstreamRequest } from './types';

// vLLM (`vllm serve`) and TensorRT-LLM (`trtllm-serve`) both serve OpenAI's API, so the
// request goes through as it is: only the URL and the auth header are the backend's own.

const paths = {
  chat: '/v1/chat/completions',
  completions: '/v1/completions',
  embeddings: '/v1/embeddings',
} as const;

/** The backend's base URL without trailing slashes, once per backend config object (not a regex per request). */
const baseUrls = new WeakMap<BackendConfig, string>();
function baseUrl(backend: BackendConfig): string {
  let url = baseUrls.get(backend);
  if (url === undefined) baseUrls.set(backend, (url = backend.url.replace(/\/+$/, '')));
  return url;
}

/** One OpenAI-style call: the body as it is, the backend's auth header, and any headers of the provider's own. */
export function sendOpenAIStyle(backend: BackendConfig, request: UpstreamRequest, { signal, secret }: Pick<SendInit, 'signal' | 'secret'>, extra: Record<string, string> = {}): Promise<Response> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    accept: request.stream ? 'text/event-stream' : 'application/json',
    'x-request-id': request.requestId,
    ...extra,
  };
  if (secret) headers[backend.auth_header] = backend.auth_header === 'authorization' ? `Bearer ${secret}` : secret;
  return fetch(baseUrl(backend) + paths[request.endpoint], {
    method: 'POST',
    headers,
    body: JSON.stringify(request.body),
    signal,
  });
}

export const openAICompatibleAdapter: BackendAdapter = {
  send: (backend, request, options) => sendOpenAIStyle(backend, request, options),
};
