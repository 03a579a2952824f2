import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'smol-toml';
import { afterAll, describe, expect, it } from 'vitest';

// Issue 12 items 1 and 4: config:check warns about tenants whose tiers reach no model they may use,
// and about tenants whose residency turns the semantic cache off.

const ROOT = resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'config-check-sec-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('npm run config:check: security warnings', () => {
  it('names the tenant, the unreachable tiers and the skipped semantic cache; warnings do not fail the check', () => {
    const doc = parse(readFileSync(join(ROOT, 'wrangler.toml'), 'utf8')) as any;
    const router = doc.vars.ROUTER;
    router.tenants.only8b = { models: ['llama-3.1-8b'] };
    router.tenants.eu = { models: ['*'], allowed_regions: ['eu-west'] };
    router.cache.semantic = { embedding_model: 'bge-small-en' }; // served only by vllm-us-east-8b
    const file = join(dir, 'tenants.toml');
    writeFileSync(file, stringify(doc));
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/config-check.ts', file], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
    const out = `${r.stdout}${r.stderr}`;
    expect(out).toContain('⚠ top-level: router.tenants.only8b: tiers balanced, advanced reach no model in its models list');
    expect(out).toMatch(/⚠ top-level: router\.tenants\.eu: the semantic cache is skipped for this tenant: the embedding model "bge-small-en" is served only in us-east/);
    expect(out).not.toMatch(/tenants\.demo:/);
    expect(r.status).toBe(0);
  });
});
