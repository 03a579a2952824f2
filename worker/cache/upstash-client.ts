import { Redis } from '@upstash/redis/cloudflare';
import type { UpstashConfig } from '../config/schema';

export interface UpstashRedisSettings {
  url: string;
  token: string;
  /** Time allowed per call (an aborted call throws). */
  timeoutMs: number;
}

const clients = new Map<string, Redis>();

/**
 * An @upstash/redis client for the router's own use (response caches, rate limits): one per
 * URL + token + timeout in the isolate (it holds no connection, only settings). No retries (a
 * failing Upstash is the fallback wrapper's business, not a reason to make the request wait),
 * a per-call timeout, no telemetry headers, values returned as stored (no JSON parsing).
 */
export function upstashRedis(s: UpstashRedisSettings, opts: { autoPipeline?: boolean } = {}): Redis {
  const id = `${s.url}\n${s.token}\n${s.timeoutMs}\n${opts.autoPipeline === true}`;
  let client = clients.get(id);
  if (!client) {
    client = new Redis({
      url: s.url,
      token: s.token,
      retry: false,
      enableTelemetry: false,
      automaticDeserialization: false,
      readYourWrites: false,
      keepAlive: true,
      signal: () => AbortSignal.timeout(s.timeoutMs),
      // Commands issued together go in one /pipeline request (rate limits ask several buckets at once).
      enableAutoPipelining: opts.autoPipeline === true,
    });
    clients.set(id, client);
  }
  return client;
}

/**
 * The Upstash Redis settings from [upstash] and the secret it names; null when no redis_url is
 * configured or the secret is missing (`missingSecret` then says which, for a log line).
 */
export function upstashRedisSettings(
  upstash: UpstashConfig | undefined,
  env: Record<string, unknown>,
): { settings: UpstashRedisSettings; missingSecret?: undefined } | { settings: null; missingSecret?: string } {
  if (!upstash?.redis_url) return { settings: null };
  const token = env[upstash.redis_token_secret];
  if (typeof token !== 'string' || token === '') return { settings: null, missingSecret: upstash.redis_token_secret };
  return { settings: { url: upstash.redis_url, token, timeoutMs: upstash.timeout_ms } };
}
