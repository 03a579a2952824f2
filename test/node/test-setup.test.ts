/** scripts/test-setup.sh (`npm run test:setup`): finds what is missing and says what it would install. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const SCRIPT = join(import.meta.dirname, '../../scripts/test-setup.sh');
const run = (env: Record<string, string>) => spawnSync('bash', [SCRIPT], { encoding: 'utf8', env: { ...process.env, TEST_SETUP_DRY_RUN: '1', ...env } });

describe('test:setup', () => {
  it('names each missing tool with the reason, and installs nothing in a dry run', () => {
    const r = run({ REDIS_SERVER: '/nonexistent/redis-server', CHROMIUM_PATH: '/nonexistent/chromium' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('would install with apt-get: redis-server chromium');
    expect(r.stdout).toContain('redis-server: a real Redis for the Upstash-protocol tests');
    expect(r.stdout).toContain('chromium: the browser the dashboard test drives');
  });

  it('says all is there on a machine that has them (this one: the test run needs them)', () => {
    const r = run({});
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('✓ redis-server, chromium and python3 are installed');
    expect(r.stdout).toContain('ready: npm test');
  });
});
