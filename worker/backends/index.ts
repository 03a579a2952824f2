import type { BackendConfig } from '../config/schema';
import type { EndpointKind } from '../openai/schemas';
import { anthropicAdapter } from './anthropic';
import { azureOpenAIAdapter } from './azure-openai';
import { bedrockAdapter } from './bedrock';
import { blocksUnsupported } from './chat-blocks';
import { modalAdapter } from './modal';
import { openAIAdapter } from './openai';
import { openAICompatibleAdapter } from './openai-compatible';
import { replicateAdapter } from './replicate';
import { textUnsupported } from './translate';
import { tritonAdapter } from './triton';
import type { BackendAdapter } from './types';
import { vertexAdapter } from './vertex';

const adapters: Record<BackendConfig['kind'], BackendAdapter> = {
  vllm: openAICompatibleAdapter,
  trtllm: openAICompatibleAdapter,
  openai: openAIAdapter,
  modal: modalAdapter,
  replicate: replicateAdapter,
  triton: tritonAdapter,
  'azure-openai': azureOpenAIAdapter,
  anthropic: anthropicAdapter,
  bedrock: bedrockAdapter,
  vertex: vertexAdapter,
};

/**
 * What of this request a backend's kind cannot serve (null: it can serve all of it), for the
 * planner to send it elsewhere (worker/routing/capabilities.ts) rather than end on that backend's 400.
 */
export function unsupportedBy(backend: BackendConfig, endpoint: EndpointKind, body: Record<string, unknown>): { what: string; param: string } | null {
  switch (backend.kind) {
    case 'replicate': // text in, text out (translate.ts): no tools, n > 1, logprobs, JSON modes or images
    case 'triton':
      return textUnsupported(endpoint, body);
    case 'anthropic':
      return blocksUnsupported(endpoint, body, true);
    case 'bedrock':
      return blocksUnsupported(endpoint, body, false);
    case 'vertex':
      return endpoint === 'chat' ? null : { what: `the ${endpoint} endpoint`, param: 'model' };
    default:
      return null;
  }
}

export function adapterFor(backend: BackendConfig): BackendAdapter {
  return adapters[backend.kind];
}
