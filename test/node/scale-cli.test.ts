/**
 * `npm run scale` end to end: the CLI (scripts/scale.ts) spawned with tsx against a fake router,
 * a fake Kubernetes API server (through a kubeconfig file, as kubectl would) and a fake Replicate
 * API, all on loopback. Checks the table, exit codes, flags and env vars, and watch's clean stop.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeKubernetes, type FakeKubernetes } from '../setup/scale/kubernetes-api';
import { startFakeReplicate, type FakeReplicate } from '../setup/scale/replicate-deployments';
import { startFakeRouter, type FakeRouter } from '../setup/scale/router';
import { initialStatuses, kubeconfigYaml, scaleToml, seedKubernetes } from '../setup/scale/fixture';

const ROOT = resolve(import.meta.dirname, '../..');
const TOKEN = 'cli-admin-token';
const dir = mkdtempSync(join(tmpdir(), 'scale-cli-'));
const children: ChildProcess[] = [];

let router: FakeRouter;
let k8s: FakeKubernetes;
let replicate: FakeReplicate;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  [router, k8s, replicate] = await Promise.all([startFakeRouter(TOKEN, []), startFakeKubernetes(), startFakeReplicate()]);
  writeFileSync(join(dir, 'kubeconfig'), kubeconfigYaml(k8s.url, k8s.token));
  writeFileSync(join(dir, 'all.toml'), scaleToml());
  writeFileSync(join(dir, 'healthy.toml'), scaleToml(['k8s-idle', 'k8s-busy', 'k8s-wake', 'replicate-8b', 'sim-8b']));
  env = {
    PATH: process.env.PATH,
    HOME: dir, // no ~/.modal.toml, no ~/.kube/config but ours
    KUBECONFIG: join(dir, 'kubeconfig'),
    REPLICATE_API_TOKEN: replicate.token,
    REPLICATE_BASE_URL: `${replicate.url}/v1`,
    // Modal without credentials fails before any connection; this keeps it on loopback regardless.
    MODAL_SERVER_URL: 'http://127.0.0.1:9',
  };
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await Promise.all([router.close(), k8s.close(), replicate.close()]);
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  const now = new Date();
  router.now = now;
  router.backends = new Map(initialStatuses(now).map((b) => [b.id, b]));
  router.events = [];
  seedKubernetes(k8s);
  replicate.deployments.clear();
  replicate.deployments.set('acme/llama-8b', { min_instances: 1, max_instances: 2, release: 1 });
  replicate.calls = [];
});

function scale(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/scale.ts', ...args], { cwd: ROOT, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c) => (stdout += c));
    child.stderr!.on('data', (c) => (stderr += c));
    child.on('exit', (code) => done({ code, stdout, stderr }));
  });
}

const flags = (config: string) => ['--router', router.url, '--admin-token', TOKEN, '--config', join(dir, config)];

describe('npm run scale', () => {
  it('plan prints one row per backend id and changes nothing (router from the environment)', async () => {
    const r = await scale(['plan', '--config', join(dir, 'healthy.toml')], { ROUTER_URL: router.url, ROUTER_ADMIN_TOKEN: TOKEN });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^BACKEND\s+DRIVER\s+STATE\s+IN-FLIGHT\s+LAST REQUEST\s+REPLICAS\s+ACTION\s+REASON$/);
    const rows = lines.slice(2).map((l) => l.split(/\s{2,}/));
    expect(rows.map((c) => [c[0], c[6]])).toEqual([
      ['k8s-idle', 'scale_to_zero'],
      ['k8s-busy', 'keep'],
      ['k8s-wake', 'scale_up'],
      ['replicate-8b', 'scale_to_zero'],
      ['sim-8b', 'skip'],
      // Reported by the router but not configured: shown, never acted on.
      ['k8s-missing', 'skip'],
      ['modal-8b', 'skip'],
      ['not-configured', 'skip'],
    ]);
    expect(r.stdout).toMatch(/k8s-busy\s+kubernetes\s+warm\s+2\s+30m ago\s+1\s+keep\s+2 requests in flight/);
    expect(k8s.patches()).toHaveLength(0);
    expect(replicate.calls.filter((c) => c.method === 'PATCH')).toHaveLength(0);
    expect(router.events).toHaveLength(0);
  }, 60_000);

  it('apply: a failing driver exits 1 naming the backend, the others still act; a second apply changes nothing', async () => {
    const first = await scale(['apply', ...flags('all.toml')]);
    expect(first.code).toBe(1);
    expect(first.stderr).toMatch(/✗ k8s-missing: kubernetes: get deployment inference\/missing: HTTP 404: deployments.apps "missing" not found/);
    expect(first.stderr).toMatch(/✗ modal-8b: modal: look up function inference\/serve: .*credentials/);
    expect(first.stdout).toMatch(/k8s-idle\s+kubernetes\s+warm\s+0\s+30m ago\s+1 → 0\s+scale_to_zero\s+idle 30m \(≥ 15m\) \| PATCH deployment inference\/idle\/scale replicas=0 \| reported scaled_down/);
    expect(k8s.deployments.get('inference/idle')!.replicas).toBe(0);
    expect(k8s.deployments.get('inference/wake')!.replicas).toBe(2);
    expect(replicate.deployments.get('acme/llama-8b')!.min_instances).toBe(0);
    expect(router.events.map((e) => `${e.id}:${e.event.type}`).sort()).toEqual(['k8s-idle:scaled_down', 'k8s-wake:waking', 'replicate-8b:scaled_down']);

    const patches = k8s.patches().length;
    const healthy = await scale(['apply', ...flags('healthy.toml')]);
    expect(healthy.code).toBe(0);
    const again = await scale(['apply', ...flags('healthy.toml')]);
    expect(again.code).toBe(0);
    expect(k8s.patches()).toHaveLength(patches);
    expect(replicate.calls.filter((c) => c.method === 'PATCH')).toHaveLength(1);
    expect(again.stdout).not.toMatch(/PATCH|reported/);
  }, 60_000);

  it('exits 2 with a clear message on bad flags, config or router', async () => {
    const badZone = scaleToml(['k8s-idle'], (b) => (b.scaling!.keep_warm = [{ from: '09:00', to: '18:00', time_zone: 'Mars/Olympus' }]));
    writeFileSync(join(dir, 'bad-tz.toml'), badZone);
    const [noRouter, badCommand, badInterval, badConfig, noEnv, wrongToken] = await Promise.all([
      scale(['plan', '--config', join(dir, 'healthy.toml')]),
      scale(['scale-everything', ...flags('healthy.toml')]),
      scale(['watch', ...flags('healthy.toml'), '--interval', '0']),
      scale(['plan', ...flags('bad-tz.toml')]),
      scale(['plan', ...flags('healthy.toml'), '--env', 'staging']),
      scale(['plan', '--router', router.url, '--admin-token', 'nope', '--config', join(dir, 'healthy.toml')]),
    ]);
    expect(noRouter.stderr).toMatch(/router URL \(--router or ROUTER_URL\)/);
    expect(noRouter.stderr).toMatch(/usage: npm run scale/);
    expect(badCommand.stderr).toMatch(/the command must be plan, apply or watch/);
    expect(badInterval.stderr).toMatch(/--interval must be above 0/);
    expect(badConfig.stderr).toMatch(/router\.backends\[0\]\.scaling\.keep_warm\[0\]\.time_zone: unknown time zone "Mars\/Olympus"/);
    expect(noEnv.stderr).toMatch(/no \[env\.staging\]/);
    expect(wrongToken.stderr).toMatch(/HTTP 401 \(admin token rejected/);
    expect([noRouter, badCommand, badInterval, badConfig, noEnv, wrongToken].map((r) => r.code)).toEqual([2, 2, 2, 2, 2, 2]);
    expect(k8s.patches()).toHaveLength(0);
  }, 60_000);

  it('watch acts, then stops cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/scale.ts', 'watch', ...flags('healthy.toml'), '--interval', '3600'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let stdout = '';
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    await new Promise<void>((ready, fail) => {
      child.stdout!.on('data', (c) => {
        stdout += c;
        if (/round 1\n[^]*sim-8b/.test(stdout)) ready();
      });
      child.on('exit', () => fail(new Error(`watch exited early: ${stdout}`)));
    });
    // The first round served the wake-up and parked the idle backend.
    expect(k8s.deployments.get('inference/wake')!.replicas).toBe(2);
    expect(k8s.deployments.get('inference/idle')!.replicas).toBe(0);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stdout).toMatch(/stopped after \d+ rounds?/);
  }, 60_000);
});
