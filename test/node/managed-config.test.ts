import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, stringify } from 'smol-toml';
import { afterAll, describe, expect, it } from 'vitest';
import { compileConfig } from '../../worker/config/compiled';
import { configSecrets } from '../../worker/config/secrets';

// Managed-provider backends in the config: their tables, what each kind requires, the secrets
// they name (for config:check and the local stack), and the README's example config.

const ROOT = resolve(import.meta.dirname, '../..');
const base = (backends: Record<string, unknown>[], extra: Record<string, unknown> = {}) => ({
  regions: [{ id: 'us', latitude: 0, longitude: 0 }],
  models: [{ id: 'm' }, { id: 'e', type: 'embedding' }],
  backends: [{ id: 'own', kind: 'vllm', region: 'us', url: 'http://127.0.0.1:1', models: ['m', 'e'] }, ...backends.map((b, i) => ({ id: `b${i}`, region: 'us', models: ['m'], ...b }))],
  ...extra,
});
const errorsOf = (cfg: unknown) => {
  const r = compileConfig(cfg);
  return r.ok ? [] : r.errors;
};

describe('managed backends in the config schema', () => {
  it('accepts each kind with its table', () => {
    const r = compileConfig(
      base([
        { kind: 'openai', url: 'https://api.openai.com', auth_secret: 'OPENAI_API_KEY', openai: { organization: 'org-1', project: 'proj_1' }, models: ['m', 'e'] },
        { kind: 'azure-openai', url: 'https://acme.openai.azure.com', auth_secret: 'AZURE_OPENAI_KEY', azure: { api_version: '2025-04-01-preview', deployments: { m: 'm-prod' } } },
        { kind: 'anthropic', url: 'https://api.anthropic.com', auth_secret: 'ANTHROPIC_API_KEY', anthropic: { beta: ['prompt-caching-2024-07-31'] } },
        { kind: 'bedrock', url: 'https://bedrock-runtime.us-east-1.amazonaws.com', bedrock: { region: 'us-east-1', session_token_secret: 'AWS_SESSION_TOKEN' } },
        { kind: 'vertex', url: 'https://us-central1-aiplatform.googleapis.com', vertex: { project: 'acme-prod', location: 'us-central1' } },
      ]),
    );
    expect(r.ok ? [] : r.errors).toEqual([]);
    if (!r.ok) return;
    expect(r.config.backends.get('b1')!.azure).toEqual({ api_version: '2025-04-01-preview', deployments: { m: 'm-prod' } });
    expect(r.config.backends.get('b2')!.anthropic).toEqual({ version: '2023-06-01', beta: ['prompt-caching-2024-07-31'], default_max_tokens: 4096 });
    expect(r.config.backends.get('b3')!.bedrock).toMatchObject({ access_key_secret: 'AWS_ACCESS_KEY_ID', secret_key_secret: 'AWS_SECRET_ACCESS_KEY' });
    expect(r.config.backends.get('b4')!.vertex!.credentials_secret).toBe('GOOGLE_SERVICE_ACCOUNT_KEY');
  });

  it('refuses a table on another kind, a missing bedrock/vertex table or key, embeddings on a chat-only provider', () => {
    expect(errorsOf(base([{ kind: 'vllm', url: 'http://x.test', anthropic: {} }]))).toEqual([expect.stringContaining('[anthropic] settings on a backend of kind "vllm"')]);
    expect(errorsOf(base([{ kind: 'openai', url: 'http://x.test', azure: {} }]))).toEqual([expect.stringContaining('[azure] settings on a backend of kind "openai"')]);
    expect(errorsOf(base([{ kind: 'bedrock', url: 'https://x.test' }]))).toEqual([expect.stringContaining('needs a bedrock table')]);
    expect(errorsOf(base([{ kind: 'vertex', url: 'https://x.test' }]))).toEqual([expect.stringContaining('needs a vertex table')]);
    expect(errorsOf(base([{ kind: 'anthropic', url: 'https://x.test' }]))).toEqual([expect.stringContaining('needs auth_secret')]);
    expect(errorsOf(base([{ kind: 'anthropic', url: 'https://x.test', auth_secret: 'K', models: ['e'] }]))).toEqual([expect.stringContaining('serves chat models only')]);
    expect(errorsOf(base([{ kind: 'bedrock', url: 'https://x.test', bedrock: { region: 'mars' } }]))).toEqual([expect.stringContaining('AWS region')]);
  });

  it('names every provider credential, none of them fillable by a local stack', () => {
    const r = compileConfig(
      base([
        { kind: 'anthropic', url: 'https://api.anthropic.com', auth_secret: 'ANTHROPIC_API_KEY' },
        { kind: 'bedrock', url: 'https://b.test', bedrock: { region: 'eu-west-1' } },
        { kind: 'vertex', url: 'https://v.test', vertex: { project: 'acme-prod', location: 'europe-west4', credentials_secret: 'GCP_SA' } },
      ]),
    );
    if (!r.ok) throw new Error(r.errors.join('\n'));
    const secrets = configSecrets(r.config.raw).filter((s) => s.name !== 'ADMIN_TOKEN');
    expect(secrets.map((s) => [s.name, s.local])).toEqual([
      ['ANTHROPIC_API_KEY', false],
      ['AWS_ACCESS_KEY_ID', false],
      ['AWS_SECRET_ACCESS_KEY', false],
      ['GCP_SA', false],
    ]);
  });
});

describe('the README\'s "self-hosted first, managed fallback" config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'managed-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is a valid [vars.ROUTER], and config:check reminds of every provider secret', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const block = /<!-- managed-fallback-example -->\s*```toml\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    const router = (parse(block!) as { vars: { ROUTER: unknown } }).vars.ROUTER;
    expect(errorsOf(router)).toEqual([]);

    // As a production environment of the real wrangler.toml (its own [vars.ROUTER]).
    const doc = parse(readFileSync(join(ROOT, 'wrangler.toml'), 'utf8')) as Record<string, any>;
    doc.env.production.vars.ROUTER = router;
    const file = join(dir, 'wrangler.toml');
    writeFileSync(file, stringify(doc));
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/config-check.ts', file], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
    const out = `${r.stdout}${r.stderr}`;
    expect(out).toMatch(/✓ production: /);
    for (const secret of ['OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'GOOGLE_SERVICE_ACCOUNT_KEY', 'AZURE_OPENAI_KEY']) {
      expect(out).toContain(`npx wrangler secret put ${secret} --env production`);
    }
  });
});
