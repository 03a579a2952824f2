import type { UpstashHealth } from '../cache/upstash-health';
import type { Adjustment, LimiterStore, LimitRequest, LimitResult } from './store';

const COMPONENT = 'ratelimit';

/**
 * Upstash first, the embedded store when it fails: a request is never refused or failed because
 * Upstash is down. After a failure (error, or no answer within [upstash].timeout_ms) Upstash is
 * left alone for retry_after_ms (shared with the caches through upstashHealth: one timeout per
 * outage, not one per request), logged at most once a minute, and counted
 * (router_upstash_errors_total / router_upstash_fallbacks_total, component "ratelimit").
 *
 * During an outage the embedded buckets count from full: a client may get up to one more
 * window's allowance across the switch (each store enforces its limit, neither knows the other's
 * count). Units a partly-answered Upstash call took before failing stay taken there.
 */
export class FallbackLimiter implements LimiterStore {
  readonly name: string;

  constructor(
    private readonly primary: LimiterStore,
    private readonly embedded: LimiterStore,
    private readonly opts: { url: string; retryAfterMs: number; health: UpstashHealth },
  ) {
    this.name = `${primary.name}+${embedded.name}`;
  }

  async limit(req: LimitRequest): Promise<LimitResult> {
    const { url, retryAfterMs, health } = this.opts;
    if (health.available(url)) {
      try {
        const result = await this.primary.limit(req);
        health.succeeded(url);
        return result;
      } catch (err) {
        health.failed(url, COMPONENT, 'limit', err, retryAfterMs);
      }
    }
    health.fellBack(COMPONENT, 'limit');
    return this.embedded.limit(req);
  }

  /** Corrections go to the store that decided; Upstash's are dropped while it is down (the reservation stands: conservative). */
  async adjust(items: Adjustment[], store?: string): Promise<void> {
    if (store !== this.primary.name) return this.embedded.adjust(items);
    const { url, retryAfterMs, health } = this.opts;
    if (!health.available(url)) return;
    try {
      await this.primary.adjust(items);
      health.succeeded(url);
    } catch (err) {
      health.failed(url, COMPONENT, 'adjust', err, retryAfterMs);
    }
  }
}
