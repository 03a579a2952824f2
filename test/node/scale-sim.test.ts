/**
 * The "sim" scale driver (scripts/scale/drivers/sim.ts) and the local stack's serverless side
 * (scripts/dev/dev-layer.toml, scripts/dev/serverless.ts):
 *   - apply against a fake router parks a real simulator and a serverless stand-in through their
 *     /sim/state, reports scaled_down, and a pending wake-up warms them again (waking + ready);
 *   - against the real local stack with the dev layer (ephemeral ports): the stand-ins start cold,
 *     plan reads each backend's state through the driver, a request wakes a parked simulator
 *     through the router, and /admin/backends shows it warm.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'smol-toml';
import { startSimServer, type SimServer } from '../../regional/sim/server';
import { startStack, type Stack } from '../../scripts/dev/stack';
import { startModalFake } from '../../scripts/dev/standins/modal';
import type { Fake } from '../../scripts/dev/standins/common';
import { scaleConfigFromToml } from '../../scripts/scale/config';
import { makeDrivers } from '../../scripts/scale/drivers';
import { routerClient } from '../../scripts/scale/router-client';
import { applyRound, planRound, type ScaleContext } from '../../scripts/scale/run';
import { backendStatus, startFakeRouter, type FakeRouter } from '../setup/scale/router';

const TOKEN = 'admin-sim-token';
const NOW = new Date('2026-06-10T12:00:00Z');
const ago = (m: number) => new Date(NOW.getTime() - m * 60_000).toISOString();

const stateOf = async (url: string) => ((await (await fetch(`${url}/sim/state`)).json()) as { state: string; wakes: number }).state;

async function waitFor<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`${what}: still ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('sim driver against a fake router', () => {
  let sim: SimServer;
  let modal: Fake;
  let router: FakeRouter;
  let ctx: ScaleContext;

  beforeAll(async () => {
    sim = await startSimServer({ host: '127.0.0.1', port: 0, name: 'sim-a', models: ['m'], cold_start_ms: 300 });
    modal = await startModalFake({ lifecycle: { name: 'modal-a', cold_start_ms: 300 } });
    router = await startFakeRouter(TOKEN, [], NOW);
    const toml = stringify({
      vars: {
        ROUTER: {
          models: [{ id: 'm' }],
          regions: [{ id: 'r', latitude: 0, longitude: 0 }],
          backends: [
            { id: 'sim-a', kind: 'vllm', region: 'r', url: sim.url, models: ['m'], cold_start_ms: 300, scaling: { driver: 'sim', idle_minutes: 5 } },
            { id: 'modal-a', kind: 'modal', region: 'r', url: modal.url, models: ['m'], cold_start_ms: 300, scaling: { driver: 'sim', idle_minutes: 5 } },
          ],
          tenants: { t: { models: ['*'] } },
        },
      },
    });
    ctx = { router: routerClient(router.url, TOKEN), backends: scaleConfigFromToml(toml, 'test.toml'), drivers: makeDrivers() };
  });
  afterAll(async () => {
    await Promise.all([sim?.close(), modal?.close(), router?.close()]);
  });

  it('parks idle backends, leaves busy ones, and warms them on a pending wake-up', async () => {
    router.backends = new Map([
      ['sim-a', backendStatus('sim-a', { state: 'warm', state_since: ago(60), last_request_at: ago(10) })],
      ['modal-a', backendStatus('modal-a', { kind: 'modal', state: 'warm', state_since: ago(60), last_request_at: ago(1) })],
    ]);
    const parked = await applyRound(ctx);
    const row = (id: string) => parked.rows.find((r) => r.id === id)!;
    expect(row('sim-a').error).toBeUndefined();
    expect(row('sim-a').decision?.action).toBe('scale_to_zero');
    expect(row('sim-a').result).toMatch(/cold=true \(warm → cold\)/);
    expect(row('modal-a').decision?.action).toBe('keep'); // active a minute ago
    expect(await stateOf(sim.url)).toBe('cold');
    expect(await stateOf(modal.url)).toBe('warm');
    expect(router.events).toEqual([{ id: 'sim-a', event: { type: 'scaled_down', replicas: 0 } }]);

    // A second round changes nothing: the driver reads 0 replicas, the policy keeps it parked.
    const again = await applyRound(ctx);
    expect(again.rows.find((r) => r.id === 'sim-a')!.decision?.action).toBe('keep');
    expect(router.events).toHaveLength(1);

    // The router asks for it: the driver warms it and reports waking and ready.
    router.backends.set('sim-a', { ...router.backends.get('sim-a')!, pending_wakeups: 1, wakeup_requested_at: NOW.toISOString() });
    const woken = await applyRound(ctx);
    const w = woken.rows.find((r) => r.id === 'sim-a')!;
    expect(w.error).toBeUndefined();
    expect(w.decision?.action).toBe('scale_up');
    expect(await stateOf(sim.url)).toBe('warm');
    expect(w.events.map((e) => e.type)).toContain('waking');
  });

  it('a parked stand-in wakes on a request, taking its cold start', async () => {
    await fetch(`${modal.url}/sim/state`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"cold":true}' });
    expect(await stateOf(modal.url)).toBe('cold');
    const answer = fetch(`${modal.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }) });
    await waitFor('stand-in waking', () => stateOf(modal.url), (s) => s === 'waking' || s === 'warm');
    expect((await answer).status).toBe(200);
    expect(await stateOf(modal.url)).toBe('warm');
    const driver = await ctx.drivers('sim');
    expect(await driver.current({ id: 'modal-a', url: modal.url, scaling: ctx.backends[1]!.scaling!, status: undefined })).toMatchObject({ replicas: 1, ready: 1 });
  });

  it('refuses a URL that is not loopback, and says what answered wrong', async () => {
    const driver = await ctx.drivers('sim');
    const scaling = ctx.backends[0]!.scaling!;
    await expect(driver.current({ id: 'x', url: 'http://10.0.0.1:8000', scaling, status: undefined })).rejects.toThrow(/not a loopback/);
    await expect(driver.current({ id: 'x', url: `${router.url}/nope`, scaling, status: undefined })).rejects.toThrow(/HTTP 40/);
  });
});

describe('the local stack with the dev layer', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ port: 0, ephemeralBackends: true, persist: false, devLayer: true });
  }, 60_000);
  afterAll(async () => {
    await stack?.close();
  });

  it('runs Modal, Replicate and Triton stand-ins, the serverless ones cold; plan sees them through the sim driver', async () => {
    const kinds = Object.fromEntries(stack.router.backends.map((b) => [b.id, b.kind]));
    expect(kinds).toMatchObject({ 'modal-us-east-8b': 'modal', 'replicate-us-east-70b': 'replicate', 'triton-eu-west-8b': 'triton' });
    expect(await stateOf(stack.backends['modal-us-east-8b']!)).toBe('cold');
    const backends = scaleConfigFromToml(stringify({ vars: { ROUTER: stack.router } }), 'effective.toml');
    const plan = await planRound({ router: routerClient(stack.routerUrl, stack.adminToken), backends, drivers: makeDrivers() });
    const row = (id: string) => plan.rows.find((r) => r.id === id)!;
    for (const id of ['modal-us-east-8b', 'replicate-us-east-70b']) {
      expect(row(id).driver).toBe('sim');
      expect(row(id).current).toMatchObject({ replicas: 0, ready: 0 });
    }
    expect(row('vllm-us-east-405b').current).toMatchObject({ replicas: 1, ready: 1 });
  });

  it('a request through the router wakes a parked simulator; /admin/backends shows it warm', async () => {
    const url = stack.backends['vllm-us-east-405b']!;
    const backends = scaleConfigFromToml(stringify({ vars: { ROUTER: stack.router } }), 'effective.toml');
    const b = backends.find((x) => x.id === 'vllm-us-east-405b')!;
    const driver = await makeDrivers()('sim');
    await driver.scale({ id: b.id, url: b.url, scaling: b.scaling!, status: undefined }, 0);
    expect(await stateOf(url)).toBe('cold');
    const res = await fetch(`${stack.routerUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.keys.demo}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama-3.1-405b', messages: [{ role: 'user', content: 'wake up' }], max_tokens: 4 }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-router-backend')).toBe('vllm-us-east-405b');
    expect(await stateOf(url)).toBe('warm');
    const status = await waitFor(
      '405b in /admin/backends',
      async () => (await (await fetch(`${stack.routerUrl}/admin/backends/vllm-us-east-405b`, { headers: { authorization: `Bearer ${stack.adminToken}` } })).json()) as { state: string; last_request_at: string | null },
      (s) => s.state === 'warm' && s.last_request_at !== null,
    );
    expect(status.state).toBe('warm');
  });
});
