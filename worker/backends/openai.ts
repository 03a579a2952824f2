import type { BackendAdapter } from './types';

// OpenAI (url = "https://api.openai.com") and any hosted OpenAI-compatible API (Together,
// Fireworks, Groq, OpenRouter, …): the request goes through as it is, with a bearer key and, for
// OpenAI, the optional OpenAI-Organization and OpenAI-Project headers. Their answers carry
// x-ratelimit-* headers, which the executor reads (worker/routing/provider-throttle.ts).

const paths = { chat: '/v1/chat/completions', completions: '/v1/completions', embeddings: '/v1/embeddings' } as const;

export const openAIAdapter: BackendAdapter = {
  send(backend, request, { signal, secret }) {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: request.stream ? 'text/event-stream' : 'application/json',
      'x-request-id': request.requestId,
    };
    if (secret) headers[backend.auth_header] = backend.auth_header === 'authorization' ? `Bearer ${secret}` : secret;
    if (backend.openai?.organization) headers['openai-organization'] = backend.openai.organization;
    if (backend.openai?.project) headers['openai-project'] = backend.openai.project;
    return fetch(backend.url.replace(/\/+$/, '') + paths[request.endpoint], { method: 'POST', headers, body: JSON.stringify(request.body), signal });
  },
};
