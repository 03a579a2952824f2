import type { BackendConfig } from '../config/schema';
import { openAICompatibleAdapter } from './openai-compatible';
import type { BackendAdapter } from './types';

const adapters: Record<BackendConfig['kind'], BackendAdapter> = {
  vllm: openAICompatibleAdapter,
  trtllm: openAICompatibleAdapter,
  openai: openAICompatibleAdapter,
};

export function adapterFor(backend: BackendConfig): BackendAdapter {
  return adapters[backend.kind];
}

/** The backend's API key, from the Worker secret its config names. */
export function backendSecret(backend: BackendConfig, env: Record<string, unknown>): string | undefined {
  if (!backend.auth_secret) return undefined;
  const value = env[backend.auth_secret];
  return typeof value === 'string' && value !== '' ? value : undefined;
}
