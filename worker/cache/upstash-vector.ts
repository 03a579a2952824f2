import { Index } from '@upstash/vector/cloudflare';
import type { UpstashConfig } from '../config/schema';

export interface UpstashVectorSettings {
  url: string;
  token: string;
  /** Time allowed per call (an aborted call throws). */
  timeoutMs: number;
}

const clients = new Map<string, Index>();

/**
 * An @upstash/vector client for the semantic cache: one per URL + token + timeout in the isolate
 * (it holds settings, not connections). Like the Redis client (upstash-client.ts): no retries (an
 * unreachable index is the fallback's business, not a reason to make the request wait), a
 * per-call timeout, no telemetry headers.
 */
export function upstashVector(s: UpstashVectorSettings): Index {
  const id = `${s.url}\n${s.token}\n${s.timeoutMs}`;
  let client = clients.get(id);
  if (!client) {
    client = new Index({ url: s.url, token: s.token, retry: false, enableTelemetry: false, signal: () => AbortSignal.timeout(s.timeoutMs) });
    clients.set(id, client);
  }
  return client;
}

/**
 * The Upstash Vector settings from [upstash] and the secret it names; null when no vector_url is
 * configured or the secret is missing (`missingSecret` then says which, for a log line).
 */
export function upstashVectorSettings(
  upstash: UpstashConfig | undefined,
  env: Record<string, unknown>,
): { settings: UpstashVectorSettings; missingSecret?: undefined } | { settings: null; missingSecret?: string } {
  if (!upstash?.vector_url) return { settings: null };
  const token = env[upstash.vector_token_secret];
  if (typeof token !== 'string' || token === '') return { settings: null, missingSecret: upstash.vector_token_secret };
  return { settings: { url: upstash.vector_url, token, timeoutMs: upstash.timeout_ms } };
}
