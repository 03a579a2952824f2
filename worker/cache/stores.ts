import type { CompiledConfig } from '../config/compiled';
import { CacheApiStore } from './adapters/cache-api';
import { FallbackStore } from './adapters/fallback';
import { MemoryStore } from './adapters/memory';
import { TieredStore } from './adapters/tiered';
import { UpstashStore } from './adapters/upstash';
import type { CacheStore } from './store';
import { upstashRedisSettings } from './upstash-client';
import { upstashHealth } from './upstash-health';

const built = new WeakMap<CompiledConfig, Map<string, CacheStore>>();
const warnedMissingSecret = new Set<string>();

/**
 * The store behind the response caches for this config: the Cache API, or Upstash Redis with
 * the Cache API as its fallback when [upstash].redis_url is set and [cache].store allows it;
 * with the isolate's memory in front ([cache].memory_bytes).
 * Built once per config (and token) in the isolate. A missing token secret is logged once and
 * served by the Cache API: caching never fails a request.
 */
export function responseCacheStore(config: CompiledConfig, env: Record<string, unknown>, component = 'response-cache'): CacheStore {
  const { cache, upstash } = config.raw;
  const { settings, missingSecret } = cache.store === 'cache-api' ? { settings: null, missingSecret: undefined } : upstashRedisSettings(upstash, env);
  const id = `${component}\n${settings?.token ?? ''}`;
  let stores = built.get(config);
  if (!stores) built.set(config, (stores = new Map()));
  let store = stores.get(id);
  if (store) return store;

  const embedded = new CacheApiStore({ cacheName: cache.cache_api_name });
  if (settings && upstash) {
    const primary = new UpstashStore({ ...settings, keyPrefix: upstash.key_prefix });
    store = new FallbackStore(primary, embedded, { url: settings.url, component, retryAfterMs: upstash.retry_after_ms, health: upstashHealth });
  } else {
    if (missingSecret && !warnedMissingSecret.has(missingSecret)) {
      warnedMissingSecret.add(missingSecret);
      console.warn(JSON.stringify({ msg: `upstash.redis_url is set but the secret ${missingSecret} is not: response caches use the Cache API`, component }));
    }
    store = embedded;
  }
  if (cache.memory_bytes > 0) store = new TieredStore(new MemoryStore({ maxBytes: cache.memory_bytes }), store);
  stores.set(id, store);
  return store;
}
