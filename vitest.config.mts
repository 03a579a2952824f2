import { cloudflareTest } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';

// Two projects: Worker and Durable Object tests run inside workerd; the simulator,
// the scripts and the end-to-end tests (real `openai` client against a real stack) run in Node.
export default defineConfig({
  test: {
    projects: [
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: './wrangler.toml' },
            miniflare: {
              bindings: { ADMIN_TOKEN: 'test-admin-token', TRTLLM_EU_WEST_KEY: 'test-backend-key', BUDGET_ALERT_KEY: 'test-budget-alert-key' },
            },
          }),
        ],
        test: {
          name: 'worker',
          include: ['test/worker/**/*.test.ts'],
          // sim-spawner: simulators per test; redis: a real redis-server behind an Upstash REST bridge;
          // upstash-vector: Upstash Vector contract stand-ins (loopback) for the semantic cache.
          globalSetup: ['test/setup/sim-spawner.ts', 'test/setup/redis.ts', 'test/setup/upstash-vector.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'node',
          environment: 'node',
          include: ['test/node/**/*.test.ts'],
          globalSetup: ['test/setup/redis.ts'],
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
