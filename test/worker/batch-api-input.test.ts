import { describe, expect, it } from 'vitest';
import { baseConfig, call, createKey, envWith, errorOf } from './support';

// The Files and Batches APIs against hostile or wrong input: every refusal in OpenAI's error
// format with the right status, never a 500. (The happy path and faults: test/node/batch-e2e.test.ts.)

const auth = (key: string) => ({ authorization: `Bearer ${key}` });

function form(parts: Record<string, string | Blob>, filename = 'in.jsonl'): FormData {
  const f = new FormData();
  for (const [k, v] of Object.entries(parts)) {
    if (typeof v === 'string') f.append(k, v);
    else f.append(k, v, filename);
  }
  return f;
}

describe('POST /v1/files refuses what is not a batch file', () => {
  it('wrong content type, purpose, missing file, non-UTF-8, not JSONL, too many lines, too large', async () => {
    const { key } = await createKey('demo');
    const line = JSON.stringify({ custom_id: 'a', method: 'POST', url: '/v1/chat/completions', body: { model: 'small', messages: [] } });
    const cases: Array<[string, RequestInit, number, string]> = [
      ['json body', { method: 'POST', headers: { ...auth(key), 'content-type': 'application/json' }, body: '{}' }, 400, 'invalid_content_type'],
      ['purpose', { method: 'POST', headers: auth(key), body: form({ purpose: 'fine-tune', file: new Blob([line]) }) }, 400, 'invalid_value'],
      ['no file', { method: 'POST', headers: auth(key), body: form({ purpose: 'batch' }) }, 400, 'missing_required_parameter'],
      ['not utf-8', { method: 'POST', headers: auth(key), body: form({ purpose: 'batch', file: new Blob([new Uint8Array([0xff, 0xfe, 0x00])]) }) }, 400, 'invalid_file'],
      ['not json', { method: 'POST', headers: auth(key), body: form({ purpose: 'batch', file: new Blob([`${line}\n[1,2]`]) }) }, 400, 'invalid_file'],
      ['empty', { method: 'POST', headers: auth(key), body: form({ purpose: 'batch', file: new Blob(['\n\n']) }) }, 400, 'invalid_file'],
    ];
    for (const [name, init, status, code] of cases) {
      const res = await call('/v1/files', init);
      expect(res.status, name).toBe(status);
      expect((await errorOf(res)).code, name).toBe(code);
    }
    // Limits from [batch].
    const cfg = baseConfig();
    cfg.batch = { max_lines: 2, max_file_bytes: 1000 };
    const env = envWith(cfg);
    const three = await call('/v1/files', { method: 'POST', headers: auth(key), body: form({ purpose: 'batch', file: new Blob([[line, line, line].join('\n')]) }), env });
    expect(three.status).toBe(400);
    expect((await errorOf(three)).message).toMatch(/more than 2 lines/);
    const big = await call('/v1/files', { method: 'POST', headers: auth(key), body: form({ purpose: 'batch', file: new Blob(['x'.repeat(2000)]) }), env });
    expect(big.status).toBe(413);
    expect((await errorOf(big)).code).toBe('request_too_large');
    // Without a declared length (chunked) and never ending: counted as it streams and refused past
    // the limit (a reader that waited for the whole body would never answer).
    const contentType = 'multipart/form-data; boundary=x';
    const chunk = new TextEncoder().encode('x'.repeat(8192));
    let sent = 0;
    const chunked = new ReadableStream<Uint8Array>({
      pull(ctrl) {
        sent += chunk.byteLength;
        ctrl.enqueue(chunk);
      },
    });
    const streamed = await call('/v1/files', { method: 'POST', headers: { ...auth(key), 'content-type': contentType }, body: chunked, env, duplex: 'half' } as RequestInit);
    expect(streamed.status).toBe(413);
    expect((await errorOf(streamed)).code).toBe('request_too_large');
    expect(sent).toBeLessThan(40 * 1024 * 1024); // the limit, then at most the bounded drain
  });
});

describe('ids and queries are hostile input', () => {
  it('malformed file and batch ids are a 404 like missing ones; bad list queries and create bodies a 400', async () => {
    const { key } = await createKey('demo');
    for (const path of ['/v1/files/..%2Facme%2Ffile-0', '/v1/files/file-zz', '/v1/files/file-000000000000000000000000/content', '/v1/batches/batch_1', '/v1/batches/batch_000000000000000000000000']) {
      const res = await call(path, { headers: auth(key) });
      expect(res.status, path).toBe(404);
      expect((await errorOf(res)).type, path).toBeTruthy();
    }
    for (const path of ['/v1/batches?limit=0', '/v1/batches?limit=abc', '/v1/files?order=sideways', '/v1/batches?bogus=1']) {
      const res = await call(path, { headers: auth(key) });
      expect(res.status, path).toBe(400);
    }
    const bodies: unknown[] = [
      {},
      { input_file_id: 'file-000000000000000000000000', endpoint: '/v1/images/generations', completion_window: '24h' },
      { input_file_id: 'file-000000000000000000000000', endpoint: '/v1/chat/completions', completion_window: '1h' },
      { input_file_id: 'file-000000000000000000000000', endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { k: 'x'.repeat(600) } },
    ];
    for (const body of bodies) {
      const res = await call('/v1/batches', { method: 'POST', headers: { ...auth(key), 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    const missing = await call('/v1/batches', { method: 'POST', headers: { ...auth(key), 'content-type': 'application/json' }, body: JSON.stringify({ input_file_id: 'file-000000000000000000000000', endpoint: '/v1/chat/completions', completion_window: '24h' }) });
    expect(missing.status).toBe(404);
    expect((await errorOf(missing)).code).toBe('file_not_found');
  });

  it('GET /admin/queues needs the admin token', async () => {
    const { key } = await createKey('demo');
    expect((await call('/admin/queues', { headers: auth(key) })).status).toBe(401);
  });
});
