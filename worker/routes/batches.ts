import { Hono } from 'hono';
import { z } from 'zod';
import { batchStore, randomHex } from '../batch/store';
import { parseJsonl, validateLines, type BatchLine } from '../batch/validate';
import type { AppEnv, Env } from '../env';
import { readJsonBody, schemaError } from '../http/body';
import { errors } from '../http/errors';
import { objectCall } from '../http/object-call';
import { BATCH_ENDPOINTS, type BatchKey, type BatchLineMessage, type BatchObject } from '../protocol/batch';
import { fileKey, FILE_ID_RE } from '../protocol/files';
import { bucketOf, r2 } from './files';

/**
 * OpenAI's Batches API (README "Batch and async"): a batch is validated, recorded in the tenant's
 * BatchStore with its lines, and each line becomes one message on the batch queue, which
 * worker/batch/consumer.ts runs through the inference pipeline.
 */
export const batches = new Hono<AppEnv>();

const rpc = objectCall('batch service', 'batches_unavailable');
const BATCH_ID_RE = /^batch_[0-9a-f]{24}$/;
/** Queues' sendBatch takes at most 100 messages and 256 KB a call. */
const SEND_MAX_MESSAGES = 100;
const SEND_MAX_BYTES = 250_000;

const createSchema = z.strictObject({
  input_file_id: z.string().min(1).max(128),
  endpoint: z.enum(Object.keys(BATCH_ENDPOINTS) as [keyof typeof BATCH_ENDPOINTS]),
  completion_window: z.literal('24h'),
  metadata: z.record(z.string().max(64), z.string().max(512)).refine((m) => Object.keys(m).length <= 16, 'at most 16 keys').nullable().optional(),
  // Accepted for the SDK's sake; output files here live as long as the bucket keeps them.
  output_expires_after: z.strictObject({ anchor: z.literal('created_at'), seconds: z.number().int().min(3600).max(2_592_000) }).optional(),
});

const notFound = (id: string) => errors.notFound(`No such Batch object: ${id.slice(0, 80)}`, 'batch_not_found', 'batch_id');

batches.post('/', async (c) => {
  const config = c.get('config');
  const cfg = config.raw.batch;
  const key = c.get('key');
  const body = await readJsonBody(c.req.raw, createSchema, config.raw.max_body_bytes);
  const bucket = bucketOf(c);
  const fileMissing = () => errors.notFound(`No such File object: ${body.input_file_id.slice(0, 80)}`, 'file_not_found', 'input_file_id');
  if (!FILE_ID_RE.test(body.input_file_id)) throw fileMissing();
  const file = await r2(() => bucket.get(fileKey(key.tenant, body.input_file_id)));
  if (!file) throw fileMissing();
  if (file.customMetadata?.purpose !== 'batch') throw errors.badRequest('The input file must have been uploaded with purpose "batch".', 'input_file_id', 'invalid_file_purpose');
  const rows = parseJsonl(await file.text(), cfg);
  const { lines, errors: lineErrors } = validateLines(rows, body.endpoint);

  const now = Date.now();
  const at = Math.floor(now / 1000);
  const obj: BatchObject = {
    id: `batch_${randomHex(12)}`,
    object: 'batch',
    endpoint: body.endpoint,
    model: typeof lines[0]?.body.model === 'string' ? lines[0].body.model : null,
    errors: null,
    input_file_id: body.input_file_id,
    completion_window: '24h',
    status: 'in_progress',
    output_file_id: null,
    error_file_id: null,
    created_at: at,
    in_progress_at: at,
    expires_at: at + cfg.completion_window_seconds,
    finalizing_at: null,
    completed_at: null,
    failed_at: null,
    expired_at: null,
    cancelling_at: null,
    cancelled_at: null,
    request_counts: { total: 0, completed: 0, failed: 0 },
    usage: { input_tokens: 0, input_tokens_details: { cached_tokens: 0 }, output_tokens: 0, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 0 },
    metadata: body.metadata ?? null,
  };
  const store = batchStore(c.env, key.tenant);
  if (lineErrors.length > 0) {
    // As OpenAI: the batch exists, failed at validation, its errors listed; nothing runs.
    Object.assign(obj, { status: 'failed', in_progress_at: null, failed_at: at, errors: { object: 'list', data: lineErrors } });
    return c.json(await rpc(() => store.create(obj, key.tenant, [], now)));
  }
  const created = await rpc(() => store.create(obj, key.tenant, lines.map((l) => ({ custom_id: l.custom_id, line: l.line })), now));
  const batchKey: BatchKey = { id: key.id, tenant: key.tenant, name: key.name, key_prefix: key.key_prefix, created_at: key.created_at, limits: key.limits ?? null };
  try {
    await enqueue(c.env, lines.map((l) => message(obj, batchKey, l, now)));
  } catch (e) {
    // Lines that did reach the queue find the batch cancelled and are dropped; the client may retry the create.
    console.error(JSON.stringify({ msg: 'batch enqueue failed', batch_id: obj.id, error: String(e) }));
    await store.cancel(obj.id, Date.now()).catch(() => {});
    throw errors.unavailable('The batch queue is unreachable; the batch was cancelled. Retry shortly.', 'batch_queue_unavailable');
  }
  return c.json(created);
});

const listQuery = z.strictObject({
  after: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
});

batches.get('/', async (c) => {
  const parsed = listQuery.safeParse(c.req.query());
  if (!parsed.success) throw schemaError(parsed.error);
  const page = await rpc(() => batchStore(c.env, c.get('key').tenant).list(parsed.data.after ?? null, parsed.data.limit));
  return c.json({ object: 'list', data: page.data, first_id: page.data[0]?.id ?? null, last_id: page.data.at(-1)?.id ?? null, has_more: page.has_more });
});

batches.get('/:id', async (c) => {
  const id = c.req.param('id');
  if (!BATCH_ID_RE.test(id)) throw notFound(id);
  const obj = await rpc(() => batchStore(c.env, c.get('key').tenant).get(id));
  if (!obj) throw notFound(id);
  return c.json(obj);
});

batches.post('/:id/cancel', async (c) => {
  const id = c.req.param('id');
  if (!BATCH_ID_RE.test(id)) throw notFound(id);
  const obj = await rpc(() => batchStore(c.env, c.get('key').tenant).cancel(id, Date.now()));
  if (!obj) throw notFound(id);
  return c.json(obj);
});

function message(obj: BatchObject, key: BatchKey, l: BatchLine, now: number): BatchLineMessage {
  return { v: 1, tenant: key.tenant, batch_id: obj.id, custom_id: l.custom_id, line: l.line, endpoint: obj.endpoint, body: l.body, key, enqueued_at: now, expires_at_ms: obj.expires_at * 1000 };
}

/** All lines onto the batch queue, in sendBatch calls within Queues' limits. */
async function enqueue(env: Env, msgs: BatchLineMessage[]): Promise<void> {
  const q = env.ROUTER_BATCH;
  if (!q) throw new Error('no ROUTER_BATCH queue binding');
  let chunk: MessageSendRequest<unknown>[] = [];
  let bytes = 0;
  for (const m of msgs) {
    const size = JSON.stringify(m).length + 100;
    if (chunk.length > 0 && (chunk.length >= SEND_MAX_MESSAGES || bytes + size > SEND_MAX_BYTES)) {
      await q.sendBatch(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push({ body: m, contentType: 'json' });
    bytes += size;
  }
  if (chunk.length > 0) await q.sendBatch(chunk);
}
