/**
 * A local stand-in for Upstash Redis in benchmarks: a real `redis-server` on a loopback port
 * behind the Upstash REST bridge the tests use (test/setup/upstash-bridge.ts), so
 * @upstash/redis and @upstash/ratelimit run their real commands and Lua. Loopback only: the
 * numbers are the router's cost of the Upstash path, not Upstash's network latency.
 */
import { randomBytes } from 'node:crypto';
import { startRedis } from '../../../test/setup/redis';
import { startUpstashBridge } from '../../../test/setup/upstash-bridge';

export interface LocalUpstash {
  url: string;
  token: string;
  close(): Promise<void>;
}

export async function startLocalUpstash(): Promise<LocalUpstash> {
  const redis = await startRedis();
  const bridge = await startUpstashBridge({ redisPort: redis.port, token: randomBytes(18).toString('base64url') });
  return {
    url: bridge.url,
    token: bridge.token,
    async close() {
      await bridge.close().catch(() => {});
      await redis.stop();
    },
  };
}
