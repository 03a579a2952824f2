import type { z } from 'zod';
import { formatPath } from '../config/format-issues';
import { errors, RouterError } from './errors';
import { exceedsJsonDepth, MAX_JSON_DEPTH } from './json-depth';

/**
 * Reads a JSON body of at most `limit` bytes and validates it. Hono's bodyLimit middleware
 * fixes its limit when the app is built; ours comes from config at run time, so this reads the
 * stream itself and stops at the limit instead of buffering an oversized body.
 */
export async function readJsonBody<S extends z.ZodType>(request: Request, schema: S, limit: number): Promise<z.infer<S>> {
  const length = request.headers.get('content-length');
  const declared = length === null ? NaN : Number(length);
  if (declared > limit) {
    // Drained first (within bounds): answered while the client is still sending, the 413 would
    // often reach it as a connection reset instead (README "Security model").
    if (declared <= DRAIN_MAX_BYTES && request.body) await drain(request.body.getReader(), DRAIN_MAX_BYTES);
    throw errors.tooLarge(limit);
  }
  // With a declared length within the limit, the runtime's own reader is the fast path
  // (it cannot deliver more than the length); a chunked body is counted as it streams.
  let text: string;
  try {
    text = Number.isFinite(declared) ? await request.text() : await readText(request, limit);
  } catch (e) {
    if (e instanceof RouterError) throw e;
    // Only the client feeds the body: a read that fails is a client that left mid-upload.
    throw clientClosed();
  }
  if (text.trim() === '') throw errors.badRequest('The request body is empty; expected a JSON object.', null, 'invalid_json');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw errors.badRequest(`The request body is not valid JSON: ${(e as Error).message}`, null, 'invalid_json');
  }
  if (exceedsJsonDepth(value)) throw errors.badRequest(`The request body nests JSON more than ${MAX_JSON_DEPTH} levels deep.`, null, 'json_too_deep');
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw schemaError(parsed.error);
  return parsed.data;
}

/** A 400 naming the first offending field in `param`, as OpenAI does. */
export function schemaError(error: z.ZodError): RouterError {
  const issue = deepestIssue(error.issues[0]!);
  const param = issue.path.length ? formatPath('', issue.path).replace(/^\./, '') : null;
  const where = param ? `'${param}'` : 'the body';
  return errors.badRequest(`Invalid value for ${where}: ${issue.message}`, param, 'invalid_value');
}

// A union's issue nests the issues of each branch; the most specific one is the useful one.
function deepestIssue(issue: z.core.$ZodIssue): z.core.$ZodIssue {
  if (issue.code === 'invalid_union' && issue.errors.length) {
    const branches = issue.errors.map((branch) => branch[0]).filter((i): i is z.core.$ZodIssue => !!i);
    const best = branches.sort((a, b) => b.path.length - a.path.length)[0];
    if (best) return deepestIssue({ ...best, path: [...issue.path, ...best.path] });
  }
  return issue;
}

/**
 * An oversized body is read to its end (and thrown away) before the 413, up to this many bytes
 * in all and for this long: a client still sending when the answer comes and the connection
 * closes would often see ECONNRESET instead of the 413 (and an SDK would retry the upload).
 * Past either bound the answer goes at once.
 */
export const DRAIN_MAX_BYTES = 32 * 1024 * 1024;
export const DRAIN_MAX_MS = 10_000;

/** Reads and discards the rest of a body, within the bounds; then cancels what is left, if any. Never throws. */
async function drain(reader: ReadableStreamDefaultReader<Uint8Array>, maxBytes: number): Promise<void> {
  const timer = setTimeout(() => void reader.cancel().catch(() => {}), DRAIN_MAX_MS);
  try {
    for (let left = maxBytes; left > 0; ) {
      const { done, value } = await reader.read();
      if (done) return;
      left -= value.byteLength;
    }
    await reader.cancel();
  } catch {
    // The client left, or the timer cancelled the read: nothing more to drain.
  } finally {
    clearTimeout(timer);
  }
}

/** The client closed its connection before its body arrived: nobody reads this answer; logs and usage say client_closed. */
export const clientClosed = () => new RouterError(400, 'The client closed the connection before its request body arrived.', 'client_closed');

async function readText(request: Request, limit: number): Promise<string> {
  return new TextDecoder().decode(await readBounded(request, limit));
}

/** The body's bytes, counted as they stream: past `limit` the rest is drained (within bounds) and 413. */
async function readBounded(request: Request, limit: number): Promise<Uint8Array> {
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const bytes = await collectBounded(reader, limit);
  if (bytes === null) {
    await drain(reader, DRAIN_MAX_BYTES - limit);
    throw errors.tooLarge(limit);
  }
  return bytes;
}

/**
 * Reads a stream to its end, counting as it goes: its bytes, or null as soon as it passes `limit`
 * (the reader is then left where it stopped: the caller drains or cancels it).
 */
export async function collectBounded(reader: ReadableStreamDefaultReader<Uint8Array>, limit: number): Promise<Uint8Array | null> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) return null;
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const all = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.byteLength;
  }
  return all;
}

/**
 * A body of at most `limit` bytes, whatever it is (a multipart upload): 413 past it, whether the
 * length is declared or the body is chunked (an oversized declared one is drained first, as for
 * JSON); a client that leaves mid-upload is `client_closed`.
 */
export async function readBodyBytes(request: Request, limit: number): Promise<Uint8Array> {
  const length = request.headers.get('content-length');
  const declared = length === null ? NaN : Number(length);
  if (declared > limit) {
    if (declared <= DRAIN_MAX_BYTES && request.body) await drain(request.body.getReader(), DRAIN_MAX_BYTES);
    throw errors.tooLarge(limit);
  }
  try {
    return await readBounded(request, limit);
  } catch (e) {
    if (e instanceof RouterError) throw e;
    throw clientClosed();
  }
}
