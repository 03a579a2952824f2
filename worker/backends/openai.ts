import { sendOpenAIStyle } from './openai-compatible';
import type { BackendAdapter } from './types';

// OpenAI (url = "https://api.openai.com") and any hosted OpenAI-compatible API (Together,
// Fireworks, Groq, OpenRouter, …): the request goes through as it is, with a bearer key and, for
// OpenAI, the optional OpenAI-Organization and OpenAI-Project headers. Their answers carry
// x-ratelimit-* headers, which the executor reads (worker/routing/provider-throttle.ts).

export const openAIAdapter: BackendAdapter = {
  send(backend, request, options) {
    const extra: Record<string, string> = {};
    if (backend.openai?.organization) extra['openai-organization'] = backend.openai.organization;
    if (backend.openai?.project) extra['openai-project'] = backend.openai.project;
    return sendOpenAIStyle(backend, request, options, extra);
  },
};
