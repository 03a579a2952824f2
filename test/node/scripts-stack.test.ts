import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPortFree } from '../../scripts/dev/ports';
import { startStack, type Stack } from '../../scripts/dev/stack';

const chat = (stack: Stack, key: string) =>
  fetch(`${stack.routerUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'llama-3.1-8b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 }),
  });

describe('startStack (ephemeral ports, instant sims)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ port: 0, ephemeralBackends: true, persist: false, simProfile: 'instant' });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('starts one sim per configured backend, on loopback', () => {
    expect(Object.keys(stack.backends).sort()).toEqual(stack.router.backends.map((b) => b.id).sort());
    for (const url of [stack.routerUrl, ...Object.values(stack.backends)]) expect(new URL(url).hostname).toBe('127.0.0.1');
  });

  it('answers a chat completion through the router with the demo key', async () => {
    const res = await chat(stack, stack.keys.demo);
    const body = (await res.json()) as { choices: Array<{ message: { content: string } }> };
    expect(res.status).toBe(200);
    // No location and no debug header: the first region in config order.
    expect(res.headers.get('x-router-backend')).toBe('vllm-us-east-8b');
    expect(body.choices[0]?.message.content).toBeTruthy();
  });

  it('reaches the backend that needs its auth secret', async () => {
    const res = await fetch(`${stack.routerUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.keys.acme}`, 'content-type': 'application/json', 'x-router-debug-geo': '53.3,-6.2' },
      body: JSON.stringify({ model: 'llama-3.1-70b', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }),
    });
    await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get('x-router-backend')).toBe('trtllm-eu-west-70b');
  });

  it('creates more keys through the admin API', async () => {
    const created = await stack.createKey('acme', 'extra');
    expect(created).toMatchObject({ tenant: 'acme', name: 'extra' });
    expect((await chat(stack, created.key)).status).toBe(200);
  });
});

describe('startStack with configPatch, then close', () => {
  it('runs the patched config, with no request.cf location, and leaves nothing listening', async () => {
    const stack = await startStack({
      port: 0,
      ephemeralBackends: true,
      persist: false,
      simProfile: 'instant',
      // Regions reversed: with no client location the router must start from ap-southeast. (A
      // placeholder request.cf, which Miniflare would locate in Austin, would pick us-east instead.)
      configPatch: (r) => ({ ...r, regions: [...r.regions].reverse(), backends: r.backends.filter((b) => b.id !== 'vllm-us-east-70b') }),
    });
    const ports = [stack.routerUrl, ...Object.values(stack.backends)].map((u) => Number(new URL(u).port));
    try {
      expect(Object.keys(stack.backends)).not.toContain('vllm-us-east-70b');
      const res = await chat(stack, stack.keys.demo);
      await res.text();
      expect(res.status).toBe(200);
      expect(res.headers.get('x-router-backend')).toBe('vllm-ap-southeast-8b');
      expect(await isPortFree(ports[0]!)).toBe(false);
    } finally {
      await stack.close();
    }
    for (const port of ports) expect(await isPortFree(port), `port ${port}`).toBe(true);
  });
});

describe('startStack with directSocket (what the benches use)', () => {
  it('serves the router without Miniflare entry worker and closes both sockets', async () => {
    const stack = await startStack({ port: 0, ephemeralBackends: true, persist: false, simProfile: 'instant', directSocket: true });
    const port = Number(new URL(stack.routerUrl).port);
    try {
      const res = await chat(stack, stack.keys.demo);
      await res.text();
      expect(res.status).toBe(200);
      expect(res.headers.get('x-router-backend')).toBe('vllm-us-east-8b');
    } finally {
      await stack.close();
    }
    expect(await isPortFree(port)).toBe(true);
  });
});
