import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { parseJsonl } from '../batch/validate';
import type { AppEnv } from '../env';
import { readBodyBytes, schemaError } from '../http/body';
import { errors, RouterError } from '../http/errors';
import { FILE_ID_RE, fileKey, fileObjectOf, putFile, type FileObject } from '../protocol/files';

/**
 * OpenAI's Files API for batch input and output (README "Batch and async"), stored in R2 under
 * "<tenant>/<file id>": a tenant only ever addresses its own prefix, so another tenant's file id
 * is a 404 exactly like a missing one.
 */
export const files = new Hono<AppEnv>();

/** Multipart overhead allowed above [batch].max_file_bytes before the body is refused unread. */
const MULTIPART_SLACK = 64 * 1024;

export function bucketOf(c: Context<AppEnv>): R2Bucket {
  const b = c.env.FILES;
  if (!b) throw errors.unavailable('File storage is not configured (the FILES R2 binding).', 'files_unavailable');
  return b;
}

const notFound = (id: string) => errors.notFound(`No such File object: ${id.slice(0, 80)}`, 'file_not_found', 'file_id');

/** The tenant's file (its R2 object head), or 404. */
export async function headFile(bucket: R2Bucket, tenant: string, id: string): Promise<{ object: FileObject }> {
  if (!FILE_ID_RE.test(id)) throw notFound(id);
  const head = await r2(() => bucket.head(fileKey(tenant, id)));
  if (!head) throw notFound(id);
  return { object: fileObjectOf(id, head) };
}

/** R2 failing is a 503 in OpenAI's format, never a 500. */
export async function r2<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    if (e instanceof RouterError) throw e;
    console.error(JSON.stringify({ msg: 'R2 call failed', error: String(e) }));
    throw errors.unavailable('File storage is unreachable; retry shortly.', 'files_unavailable');
  }
}

files.post('/', async (c) => {
  const cfg = c.get('config').raw.batch;
  const bucket = bucketOf(c);
  const contentType = c.req.header('content-type') ?? '';
  if (!contentType.toLowerCase().startsWith('multipart/form-data')) {
    throw errors.badRequest('POST /v1/files takes multipart/form-data with fields "file" and "purpose".', null, 'invalid_content_type');
  }
  // Bounded whether the length is declared or the body is chunked: never more than the limit in memory.
  const raw = await readBodyBytes(c.req.raw, cfg.max_file_bytes + MULTIPART_SLACK).catch((e: unknown) => {
    throw e instanceof RouterError && e.status === 413 ? errors.tooLarge(cfg.max_file_bytes) : e;
  });
  let form: FormData;
  try {
    form = await new Response(raw, { headers: { 'content-type': contentType } }).formData();
  } catch {
    throw errors.badRequest('The multipart body could not be read.', null, 'invalid_multipart');
  }
  const purpose = form.get('purpose');
  if (purpose !== 'batch') throw errors.badRequest(`Invalid value for 'purpose': this router stores files for purpose "batch" only.`, 'purpose', 'invalid_value');
  const file = form.get('file') as unknown;
  if (!(file instanceof File)) throw errors.badRequest("Missing required parameter: 'file' (a file part).", 'file', 'missing_required_parameter');
  if (file.size > cfg.max_file_bytes) throw errors.tooLarge(cfg.max_file_bytes);
  const bytes = await file.arrayBuffer();
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw errors.badRequest('The file is not UTF-8 text; a batch file is JSONL.', 'file', 'invalid_file');
  }
  parseJsonl(text, cfg); // 400 naming the first bad line
  const name = (file.name || 'batch.jsonl').replace(/[\u0000-\u001f]/g, '').slice(0, 255) || 'batch.jsonl';
  const obj = await r2(() => putFile(bucket, c.get('key').tenant, { filename: name, purpose: 'batch', body: bytes }));
  return c.json(obj);
});

const listQuery = z.strictObject({
  purpose: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(10_000),
  after: z.string().max(64).optional(),
  order: z.enum(['asc', 'desc']).default('desc'),
});

files.get('/', async (c) => {
  const parsed = listQuery.safeParse(c.req.query());
  if (!parsed.success) throw schemaError(parsed.error);
  const q = parsed.data;
  const bucket = bucketOf(c);
  const tenant = c.get('key').tenant;
  const all: FileObject[] = [];
  let cursor: string | undefined;
  do {
    const page = await r2(() => bucket.list({ prefix: `${tenant}/`, cursor, include: ['customMetadata'] } as R2ListOptions));
    for (const o of page.objects) all.push(fileObjectOf(o.key.slice(tenant.length + 1), o));
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  const sorted = all
    .filter((f) => q.purpose === undefined || f.purpose === q.purpose)
    .sort((a, b) => (a.created_at - b.created_at || a.id.localeCompare(b.id)) * (q.order === 'asc' ? 1 : -1));
  const start = q.after === undefined ? 0 : sorted.findIndex((f) => f.id === q.after) + 1;
  const data = start === 0 && q.after !== undefined ? [] : sorted.slice(start, start + q.limit);
  return c.json({ object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: start + q.limit < sorted.length });
});

files.get('/:id', async (c) => c.json((await headFile(bucketOf(c), c.get('key').tenant, c.req.param('id'))).object));

files.get('/:id/content', async (c) => {
  const id = c.req.param('id');
  if (!FILE_ID_RE.test(id)) throw notFound(id);
  const body = await r2(() => bucketOf(c).get(fileKey(c.get('key').tenant, id)));
  if (!body) throw notFound(id);
  return new Response(body.body, { headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.size) } });
});

files.delete('/:id', async (c) => {
  const id = c.req.param('id');
  const bucket = bucketOf(c);
  await headFile(bucket, c.get('key').tenant, id);
  await r2(() => bucket.delete(fileKey(c.get('key').tenant, id)));
  return c.json({ id, object: 'file', deleted: true });
});
