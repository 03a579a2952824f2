import type { BatchConfig } from '../config/batch';
import { errors } from '../http/errors';
import { BATCH_ENDPOINTS, type BatchEndpoint, type BatchError } from '../protocol/batch';

/** One input line as a batch runs it. */
export interface BatchLine {
  custom_id: string;
  /** 1-based line number in the file. */
  line: number;
  body: Record<string, unknown> & { model: string };
}

/** Errors listed in a failed batch (OpenAI lists a bounded number too). */
const MAX_LISTED_ERRORS = 100;
const MAX_CUSTOM_ID = 512;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * POST /v1/files with purpose "batch": the file must be JSONL within [batch] limits, every line a
 * JSON object. A 400 names the first bad line. Returns the parsed lines (blank lines skipped, numbered as in the file).
 */
export function parseJsonl(text: string, cfg: BatchConfig): Array<{ line: number; value: Record<string, unknown> }> {
  const out: Array<{ line: number; value: Record<string, unknown> }> = [];
  const enc = new TextEncoder();
  const rows = text.split('\n');
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!.replace(/\r$/, '');
    if (row.trim() === '') continue;
    if (out.length >= cfg.max_lines) throw errors.badRequest(`The file has more than ${cfg.max_lines} lines ([batch].max_lines).`, 'file', 'invalid_file');
    if (row.length > cfg.max_line_bytes / 3 && enc.encode(row).byteLength > cfg.max_line_bytes) throw errors.badRequest(`Line ${i + 1} is larger than ${cfg.max_line_bytes} bytes ([batch].max_line_bytes).`, 'file', 'invalid_file');
    let value: unknown;
    try {
      value = JSON.parse(row);
    } catch {
      throw errors.badRequest(`Line ${i + 1} is not valid JSON; a batch file is JSONL (one JSON object per line).`, 'file', 'invalid_file');
    }
    if (!isObject(value)) throw errors.badRequest(`Line ${i + 1} is not a JSON object.`, 'file', 'invalid_file');
    out.push({ line: i + 1, value });
  }
  if (out.length === 0) throw errors.badRequest('The file has no lines; a batch file is JSONL (one JSON object per line).', 'file', 'invalid_file');
  return out;
}

/**
 * A batch's input lines, checked as OpenAI checks them when a batch is validated: custom_id a
 * unique string, method POST, url the batch's endpoint, body an object with a model (and no
 * stream). Any error fails the whole batch, listed in its `errors` (line numbers as in the file).
 */
export function validateLines(rows: Array<{ line: number; value: Record<string, unknown> }>, endpoint: BatchEndpoint): { lines: BatchLine[]; errors: BatchError[] } {
  const seen = new Set<string>();
  const lines: BatchLine[] = [];
  const errs: BatchError[] = [];
  const fail = (line: number, code: string, message: string, param: string | null) => {
    if (errs.length < MAX_LISTED_ERRORS) errs.push({ code, message, param, line });
  };
  for (const { line, value } of rows) {
    const { custom_id: id, method, url, body } = value;
    if (typeof id !== 'string' || id.length === 0 || id.length > MAX_CUSTOM_ID) {
      fail(line, 'invalid_custom_id', `custom_id must be a non-empty string of at most ${MAX_CUSTOM_ID} characters.`, 'custom_id');
      continue;
    }
    if (seen.has(id)) {
      fail(line, 'duplicate_custom_id', `The custom_id "${id.slice(0, 64)}" appears more than once; each request needs its own.`, 'custom_id');
      continue;
    }
    seen.add(id);
    if (method !== 'POST') fail(line, 'invalid_method', 'method must be "POST".', 'method');
    else if (typeof url !== 'string' || !(url in BATCH_ENDPOINTS)) fail(line, 'invalid_url', `url must be one of ${Object.keys(BATCH_ENDPOINTS).join(', ')}.`, 'url');
    else if (url !== endpoint) fail(line, 'mismatched_url', `The url "${url}" differs from the batch's endpoint "${endpoint}".`, 'url');
    else if (!isObject(body)) fail(line, 'invalid_body', 'body must be a JSON object.', 'body');
    else if (typeof body.model !== 'string' || body.model === '') fail(line, 'missing_required_parameter', 'body.model is required.', 'body.model');
    else if (body.stream === true) fail(line, 'invalid_body', 'Streaming is not supported in a batch (body.stream must not be true).', 'body.stream');
    else lines.push({ custom_id: id, line, body: body as BatchLine['body'] });
  }
  return { lines, errors: errs };
}
