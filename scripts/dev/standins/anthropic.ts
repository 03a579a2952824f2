import type { ServerResponse } from 'node:http';
import { ANSWER_TOKENS, json, parseBody, startFake, type Fake } from './common';
import { words } from './openai-api';

// A stand-in for Anthropic's Messages API (docs.anthropic.com/en/api/messages, /messages-streaming,
// /errors, /rate-limits), as strict as its documented contract:
// - POST /v1/messages with x-api-key (or the key as a bearer token, as @anthropic-ai/sdk 1.x sends
//   it) and a known anthropic-version; JSON body.
// - model (string), max_tokens (positive integer) and messages are required; messages must
//   start with "user" and alternate user/assistant; content is a string or an array of blocks
//   (text with non-empty text, image with a base64 or url source, tool_use, tool_result); a
//   tool_result must answer a tool_use id of the assistant turn before it; system is a string or
//   text blocks (never a role in messages); temperature in 0..1; tools need name and input_schema;
//   fields outside the documented ones are refused ("Extra inputs are not permitted").
// - Answer: {id, type: "message", role, model, content, stop_reason, stop_sequence, usage
//   {input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens}}.
// - stream: SSE events message_start, content_block_start, ping, content_block_delta
//   (text_delta, input_json_delta), content_block_stop, message_delta (stop_reason, usage),
//   message_stop.
// - Errors: {"type": "error", "error": {"type", "message"}} (invalid_request_error 400,
//   authentication_error 401, not_found_error 404, rate_limit_error 429 with retry-after).
// - Every answer carries anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset} and request-id.
// The model answers ANSWER_TOKENS (cut at max_tokens: stop_reason "max_tokens"); with tools and
// no tool_result in the last turn it calls the first tool (or tool_choice's) with {"query": "hello"}.
// input_tokens counts the words of system and messages. Markers in the last user text:
//   [429]           rate limited (rate_limit_error, retry-after 30, requests remaining 0)
//   [cached]        10 prompt tokens read from the cache, 4 written to it (not in input_tokens)
//   [overloaded]    529 overloaded_error
//   [stream-error]  stream: one text delta, then an error event

export interface AnthropicFakeOptions {
  api_key: string;
  /** Requests left in the window (anthropic-ratelimit-requests-remaining); default 1000 of 1000. */
  remaining_requests?: number;
}

type Body = Record<string, any>;

export function startAnthropicFake(opts: AnthropicFakeOptions): Promise<Fake> {
  let remaining = opts.remaining_requests ?? 1000;
  const limits = (left: number, resetInS = 1) => ({
    'anthropic-ratelimit-requests-limit': '1000',
    'anthropic-ratelimit-requests-remaining': String(Math.max(0, left)),
    'anthropic-ratelimit-requests-reset': new Date(Date.now() + resetInS * 1000).toISOString(),
    'anthropic-ratelimit-tokens-limit': '400000',
    'anthropic-ratelimit-tokens-remaining': '399000',
    'anthropic-ratelimit-tokens-reset': new Date(Date.now() + 1000).toISOString(),
    'request-id': `req_${Math.random().toString(36).slice(2, 14)}`,
  });
  const fail = (res: ServerResponse, status: number, type: string, message: string, headers: Record<string, string> = {}) =>
    json(res, status, { type: 'error', error: { type, message } }, { ...limits(remaining), ...headers });

  return startFake((req, raw, res, ctx) => {
    const path = new URL(req.url ?? '/', ctx.url).pathname;
    // The documented x-api-key; @anthropic-ai/sdk 1.x sends the same key as a bearer token, which the API takes too.
    if (req.headers['x-api-key'] !== opts.api_key && req.headers.authorization !== `Bearer ${opts.api_key}`) return fail(res, 401, 'authentication_error', 'invalid x-api-key');
    if (!req.headers['anthropic-version']) return fail(res, 400, 'invalid_request_error', 'anthropic-version: header is required');
    if (!VERSIONS.has(String(req.headers['anthropic-version']))) return fail(res, 400, 'invalid_request_error', `anthropic-version: unknown version ${req.headers['anthropic-version']}`);
    if (req.method !== 'POST' || path !== '/v1/messages') return fail(res, 404, 'not_found_error', `Not Found: ${req.method} ${path}`);
    if (!String(req.headers['content-type'] ?? '').startsWith('application/json')) return fail(res, 400, 'invalid_request_error', 'content-type must be application/json');
    const b = parseBody(raw);
    if (!b) return fail(res, 400, 'invalid_request_error', 'request body is not valid JSON');
    const problem = validate(b);
    if (problem) return fail(res, 400, 'invalid_request_error', problem);

    const messages = b.messages as Body[];
    const lastUser = messages.at(-1)!;
    const lastText = blocksOf(lastUser.content).filter((c) => c.type === 'text').map((c) => c.text as string).join(' ');
    if (lastText.includes('[overloaded]')) return fail(res, 529, 'overloaded_error', 'Overloaded');
    if (lastText.includes('[429]') || remaining <= 0) {
      return fail(res, 429, 'rate_limit_error', 'Number of requests has exceeded your rate limit.', { ...limits(0, 30), 'retry-after': '30' });
    }
    remaining--;

    const systemText = typeof b.system === 'string' ? b.system : Array.isArray(b.system) ? b.system.map((s: Body) => s.text).join(' ') : '';
    const cached = lastText.includes('[cached]');
    const input = words(systemText) + messages.reduce((n, m) => n + blocksOf(m.content).reduce((k, c) => k + words(String(c.text ?? (typeof c.content === 'string' ? c.content : ''))), 0), 0);
    const usage = { input_tokens: input, output_tokens: 0, cache_creation_input_tokens: cached ? 4 : 0, cache_read_input_tokens: cached ? 10 : 0 };
    const tools = Array.isArray(b.tools) ? (b.tools as Body[]) : [];
    const answersTool = blocksOf(lastUser.content).some((c) => c.type === 'tool_result');
    const callTool = tools.length > 0 && !answersTool && b.tool_choice?.type !== 'none';
    const toolName = String(b.tool_choice?.type === 'tool' ? b.tool_choice.name : tools[0]?.name ?? '');
    const tokens = ANSWER_TOKENS.slice(0, b.max_tokens);
    const toolUse = { type: 'tool_use', id: `toolu_${Math.random().toString(36).slice(2, 12)}`, name: toolName, input: { query: 'hello' } };
    const stop = callTool ? 'tool_use' : tokens.length < ANSWER_TOKENS.length ? 'max_tokens' : 'end_turn';
    usage.output_tokens = callTool ? 6 : tokens.length;
    const id = `msg_${Math.random().toString(36).slice(2, 14)}`;

    if (b.stream !== true) {
      const content = callTool ? [{ type: 'text', text: 'Let me look.' }, toolUse] : [{ type: 'text', text: tokens.join('') }];
      return json(res, 200, { id, type: 'message', role: 'assistant', model: b.model, content, stop_reason: stop, stop_sequence: null, usage }, limits(remaining));
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...limits(remaining) });
    const event = (type: string, data: Body) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
    event('message_start', { message: { id, type: 'message', role: 'assistant', model: b.model, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } } });
    event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } });
    event('ping', {});
    if (lastText.includes('[stream-error]')) {
      event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: tokens[0] } });
      event('error', { error: { type: 'overloaded_error', message: 'Overloaded' } });
      return void res.end();
    }
    if (callTool) {
      event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Let me look.' } });
      event('content_block_stop', { index: 0 });
      event('content_block_start', { index: 1, content_block: { ...toolUse, input: {} } });
      for (const piece of ['{"query"', ': "hello"}']) event('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: piece } });
      event('content_block_stop', { index: 1 });
    } else {
      for (const t of tokens) event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: t } });
      event('content_block_stop', { index: 0 });
    }
    event('message_delta', { delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: usage.output_tokens } });
    event('message_stop', {});
    res.end();
  });
}

/** 2023-06-01, the documented one the router sends by default; 2026-10-21, the one @anthropic-ai/sdk 1.x sends. */
const VERSIONS = new Set(['2023-06-01', '2026-10-21']);
const FIELDS = new Set(['model', 'max_tokens', 'messages', 'system', 'temperature', 'top_p', 'top_k', 'stop_sequences', 'stream', 'tools', 'tool_choice', 'metadata', 'thinking', 'service_tier']);
const BLOCK_TYPES = new Set(['text', 'image', 'tool_use', 'tool_result', 'document', 'thinking']);

function blocksOf(content: unknown): Body[] {
  return typeof content === 'string' ? [{ type: 'text', text: content }] : Array.isArray(content) ? (content as Body[]) : [];
}

/** The first way the request breaks the documented contract, or null. */
function validate(b: Body): string | null {
  for (const k of Object.keys(b)) if (!FIELDS.has(k)) return `${k}: Extra inputs are not permitted`;
  if (typeof b.model !== 'string' || !b.model) return 'model: Field required';
  if (b.max_tokens === undefined) return 'max_tokens: Field required';
  if (!Number.isInteger(b.max_tokens) || b.max_tokens < 1) return 'max_tokens: Input should be a valid integer greater than or equal to 1';
  if (!Array.isArray(b.messages) || b.messages.length === 0) return 'messages: at least one message is required';
  if (b.system !== undefined && typeof b.system !== 'string' && !(Array.isArray(b.system) && b.system.every((s: Body) => s?.type === 'text' && typeof s.text === 'string'))) return 'system: Input should be a valid string or list of text blocks';
  if (b.temperature !== undefined && !(typeof b.temperature === 'number' && b.temperature >= 0 && b.temperature <= 1)) return 'temperature: Input should be less than or equal to 1';
  if (b.stop_sequences !== undefined && !(Array.isArray(b.stop_sequences) && b.stop_sequences.every((s: unknown) => typeof s === 'string'))) return 'stop_sequences: Input should be a valid list of strings';
  for (const [i, t] of ((b.tools ?? []) as Body[]).entries()) {
    if (typeof t?.name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(t.name)) return `tools.${i}.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'`;
    if (!t.input_schema || typeof t.input_schema !== 'object') return `tools.${i}.input_schema: Field required`;
  }
  if (b.tool_choice !== undefined && !['auto', 'any', 'tool', 'none'].includes(b.tool_choice?.type)) return 'tool_choice: Input tag does not match any of the expected tags';
  if (b.tool_choice?.type === 'tool' && typeof b.tool_choice.name !== 'string') return 'tool_choice.name: Field required';
  let toolUses = new Set<string>();
  for (const [i, m] of (b.messages as Body[]).entries()) {
    if (m?.role !== 'user' && m?.role !== 'assistant') return `messages.${i}.role: Input should be 'user' or 'assistant'`;
    if (i === 0 && m.role !== 'user') return 'messages: first message must use the "user" role';
    if (i > 0 && (b.messages as Body[])[i - 1]!.role === m.role) return 'messages: roles must alternate between "user" and "assistant", but found multiple "' + m.role + '" roles in a row';
    if (typeof m.content !== 'string' && !Array.isArray(m.content)) return `messages.${i}.content: Input should be a valid string or list`;
    if (typeof m.content === 'string' && m.content === '' && i < b.messages.length - 1) return `messages.${i}: all messages must have non-empty content except for the optional final assistant message`;
    const uses = new Set<string>();
    for (const [j, c] of blocksOf(m.content).entries()) {
      const at = `messages.${i}.content.${j}`;
      if (!BLOCK_TYPES.has(c?.type)) return `${at}: Input tag '${String(c?.type)}' found using 'type' does not match any of the expected tags`;
      if (c.type === 'text' && (typeof c.text !== 'string' || c.text === '')) return `${at}.text: text content blocks must be non-empty`;
      if (c.type === 'image') {
        const s = c.source;
        const ok = (s?.type === 'base64' && /^image\/(jpeg|png|gif|webp)$/.test(s.media_type) && typeof s.data === 'string' && s.data.length > 0) || (s?.type === 'url' && /^https?:\/\//.test(String(s.url)));
        if (!ok) return `${at}.source: invalid image source`;
      }
      if (c.type === 'tool_use') {
        if (m.role !== 'assistant') return `${at}: tool_use blocks are only allowed in assistant messages`;
        if (typeof c.id !== 'string' || typeof c.name !== 'string' || typeof c.input !== 'object' || c.input === null || Array.isArray(c.input)) return `${at}: tool_use needs id, name and an object input`;
        uses.add(c.id);
      }
      if (c.type === 'tool_result') {
        if (m.role !== 'user') return `${at}: tool_result blocks are only allowed in user messages`;
        if (!toolUses.has(c.tool_use_id)) return `${at}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${String(c.tool_use_id)}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`;
      }
    }
    toolUses = uses;
  }
  if ((b.messages as Body[]).at(-1)!.role !== 'user') return 'this stand-in does not continue a prefilled assistant turn';
  return null;
}
