import type { RateLimiter } from '../env';
import { upstashRedis, upstashRedisSettings } from '../cache/upstash-client';
import { upstashHealth } from '../cache/upstash-health';
import type { CompiledConfig } from '../config/compiled';
import { EmbeddedLimiter } from './embedded';
import { FallbackLimiter } from './fallback';
import { LeasedLimiter } from './lease';
import type { LimiterStore } from './store';
import { UpstashLimiter } from './upstash';

const built = new WeakMap<CompiledConfig, Map<string, LimiterStore>>();
const warnedMissingSecret = new Set<string>();

/**
 * The store for this config: the embedded Durable Objects, or Upstash (with them as its
 * fallback) when [upstash].redis_url is set and [limits].store allows it. Built once per config
 * (and token) in the isolate. A missing token secret is logged once and served embedded.
 * Throws when the RATE_LIMITER binding is missing (the caller lets the request through, logged).
 */
export function limiterFor(config: CompiledConfig, env: Record<string, unknown>): LimiterStore {
  const { limits, upstash } = config.raw;
  const { settings, missingSecret } = limits.store === 'embedded' ? { settings: null, missingSecret: undefined } : upstashRedisSettings(upstash, env);
  const ns = env.RATE_LIMITER as DurableObjectNamespace<RateLimiter> | undefined;
  if (!ns) throw new Error('rate limits are configured but the RATE_LIMITER binding is missing');
  const id = settings?.token ?? '';
  let stores = built.get(config);
  if (!stores) built.set(config, (stores = new Map()));
  let store = stores.get(id);
  if (store) return store;

  if (settings && upstash) {
    // Upstash decides per request; the embedded objects, per request too, while it is unreachable.
    const embedded = new EmbeddedLimiter(ns, limits.timeout_ms);
    const primary = new UpstashLimiter(upstashRedis(settings, { autoPipeline: true }), `${upstash.key_prefix}rl`);
    store = new FallbackLimiter(primary, embedded, { url: settings.url, retryAfterMs: upstash.retry_after_ms, health: upstashHealth });
  } else {
    if (missingSecret && !warnedMissingSecret.has(missingSecret)) {
      warnedMissingSecret.add(missingSecret);
      console.warn(JSON.stringify({ msg: `upstash.redis_url is set but the secret ${missingSecret} is not: rate limits use the embedded Durable Objects`, component: 'ratelimit' }));
    }
    // Alone, the embedded objects are reached through leases: a warm request makes no call.
    store = limits.leases ? new LeasedLimiter(ns, limits.timeout_ms) : new EmbeddedLimiter(ns, limits.timeout_ms);
  }
  stores.set(id, store);
  return store;
}
