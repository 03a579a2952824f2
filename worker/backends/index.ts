import type { BackendConfig } from '../config/schema';
import { modalAdapter } from './modal';
import { openAICompatibleAdapter } from './openai-compatible';
import { replicateAdapter } from './replicate';
import { tritonAdapter } from './triton';
import type { BackendAdapter } from './types';

const adapters: Record<BackendConfig['kind'], BackendAdapter> = {
  vllm: openAICompatibleAdapter,
  trtllm: openAICompatibleAdapter,
  openai: openAICompatibleAdapter,
  modal: modalAdapter,
  replicate: replicateAdapter,
  triton: tritonAdapter,
};

/** Kinds that take text and give text (translate.ts): no tools, n > 1, logprobs, JSON modes or images. */
const TEXT_ONLY = new Set<BackendConfig['kind']>(['replicate', 'triton']);
export const servesTextOnly = (backend: BackendConfig) => TEXT_ONLY.has(backend.kind);

export function adapterFor(backend: BackendConfig): BackendAdapter {
  return adapters[backend.kind];
}
