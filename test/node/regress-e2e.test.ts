import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../scripts/dev/stack';
import { main as regress } from '../../scripts/regress';
import { withAdmin } from '../support/admin';

// The regression gate against the real stack (simulators + the Worker in workerd): the golden set
// test/golden/support-bot.jsonl holds what support-bot@v1 (wrangler.toml) answers. A version
// added at run time with v1's model and prompt passes; one whose system prompt differs (so the
// simulator answers differently) fails; and a rollout of the failing one is refused.

const GOLDEN = 'test/golden/support-bot.jsonl';
const V1_PROMPT = { version: '1.0.0', system: 'You are a concise customer support assistant.', temperature: 0.2, max_tokens: 256 };
let stack: Stack;

const admin = (path: string, init: RequestInit = {}) => fetch(`${stack.routerUrl}${path}`, withAdmin(init, stack.adminToken));

async function gate(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await regress(
    ['--router', stack.routerUrl, '--admin-token', stack.adminToken, '--key', stack.keys.demo, '--deployment', 'support-bot', '--golden', GOLDEN, ...args],
    (s) => out.push(s),
    (s) => err.push(s),
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

interface Detail {
  serving: string;
  versions: Array<{ name: string; source: string; gate: { passed: boolean; actor: string; golden: string | null; summary: Record<string, number>; stable: Record<string, number> | null } | null }>;
  history: Array<{ action: string; version: string | null }>;
}
const detail = async () => (await (await admin('/admin/deployments/support-bot')).json()) as Detail;

beforeAll(async () => {
  stack = await startStack({ port: 0, ephemeralBackends: true, persist: false, simProfile: 'instant' });
  for (const [name, system] of [
    ['v1-copy', V1_PROMPT.system],
    ['v3-pirate', 'You are a support assistant who talks like a pirate.'],
  ] as const) {
    const res = await admin('/admin/deployments/support-bot/versions', { method: 'POST', body: JSON.stringify({ name, model: 'llama-3.1-8b', prompt: { ...V1_PROMPT, version: '1.0.1', system }, reason: 'regression gate test' }) });
    expect(res.status, await res.clone().text()).toBe(201);
  }
}, 60_000);
afterAll(() => stack?.close());

describe('npm run regress against the local stack', () => {
  it('a version that answers like stable passes, and the gate is recorded', async () => {
    const { code, out, err } = await gate(['--version', 'v1-copy']);
    expect(code, `${out}\n${err}`).toBe(0);
    expect(err).toContain('ran 120 cases against support-bot@v1-copy');
    expect(err).toContain('ran 120 cases against support-bot@v1 '); // the stable comparison
    expect(out).toContain('No failing case for v1-copy.');
    expect(out).toMatch(/mean_similarity\s+120\s+1\.000\s+1\.000\s+\+0\.0%/);
    expect(out).toContain('PASS: v1-copy passes the gate.');
    expect(out).toContain('recorded: gate for support-bot@v1-copy passed=true');

    const v = (await detail()).versions.find((x) => x.name === 'v1-copy')!;
    expect(v.source).toBe('runtime');
    expect(v.gate).toMatchObject({ passed: true, actor: 'regress', summary: { cases: 120, mean_similarity: 1, exact_match: 1, failures: 0 }, stable: { cases: 120, mean_similarity: 1 } });
    expect(v.gate!.golden).toMatch(/^test\/golden\/support-bot\.jsonl sha256:[0-9a-f]{16}$/);
  }, 120_000);

  it('a version whose system prompt differs fails (exit 1), with its failures listed, and the failed gate is recorded', async () => {
    const { code, out, err } = await gate(['--version', 'v3-pirate', '--actor', 'ci']);
    expect(code, `${out}\n${err}`).toBe(1);
    expect(out).toMatch(/^Failing cases for v3-pirate \((\d+) of 120\):/);
    expect(out).toMatch(/sb-001\s+exact\s+0\.000\s+1\.000/);
    expect(out).toContain('FAIL: v3-pirate fails the gate:');
    expect(out).toMatch(/- mean similarity 0\.\d+ < 0\.900/);
    expect(out).toMatch(/- exact_match 0\.000 is 100\.0% worse than stable's 1\.000/);
    const v = (await detail()).versions.find((x) => x.name === 'v3-pirate')!;
    expect(v.gate).toMatchObject({ passed: false, actor: 'ci', summary: { cases: 120, exact_match: 0 } });
    // Embedding similarity came from the router's /v1/embeddings: related texts (same vocabulary), not equal ones.
    expect(v.gate!.summary.embedding).toBeGreaterThan(0.3);
    expect(v.gate!.summary.embedding).toBeLessThan(1);
    expect(v.gate!.summary.rouge_l).toBeLessThan(0.6);
  }, 120_000);

  it('a rollout of the failing version is refused without force (409 gate_required), and force needs a reason', async () => {
    const start = (body: Record<string, unknown>) => admin('/admin/deployments/support-bot/rollouts', { method: 'POST', body: JSON.stringify(body) });
    const refused = await start({ version: 'v3-pirate', mode: 'canary' });
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('gate_required');
    expect((await start({ version: 'v3-pirate', mode: 'canary', force: true })).status).toBe(400);
  });

  it('--no-record leaves the recorded gate alone; the stable version gates against itself with no comparison', async () => {
    const { code, out, err } = await gate(['--version', 'v1', '--no-record']);
    expect(code, `${out}\n${err}`).toBe(0);
    expect(err).toContain('v1 is the stable version: no comparison');
    expect(out).not.toContain('recorded:');
    expect((await detail()).versions.find((x) => x.name === 'v1')!.gate).toBeNull();
  }, 60_000);

  it('a case stable misses too is listed for both, and is no regression', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'golden-'));
    const file = join(dir, 'ten.jsonl');
    const lines = readFileSync(GOLDEN, 'utf8').split('\n').slice(0, 10).map((l) => JSON.parse(l) as { id: string; metric?: string; expected: string });
    expect(lines[0]).toMatchObject({ id: 'sb-001', metric: 'exact' });
    lines[0]!.expected = 'An answer no version gives.';
    writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n'));
    const { code, out, err } = await gate(['--version', 'v1-copy', '--golden', file, '--min-cases', '10', '--no-record']);
    expect(code, `${out}\n${err}`).toBe(0); // 9 of 10 exact: mean 0.9, the floor itself
    expect(out).toMatch(/^Failing cases for v1-copy \(1 of 10\):/);
    expect(out).toContain('Failing cases for v1 (stable) (1 of 10):');
    expect(out).toMatch(/sb-001\s+exact\s+0\.000\s+1\.000\s+-"An answer no version gives\."/);
    expect(out).toMatch(/mean_similarity\s+10\s+0\.900\s+0\.900\s+\+0\.0%/);
  }, 60_000);

  it('usage errors and a run that cannot start exit 2 with a clear message', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'golden-'));
    const small = join(dir, 'small.jsonl');
    writeFileSync(small, readFileSync(GOLDEN, 'utf8').split('\n').slice(0, 5).join('\n'));
    const tooFew = await gate(['--version', 'v1-copy', '--golden', small]);
    expect(tooFew.code).toBe(2);
    expect(tooFew.err).toContain('5 cases; a golden set holds 100 to 1000');

    // --min-cases lets a tiny set run (and v1-copy still passes on it).
    expect((await gate(['--version', 'v1-copy', '--golden', small, '--min-cases', '5', '--no-record'])).code).toBe(0);

    const unknown = await gate(['--version', 'v9']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('deployment support-bot has no version "v9" (it has: v1, v2, v1-copy, v3-pirate)');

    const badToken = await regress(['--router', stack.routerUrl, '--admin-token', 'nope', '--key', stack.keys.demo, '--deployment', 'support-bot', '--version', 'v1', '--golden', GOLDEN], () => {}, () => {});
    expect(badToken).toBe(2);
    expect((await gate(['--version', 'v1', '--max-regression', '2'])).code).toBe(2);
    expect((await gate(['--version', 'v1', '--record', '--no-record'])).code).toBe(2);
  }, 60_000);
});
