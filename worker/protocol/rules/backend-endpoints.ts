// Where a backend is reached besides its adapter: its API key (a Worker secret) and its
// load-metrics URL. Used by the executor and by the BackendMetrics object, which must not pull
// the adapter registry (worker/backends/index.ts) into its graph.

import type { BackendConfig } from '../../config/schema';

/** The backend's API key, from the Worker secret its config names. */
export function backendSecret(backend: BackendConfig, env: Record<string, unknown>): string | undefined {
  if (!backend.auth_secret) return undefined;
  const value = env[backend.auth_secret];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/**
 * The secret to send with the backend's metrics scrape: its API key only where the config says
 * the metrics live with the API (same scheme, host and port as `url`), or `metrics_auth = "always"`.
 * A metrics_url on another host never receives the key by default.
 */
export function metricsSecret(backend: BackendConfig, env: Record<string, unknown>): string | undefined {
  if (backend.metrics_auth === 'never') return undefined;
  const target = metricsUrlOf(backend);
  if (target === null) return undefined;
  if (backend.metrics_auth !== 'always' && new URL(target).origin !== new URL(backend.url).origin) return undefined;
  return backendSecret(backend, env);
}

/**
 * Where the backend's load metrics are scraped, or null when it is not scraped: `metrics_url`
 * if set, else `<url>/metrics` for the kinds that serve it there (vllm, trtllm). Modal
 * and Replicate have none by default (a scrape of a Modal endpoint would keep a GPU container
 * awake and see one container of many); Triton serves Prometheus on another port; managed
 * providers (openai, azure-openai, anthropic, bedrock, vertex) serve none.
 */
export function metricsUrlOf(backend: BackendConfig): string | null {
  if (backend.metrics_url) return backend.metrics_url;
  return backend.kind === 'vllm' || backend.kind === 'trtllm' ? backend.url.replace(/\/+$/, '') + '/metrics' : null;
}
