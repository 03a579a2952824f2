import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'smol-toml';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'config-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configCheck(path?: string) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/config-check.ts', ...(path ? [path] : [])], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

type Doc = { vars: { ROUTER: { backends: Array<Record<string, unknown>> } }; env: Record<string, { vars: { ROUTER: Record<string, unknown> & { backends: Array<Record<string, unknown>> } } }> };

describe('npm run config:check', () => {
  it('passes on the real wrangler.toml, every environment', () => {
    const { code, out } = configCheck();
    expect(out).toMatch(/✓ top-level: \d+ regions, \d+ backends, \d+ models, \d+ tiers, \d+ tenants/);
    expect(out).toMatch(/✓ production: /);
    expect(code).toBe(0);
  });

  it('exits 1 and names each problem with its env and path', () => {
    const doc = parse(readFileSync(join(ROOT, 'wrangler.toml'), 'utf8')) as unknown as Doc;
    const backends = doc.vars.ROUTER.backends;
    const last = backends.length - 1;
    backends[1]!.url = 'not a url';
    backends[2]!.region = 'mars';
    backends[last]!.id = backends[0]!.id;
    const prod = doc.env.production!.vars.ROUTER;
    prod.debug_geo_header = true;
    prod.backends[0]!.url = 'http://10.1.2.3:8000';
    const file = join(dir, 'broken.toml');
    writeFileSync(file, stringify(doc));

    const { code, out } = configCheck(file);
    expect(code).toBe(1);
    expect(out).toContain('✗ top-level: router.backends[1].url: Invalid URL');
    expect(out).toContain('✗ top-level: router.backends[2].region: unknown region "mars"');
    expect(out).toContain(`✗ top-level: router.backends[${last}].id: duplicate backend "${backends[0]!.id}"`);
    // Deployed envs also get hygiene warnings (they do not fail the check on their own).
    expect(out).toMatch(/⚠ production: router\.debug_geo_header = true/);
    expect(out).toMatch(/⚠ production: router\.backends\[0\]\.url: 10\.1\.2\.3 is a loopback\/private address/);
    expect(out).toMatch(/✓ production: /);
  });

  it('reminds of every secret the deployed config names: admin, backend keys, alert keys, Upstash', () => {
    const doc = parse(readFileSync(join(ROOT, 'wrangler.toml'), 'utf8')) as unknown as Doc;
    const prod = doc.env.production!.vars.ROUTER;
    prod.budgets = { ...(prod.budgets as object), alert_webhook_secret: 'OPS_ALERT_KEY' };
    prod.upstash = { redis_url: 'https://eu1-example.upstash.io', redis_token_secret: 'MY_UPSTASH_TOKEN' };
    const file = join(dir, 'secrets.toml');
    writeFileSync(file, stringify(doc));
    const { code, out } = configCheck(file);
    expect(code).toBe(0);
    for (const name of ['ADMIN_TOKEN', 'OPS_ALERT_KEY', 'MY_UPSTASH_TOKEN', String(prod.backends[0]!.auth_secret)]) {
      expect(out).toContain(`npx wrangler secret put ${name} --env production`);
    }
  });

  it('reports a TOML syntax error with its line', () => {
    const file = join(dir, 'syntax.toml');
    writeFileSync(file, 'name = "x"\n[vars.ROUTER\n');
    const { code, out } = configCheck(file);
    expect(code).toBe(1);
    expect(out).toMatch(/TOML parse error: line 2/);
  });
});
