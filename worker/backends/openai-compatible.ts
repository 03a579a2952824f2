import type { BackendAdapter } from './types';

// vLLM (`vllm serve`) and TensorRT-LLM (`trtllm-serve`) both serve OpenAI's API, so the
// request goes through as it is: only the URL and the auth header are the backend's own.

const paths = {
  chat: '/v1/chat/completions',
  completions: '/v1/completions',
  embeddings: '/v1/embeddings',
} as const;

export const openAICompatibleAdapter: BackendAdapter = {
  send(backend, request, { signal, secret }) {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: request.stream ? 'text/event-stream' : 'application/json',
      'x-request-id': request.requestId,
    };
    if (secret) headers[backend.auth_header] = backend.auth_header === 'authorization' ? `Bearer ${secret}` : secret;
    return fetch(backend.url.replace(/\/+$/, '') + paths[request.endpoint], {
      method: 'POST',
      headers,
      body: JSON.stringify(request.body),
      signal,
    });
  },
};
