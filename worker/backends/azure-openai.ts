import type { BackendAdapter } from './types';

// Azure OpenAI: url = the resource endpoint (https://<resource>.openai.azure.com); each model is
// a deployment, called at /openai/deployments/{deployment}/{chat/completions|completions|embeddings}
// with ?api-version=…, the key in the api-key header (learn.microsoft.com/azure/ai-services/openai/reference).
// Request and answer are OpenAI's format; x-ratelimit-remaining-* and Retry-After are read by the
// executor (worker/routing/provider-throttle.ts).

const paths = { chat: 'chat/completions', completions: 'completions', embeddings: 'embeddings' } as const;
const DEFAULT_API_VERSION = '2024-10-21';

export const azureOpenAIAdapter: BackendAdapter = {
  send(backend, request, { signal, secret }) {
    const served = String(request.body.model);
    const deployment = backend.azure?.deployments[served] ?? served;
    const url = new URL(`${backend.url.replace(/\/+$/, '')}/openai/deployments/${encodeURIComponent(deployment)}/${paths[request.endpoint]}`);
    url.searchParams.set('api-version', backend.azure?.api_version ?? DEFAULT_API_VERSION);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: request.stream ? 'text/event-stream' : 'application/json',
      'x-request-id': request.requestId,
    };
    if (secret) headers['api-key'] = secret;
    return fetch(url, { method: 'POST', headers, body: JSON.stringify(request.body), signal });
  },
};
