import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from '../env';
import { collectBounded } from '../http/body';
import { errors, RouterError } from '../http/errors';
import type { IdemBegin, IdemResult } from '../protocol/async-jobs';
import { requestStore, sha256Hex } from '../async/store';
import { fingerprint } from './fingerprint';
import { objectCall } from '../http/object-call';

const viaStore = objectCall('idempotency store', 'idempotency_unavailable');

// Idempotency-Key on every POST under /v1 (README "Idempotency"): registered as middleware, so a
// route added later gets it too. The key is scoped to the tenant and stored hashed; the request's
// fingerprint is the SHA-256 of its method, path, Prefer header and body bytes (a multipart
// body's random boundary left out: fingerprint.ts).
//   first request   → runs; its answer is stored for [idempotency].ttl_seconds (24 h)
//   same key, same fingerprint, after it ended → the stored answer, `Idempotent-Replayed: true`;
//                     nothing runs again (no usage record, no budget debit)
//   same key while the first still runs → 409 idempotency_key_in_use, Retry-After
//   same key, another body → 422 idempotency_key_reused (the IETF draft's choice)
// Answers a retry should run again are not stored: 5xx, 429 and 409 (the key is released).
// Streams: the assembled SSE text is stored and replayed as SSE (text/event-stream).

export const REPLAYED_HEADER = 'idempotent-replayed';

/** Headers replayed with the stored answer; the rest (rate-limit counters, Retry-After, dates, request ids) belong to the first request only. */
const REPLAYED = ['content-type', 'location', 'preference-applied', 'x-router-model', 'x-router-backend', 'x-router-tier', 'x-router-region', 'x-router-cache', 'x-router-deployment-version'];

const KEY_RE = /^[\x21-\x7e]+$/;

export const idempotency: MiddlewareHandler<AppEnv> = async (c, next) => {
  const header = c.req.header('idempotency-key');
  if (c.req.method !== 'POST' || header === undefined) return next();
  const config = c.get('config').raw.idempotency;
  if (!config.enabled) return next();
  if (header.length === 0 || header.length > config.max_key_length || !KEY_RE.test(header)) {
    throw errors.badRequest(`Idempotency-Key must be 1 to ${config.max_key_length} printable ASCII characters.`, 'Idempotency-Key', 'invalid_idempotency_key');
  }
  const tenant = c.get('key').tenant;
  // Never buffers more than a route accepts: a body over every route's limit goes on unkeyed, and its route answers 413.
  const raw = c.get('config').raw;
  const bytes = await readBounded(c.req.raw.clone(), Math.max(raw.max_body_bytes, raw.batch.max_file_bytes));
  if (bytes === null) return next();
  const fp = await fingerprint(new URL(c.req.url).pathname, c.req.header('prefer') ?? '', c.req.header('content-type') ?? '', new Uint8Array(bytes));
  const keyHash = await sha256Hex(`${tenant}\u0000${header}`);
  const store = requestStore(c.env, tenant);
  const now = Date.now();
  const begin = await viaStore(async (): Promise<IdemBegin> => (await store.idemBegin(keyHash, fp, now, config.ttl_seconds * 1000, config.lock_seconds * 1000)) as IdemBegin);
  switch (begin.state) {
    case 'replay': {
      const headers = new Headers(begin.headers);
      headers.set(REPLAYED_HEADER, 'true');
      return new Response(begin.body, { status: begin.status, headers });
    }
    case 'mismatch':
      throw new RouterError(422, 'This Idempotency-Key was used with another request (method, path, Prefer or body); use a new key for a new request.', 'idempotency_key_reused', 'Idempotency-Key');
    case 'in_progress':
      return errors.conflict('A request with this Idempotency-Key is still running; retry after it ends.', 'idempotency_key_in_use', 'Idempotency-Key').toResponse({ 'retry-after': String(begin.retry_after_s) });
    case 'unavailable':
      return errors.conflict('The first answer to this Idempotency-Key was too large to keep ([idempotency].max_response_bytes); it is not run again.', 'idempotent_result_unavailable', 'Idempotency-Key').toResponse();
    case 'new':
      break;
  }

  // After the request ran, a store failure is logged, never the client's error: the key then stays
  // locked until lock_seconds pass (a retry meanwhile gets 409), and the next retry runs.
  const release = () => store.idemRelease(keyHash).catch((e: unknown) => console.error(JSON.stringify({ msg: 'idempotency: release failed', error: String(e) })));
  try {
    await next();
  } catch (e) {
    await release();
    throw e;
  }
  const res = c.res;
  if (res.status >= 500 || res.status === 429 || res.status === 409) {
    await release();
    return;
  }
  const headers: [string, string][] = REPLAYED.flatMap((h) => {
    const v = res.headers.get(h);
    return v === null ? [] : [[h, v] as [string, string]];
  });
  const finish = (body: string | null) =>
    store.idemFinish(keyHash, { status: res.status, headers, body } satisfies IdemResult).catch((e: unknown) => console.error(JSON.stringify({ msg: 'idempotency: answer not stored', error: String(e) })));
  const limit = config.max_response_bytes;
  if (!res.body) {
    await finish('');
    return;
  }
  if (!res.headers.get('content-type')?.includes('text/event-stream')) {
    const text = await res.clone().text();
    await finish(new TextEncoder().encode(text).byteLength > limit ? null : text);
    return;
  }
  // A stream: the client reads one branch as it comes; the other is assembled and stored when it ends.
  const [toClient, toStore] = res.body.tee();
  c.res = undefined;
  c.res = new Response(toClient, res);
  c.executionCtx.waitUntil(
    (async () => {
      const reader = toStore.pipeThrough(new TextDecoderStream()).getReader();
      let text = '';
      let size = 0;
      let over = false;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        size += value.length;
        if (size > limit) over = true;
        else text += value;
      }
      await finish(over ? null : text);
    })().catch(async (e) => {
      console.error(JSON.stringify({ msg: 'idempotency: stream not stored, key released', error: String(e) }));
      await release();
    }),
  );
};

/** The body's bytes, or null when it is (or declares itself) larger than limit. */
async function readBounded(request: Request, limit: number): Promise<Uint8Array | null> {
  if (Number(request.headers.get('content-length') ?? 0) > limit) {
    await request.body?.cancel().catch(() => {});
    return null;
  }
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const bytes = await collectBounded(reader, limit);
  if (bytes === null) await reader.cancel().catch(() => {});
  return bytes;
}
