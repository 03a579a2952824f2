import type { Redis } from '@upstash/redis/cloudflare';
import { checkTtl, expiresAt, type CacheEntry, type CacheStore, type Clock } from '../store';
import { upstashRedis, type UpstashRedisSettings } from '../upstash-client';

export interface UpstashStoreOptions extends UpstashRedisSettings {
  /** Prefix of every key ([upstash].key_prefix), so a database can be shared. */
  keyPrefix?: string;
  now?: Clock;
  /** A client of one's own (tests); by default the isolate's shared one for these settings. */
  redis?: Redis;
}

/**
 * Upstash Redis (production): `SET <prefix><key> <envelope> EX <ttl>`, where the envelope is
 * `<storedAt>:<expiresAt>:<value>`. Redis drops the key on time; the envelope gives `age` and
 * lets an injected clock expire entries in tests. Failures throw (the fallback wrapper decides).
 */
export class UpstashStore implements CacheStore {
  readonly name = 'upstash';
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly now: Clock;

  constructor(opts: UpstashStoreOptions) {
    this.redis = opts.redis ?? upstashRedis(opts);
    this.prefix = opts.keyPrefix ?? '';
    this.now = opts.now ?? Date.now;
  }

  async get(key: string): Promise<CacheEntry | null> {
    const raw = await this.redis.get<string>(this.prefix + key);
    if (typeof raw !== 'string') return null;
    const a = raw.indexOf(':');
    const b = raw.indexOf(':', a + 1);
    const storedAt = Number(raw.slice(0, a));
    const expires = Number(raw.slice(a + 1, b));
    if (a < 0 || b < 0 || !Number.isFinite(storedAt) || !(expires > this.now())) return null;
    return { value: raw.slice(b + 1), storedAt, expiresAt: expires };
  }

  async put(key: string, value: string, ttlSeconds: number): Promise<void> {
    checkTtl(ttlSeconds);
    const now = this.now();
    await this.redis.set(this.prefix + key, `${now}:${expiresAt(now, ttlSeconds)}:${value}`, { ex: ttlSeconds });
  }

  async delete(key: string): Promise<void> {
    await this.redis.del(this.prefix + key);
  }
}
