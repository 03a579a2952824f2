/**
 * `npm run scale -- plan|apply` against the real Worker (startStack: workerd, real Durable
 * Objects, the admin API, /admin/backends and its events as deployed) with the simulators behind
 * it. Only the cluster is a stand-in (test/setup/scale/kubernetes-api.ts, through a kubeconfig as
 * kubectl would use). The stand-in router (test/setup/scale/router.ts) stays for what the real one
 * cannot show quickly: hours of idleness (its clock is movable) and routers that fail on purpose.
 *
 * One backend, us-east's 8B, has [scaling] (kubernetes); the rest of the dev config has none.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../scripts/dev/stack';
import type { BackendStatus } from '../../worker/protocol/backends-api';
import type { RouterConfigInput } from '../../worker/config/schema';
import { kubeconfigYaml } from '../setup/scale/fixture';
import { startFakeKubernetes, type FakeKubernetes } from '../setup/scale/kubernetes-api';
import { withAdmin } from '../support/admin';
import { until } from '../support/until';

const ROOT = resolve(import.meta.dirname, '../..');
const SCALED = 'vllm-us-east-8b';
const DEPLOYMENT = 'inference/us-east-8b';
const NEAR_US_EAST = '39.04,-77.49,US';
const dir = mkdtempSync(join(tmpdir(), 'scale-real-'));

let stack: Stack;
let k8s: FakeKubernetes;

const scaling = { driver: 'kubernetes', idle_minutes: 15, wake_replicas: 2, max_replicas: 4, kubernetes: { namespace: 'inference', deployment: 'us-east-8b' } };

beforeAll(async () => {
  k8s = await startFakeKubernetes();
  k8s.deployments.set(DEPLOYMENT, { replicas: 1, readyReplicas: 1 });
  stack = await startStack({
    port: 0,
    ephemeralBackends: true,
    persist: false,
    simProfile: 'instant',
    // Its simulator, once parked, takes 10 minutes to wake on a request: only the scripts' events
    // (from the cluster's replicas) can bring it back within this test, as for a real GPU backend.
    simOverrides: (b) => (b.id === SCALED ? { cold_start_ms: 600_000 } : undefined),
    configPatch: (router: RouterConfigInput) => ({
      ...router,
      backends: router.backends.map((b) => (b.id === SCALED ? { ...b, cold_start_ms: 60_000, scaling } : b)) as RouterConfigInput['backends'],
    }),
  });
  // The scripts read the same config the Worker runs (as they would read wrangler.toml).
  writeFileSync(join(dir, 'router.toml'), stringify({ vars: { ROUTER: stack.router } }));
  writeFileSync(join(dir, 'kubeconfig'), kubeconfigYaml(k8s.url, k8s.token));
}, 120_000);

afterAll(async () => {
  await stack?.close();
  await k8s?.close();
  rmSync(dir, { recursive: true, force: true });
});

function scale(command: 'plan' | 'apply'): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { PATH: process.env.PATH, HOME: dir, KUBECONFIG: join(dir, 'kubeconfig'), MODAL_SERVER_URL: 'http://127.0.0.1:9' };
  const args = ['--import', 'tsx', 'scripts/scale.ts', command, '--router', stack.routerUrl, '--admin-token', stack.adminToken, '--config', join(dir, 'router.toml')];
  return new Promise((done) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c) => (stdout += c));
    child.stderr!.on('data', (c) => (stderr += c));
    child.on('exit', (code) => done({ code, stdout, stderr }));
  });
}

/** The table's rows as [backend, action] (columns are separated by two spaces or more). */
const actions = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .slice(2)
    .map((l) => l.split(/\s{2,}/))
    .map((c) => [c[0], c[6]]);

async function status(id: string): Promise<BackendStatus> {
  const res = await fetch(`${stack.routerUrl}/admin/backends/${id}`, withAdmin({}, stack.adminToken));
  expect(res.status).toBe(200);
  return (await res.json()) as BackendStatus;
}

/** A chat near us-east; its 10 s deadline cannot wait for a 60 s cold start. */
const ask = () =>
  fetch(`${stack.routerUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${stack.keys.demo}`, 'content-type': 'application/json', 'x-router-debug-geo': NEAR_US_EAST, 'x-router-timeout-ms': '10000' },
    body: JSON.stringify({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 4 }),
  });

describe('npm run scale against the real router', () => {
  it('plan: a row for every backend the Worker reports, only the scaled one considered; nothing changes', async () => {
    const before = await status(SCALED);
    const r = await scale('plan');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rows = actions(r.stdout);
    expect(rows.map((x) => x[0]).sort()).toEqual(stack.router.backends.map((b) => b.id).sort());
    expect(rows.filter((x) => x[1] !== 'skip')).toEqual([[SCALED, 'keep']]);
    expect(k8s.patches()).toEqual([]);
    expect(await status(SCALED)).toMatchObject({ state: before.state, pending_wakeups: 0 });
  }, 60_000);

  it('apply: parks a backend the router thinks warm but that runs nothing, then starts it for a wake-up and reports it ready', async () => {
    // Served once: the router knows it warm.
    const first = await ask();
    expect(first.status).toBe(200);
    expect(first.headers.get('x-router-backend')).toBe(SCALED);
    await first.arrayBuffer();
    await until('the router to see it warm', () => status(SCALED), (s) => s.state === 'warm');

    // Parked outside the scripts (the cluster at zero, its simulator cold): apply reports what is
    // true (scaled_down), the Worker records it.
    k8s.deployments.set(DEPLOYMENT, { replicas: 0, readyReplicas: 0 });
    const parkSim = await fetch(`${stack.backends[SCALED]}/sim/state`, { method: 'POST', body: JSON.stringify({ cold: true }) });
    expect(parkSim.status).toBe(200);
    const parked = await scale('apply');
    expect(parked.stderr).toBe('');
    expect(parked.code).toBe(0);
    expect(parked.stdout).toMatch(new RegExp(`${SCALED}\\s+kubernetes\\s+warm\\b.*reported scaled_down`));
    expect(await status(SCALED)).toMatchObject({ state: 'cold', replicas: 0 });

    // A client near us-east: the router asks for a wake-up and serves it elsewhere meanwhile.
    const waiting = await ask();
    expect(waiting.status).toBe(200);
    expect(waiting.headers.get('x-router-backend')).not.toBe(SCALED);
    expect(waiting.headers.get('x-router-cold-start')).toBe('avoided');
    await waiting.arrayBuffer();
    const pending = await until('a pending wake-up', () => status(SCALED), (s) => s.pending_wakeups > 0);
    expect(pending.state).toBe('waking'); // the router's own wake request to the backend is under way

    // apply starts wake_replicas through the cluster's API and tells the Worker it is waking.
    const woken = await scale('apply');
    expect(woken.code).toBe(0);
    expect(woken.stdout).toMatch(new RegExp(`${SCALED}\\s+kubernetes\\s+waking\\b.*0 → 2\\s+scale_up\\b.*reported waking`));
    expect(k8s.deployments.get(DEPLOYMENT)!.replicas).toBe(2);
    expect(await status(SCALED)).toMatchObject({ state: 'waking', pending_wakeups: 0, replicas: 2 });

    // The replicas are ready: the next apply says so, with the cold start it measured.
    const ready = await scale('apply');
    expect(ready.code).toBe(0);
    expect(ready.stdout).toMatch(/reported ready/);
    const warm = await status(SCALED);
    expect(warm).toMatchObject({ state: 'warm', replicas: 2 });
    expect(warm.cold_start_ms.observed).toHaveLength(1);

    // Nothing left to do: another apply changes nothing.
    const patches = k8s.patches().length;
    const idle = await scale('apply');
    expect(idle.code).toBe(0);
    expect(idle.stdout).not.toMatch(/PATCH|reported/);
    expect(k8s.patches()).toHaveLength(patches);
  }, 120_000);
});
