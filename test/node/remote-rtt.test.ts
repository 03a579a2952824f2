import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../scripts/dev/stack';
import type { RouterConfigInput } from '../../worker/config/schema';

// The distance model of the local stack (worker/dev/remote-rtt-entry.ts): only with remoteRttMs
// (or $ROUTER_SIM_REMOTE_RTT_MS) does the stack run the wrapper, whose answers count the remote
// calls each request waited for; /__dev/forget-isolate gives the bench its cold isolate.

let modelled: Stack;
let plain: Stack;

const ask = (stack: Stack, content: string) =>
  fetch(`${stack.routerUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${stack.keys.demo}` },
    body: JSON.stringify({ model: 'llama-3.1-70b', messages: [{ role: 'user', content }], max_tokens: 4 }),
  });

beforeAll(async () => {
  const limits = { key: { requests: 1_000, tokens: 1e12, window_s: 3_600 }, tenant: { requests: 1e9, window_s: 60 }, store: 'embedded' as const, leases: true };
  // A budget too: a cold isolate's budget sync starts beside its rate-limit lease (Stage.prefetch).
  const withBudget = (r: RouterConfigInput): RouterConfigInput => ({ ...r, limits, budgets: { ...r.budgets, enabled: true }, tenants: { ...r.tenants, demo: { ...r.tenants?.demo, budget: { monthly_tokens: 1e12 } } } });
  [modelled, plain] = await Promise.all([
    startStack({ port: 0, ephemeralBackends: true, persist: false, simProfile: 'instant', directSocket: true, remoteRttMs: 40, configPatch: withBudget }),
    startStack({ port: 0, ephemeralBackends: true, persist: false, simProfile: 'instant', directSocket: true, configPatch: (r) => ({ ...r, limits }) }),
  ]);
});
afterAll(async () => {
  await modelled?.close();
  await plain?.close();
});

describe('the remote-RTT model (dev stack only)', () => {
  it('answers count the remote calls; a fresh isolate waits for its key lookup and its lease; the plain stack has no debug header', async () => {
    const warmUp = await ask(modelled, 'hello');
    expect(warmUp.status).toBe(200);
    await warmUp.text();

    const forbidden = await fetch(`${modelled.routerUrl}/__dev/forget-isolate`, { method: 'POST' });
    expect(forbidden.status).toBe(401);
    const forgot = await fetch(`${modelled.routerUrl}/__dev/forget-isolate`, { method: 'POST', headers: { authorization: `Bearer ${modelled.adminToken}` } });
    expect(forgot.status).toBe(204);

    // Cold: the key registry and the rate limiter's lease are on the path (awaited, so counted).
    const cold = await ask(modelled, 'hello again');
    expect(cold.status).toBe(200);
    await cold.text();
    expect(Number(cold.headers.get('x-router-debug-remote-calls'))).toBeGreaterThanOrEqual(3);
    // Waited for: the key, then the budget's sync and the rate limiter's lease side by side (Stage.prefetch):
    // each starts before the other ends. Sequential, one would start after the other ended.
    // The first call of each name (a later one may be a background top-up that happened to finish in time).
    const calls: Record<string, { start: number; end: number }> = {};
    for (const c of (cold.headers.get('x-router-debug-remote-calls-log') ?? '').split(',')) {
      const [name, span] = c.split(':');
      const [start, end] = span!.split('-').map(Number);
      calls[name!] ??= { start: start!, end: end! };
    }
    const key = calls['KEY_REGISTRY.lookup']!;
    const budget = calls['QUOTAS.sync']!;
    const lease = calls['RATE_LIMITER.lease']!;
    expect(key && budget && lease, JSON.stringify(calls)).toBeTruthy();
    expect(budget.start).toBeGreaterThan(key.end);
    expect(lease.start).toBeGreaterThan(key.end);
    expect(budget.start).toBeLessThan(lease.end);
    expect(lease.start).toBeLessThan(budget.end);
    expect(Number(cold.headers.get('x-router-debug-remote-calls-started'))).toBeGreaterThanOrEqual(Number(cold.headers.get('x-router-debug-remote-calls')));
    // At most 998: the forgotten isolate's unspent slice stays taken at the object (under-admission, bounded).
    expect(cold.headers.get('x-ratelimit-limit-requests')).toBe('1000');
    expect(Number(cold.headers.get('x-ratelimit-remaining-requests'))).toBeLessThanOrEqual(998);

    const res = await ask(plain, 'hello');
    expect(res.status).toBe(200);
    await res.text();
    expect(res.headers.get('x-router-debug-remote-calls')).toBeNull();
    expect((await fetch(`${plain.routerUrl}/__dev/forget-isolate`, { method: 'POST', headers: { authorization: `Bearer ${plain.adminToken}` } })).status).not.toBe(204);
  });
});
