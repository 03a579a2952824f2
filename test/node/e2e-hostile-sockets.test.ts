import net from 'node:net';
import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../../scripts/dev/stack';

// Issue 12 items 8, 9 and 11 through real sockets: the whole stack as `npm start` runs it (the
// Worker in workerd behind a direct socket, simulators in their own process).

let stack: Stack;
let stderr = '';
const write = process.stderr.write.bind(process.stderr);

beforeAll(async () => {
  // workerd's stderr (uncaught errors, the router's console.error) is forwarded to this process's.
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    stderr += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  stack = await startStack({ port: 0, ephemeralBackends: true, persist: false, simProfile: 'instant', directSocket: true });
});
afterAll(async () => {
  process.stderr.write = write;
  await stack?.close();
});

const url = () => `${stack.routerUrl}/v1/chat/completions`;
const headers = () => ({ authorization: `Bearer ${stack.keys.demo}`, 'content-type': 'application/json' });
const small = JSON.stringify({ model: 'small', messages: [{ role: 'user', content: 'Say hi.' }], max_tokens: 4 });

/** Sends raw bytes on a fresh connection; resolves with what came back when the server closes (or after `ms`). */
function rawExchange(data: string, ms = 5_000): Promise<string> {
  const u = new URL(stack.routerUrl);
  return new Promise((resolve) => {
    const s = net.connect(Number(u.port), u.hostname);
    let out = '';
    const t = setTimeout(() => s.destroy(), ms);
    s.on('data', (d) => (out += d.toString('latin1')));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(t);
      resolve(out);
    });
    s.end(data);
  });
}

async function metricsText(): Promise<string> {
  const res = await fetch(`${stack.routerUrl}/metrics`, { headers: { authorization: `Bearer ${stack.adminToken}` } });
  return res.text();
}

/** Polls until `pred` holds (metrics reach the aggregator in batches), with a deadline. */
async function eventually<T>(read: () => Promise<T>, pred: (v: T) => boolean, deadlineMs = 15_000): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const v = await read();
    if (pred(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
}

const clientClosedCount = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith('router_requests_total{') && l.includes('outcome="client_closed"'))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);

describe('a client that closes its socket during the body upload (item 8)', () => {
  it('is counted as client_closed, never as a 500 or an unhandled error', async () => {
    const before = clientClosedCount(await metricsText());
    const u = new URL(stack.routerUrl);
    await new Promise<void>((resolve) => {
      const s = net.connect(Number(u.port), u.hostname, () => {
        s.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: ${u.host}\r\nauthorization: Bearer ${stack.keys.demo}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{"model":"small","messages":[`);
        setTimeout(() => s.destroy(), 300); // gone, mid-body
      });
      s.on('error', () => {});
      s.on('close', () => resolve());
    });
    const after = await eventually(metricsText, (t) => clientClosedCount(t) > before);
    expect(clientClosedCount(after)).toBe(before + 1);
    expect(after).not.toMatch(/router_requests_total\{[^}]*status="500"/);
    // The router logs an unhandled error (the old symptom: "unhandled error … Network connection lost") for any non-RouterError.
    expect(stderr).not.toMatch(/unhandled error/);
    // The router goes on answering.
    expect((await fetch(url(), { method: 'POST', headers: headers(), body: small })).status).toBe(200);
  });
});

describe('a body over max_body_bytes (item 9)', () => {
  const big = (mb: number) => JSON.stringify({ model: 'small', messages: [{ role: 'user', content: 'x'.repeat(mb * 1024 * 1024) }] });
  const outcome = async (p: Promise<Response>) => {
    try {
      const r = await p;
      await r.text();
      return String(r.status);
    } catch (e) {
      return String((e as { cause?: { code?: string } }).cause?.code ?? e);
    }
  };

  it('reads the 413 every time, with content-length or chunked, never ECONNRESET', async () => {
    const results: string[] = [];
    for (let i = 0; i < 10; i++) results.push(await outcome(fetch(url(), { method: 'POST', headers: headers(), body: big(8) })));
    const data = new TextEncoder().encode(big(4));
    for (let i = 0; i < 5; i++) {
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          for (let o = 0; o < data.length; o += 65_536) c.enqueue(data.subarray(o, o + 65_536));
          c.close();
        },
      });
      results.push(await outcome(fetch(url(), { method: 'POST', headers: headers(), body, duplex: 'half' } as RequestInit)));
    }
    expect(results).toEqual(Array(15).fill('413'));
  });

  it('the openai client gets a 413 APIError, not a connection error it would retry', async () => {
    const client = new OpenAI({ baseURL: `${stack.routerUrl}/v1`, apiKey: stack.keys.demo, maxRetries: 0 });
    for (let i = 0; i < 5; i++) {
      const err = await client.chat.completions.create({ model: 'small', messages: [{ role: 'user', content: 'x'.repeat(4 * 1024 * 1024) }] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(APIError);
      expect((err as APIError).status).toBe(413);
      expect((err as APIError).code).toBe('request_too_large');
    }
  });
});

describe('headers the runtime refuses before the Worker runs (item 11)', () => {
  const request = (extra: string) =>
    `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${stack.keys.demo}\r\ncontent-type: application/json\r\n${extra}\r\ncontent-length: ${small.length}\r\nconnection: close\r\n\r\n${small}`;

  it('a NUL byte or a 1 MB header: workerd answers 400 / 431 itself (the Worker never sees them); the router keeps answering', async () => {
    const nul = await rawExchange(request('x-router-user: a\0b'));
    expect(nul).toMatch(/^HTTP\/1\.1 400 /);
    expect(nul).not.toMatch(/x-request-id/i); // not the router's answer
    const huge = await rawExchange(request(`x-big: ${'a'.repeat(1024 * 1024)}`));
    expect(huge).toMatch(/^HTTP\/1\.1 431 /);
    expect((await fetch(url(), { method: 'POST', headers: headers(), body: small })).status).toBe(200);
  });

  it('a large header the Worker does see gets an answer in OpenAI format', async () => {
    const res = await fetch(url(), { method: 'POST', headers: { ...headers(), 'x-router-user': 'u'.repeat(60 * 1024) }, body: small });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'invalid_header', param: 'x-router-user' } });
    const auth = await fetch(url(), { method: 'POST', headers: { ...headers(), authorization: `Bearer ${'k'.repeat(60 * 1024)}` }, body: small });
    expect(auth.status).toBe(401);
    expect(((await auth.json()) as { error: { type: string } }).error.type).toBe('authentication_error');
  });
});
