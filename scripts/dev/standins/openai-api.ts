import type { IncomingMessage, ServerResponse } from 'node:http';
import { ANSWER_TOKENS, json, parseBody, startFake, type Fake } from './common';

// Stand-ins for hosted APIs that speak OpenAI's format: OpenAI itself (and any compatible host),
// Azure OpenAI. Vertex AI's OpenAI-compatible endpoint uses the same engine (vertex.ts).
// As documented at platform.openai.com/docs/api-reference/chat and …/guides/rate-limits:
// - POST /v1/chat/completions: model and a non-empty messages array are required; roles are
//   system, developer, user, assistant, tool; a tool message must answer a tool_call id of an
//   earlier assistant message; stream_options only with stream; n must be 1 here.
//   Answer: chat.completion with usage (prompt_tokens_details.cached_tokens); with stream: SSE
//   chunks, the usage chunk (choices []) when stream_options.include_usage, then [DONE].
// - POST /v1/embeddings: {input, model} → a list of embeddings.
// - Errors: {"error": {"message", "type", "param", "code"}}; 401 invalid_api_key.
// - Every answer carries x-ratelimit-{limit,remaining,reset}-{requests,tokens}; a request past
//   the limit is 429 rate_limit_exceeded with Retry-After.
// The model answers ANSWER_TOKENS (cut at max_tokens / max_completion_tokens). With tools, and
// the last message not a tool result, it calls the first tool (or the one tool_choice names)
// with {"query": "hello"}. prompt_tokens counts the words of every message.
// Markers in the last message:
//   [429]      rate limited: 429, remaining requests 0, Retry-After 20 s
//   [cached]   8 of the prompt tokens are reported as cached

export interface OpenAIEngineOptions {
  /** Requests allowed per window (x-ratelimit-limit-requests); default 10,000. */
  limit_requests?: number;
  /** Requests left at the start; default limit_requests. */
  remaining_requests?: number;
  /** x-ratelimit-reset-requests on answers; default "1s". */
  reset_requests?: string;
}

export interface Engine {
  /** Answers one chat or embeddings call (already authenticated). */
  handle(kind: 'chat' | 'embeddings', req: IncomingMessage, body: string, res: ServerResponse): void;
}

type Body = Record<string, any>;
const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool']);

export function openAIEngine(opts: OpenAIEngineOptions = {}): Engine {
  const limit = opts.limit_requests ?? 10_000;
  let remaining = opts.remaining_requests ?? limit;
  const limitHeaders = (left: number, reset = opts.reset_requests ?? '1s'): Record<string, string> => ({
    'x-ratelimit-limit-requests': String(limit),
    'x-ratelimit-remaining-requests': String(Math.max(0, left)),
    'x-ratelimit-reset-requests': reset,
    'x-ratelimit-limit-tokens': '1000000',
    'x-ratelimit-remaining-tokens': '999000',
    'x-ratelimit-reset-tokens': '6m0s',
  });
  const error = (res: ServerResponse, status: number, message: string, type: string, code: string | null, param: string | null = null, headers: Record<string, string> = {}) =>
    json(res, status, { error: { message, type, param, code } }, headers);

  return {
    handle(kind, _req, raw, res) {
      const b = parseBody(raw);
      if (!b) return error(res, 400, 'We could not parse the JSON body of your request.', 'invalid_request_error', null);
      if (typeof b.model !== 'string' || b.model === '') return error(res, 400, "you must provide a model parameter", 'invalid_request_error', null, 'model');
      if (kind === 'embeddings') {
        const inputs = typeof b.input === 'string' ? [b.input] : Array.isArray(b.input) ? b.input : null;
        if (!inputs || inputs.length === 0) return error(res, 400, "'input' is a required property", 'invalid_request_error', null, 'input');
        remaining--;
        const data = inputs.map((t: unknown, index: number) => ({ object: 'embedding', index, embedding: [0.1, 0.2, String(t).length / 100] }));
        const prompt = inputs.reduce((n: number, t: unknown) => n + words(String(t)), 0);
        return json(res, 200, { object: 'list', data, model: b.model, usage: { prompt_tokens: prompt, total_tokens: prompt } }, limitHeaders(remaining));
      }

      const messages = b.messages;
      if (!Array.isArray(messages) || messages.length === 0) return error(res, 400, "'messages' must contain at least one message", 'invalid_request_error', null, 'messages');
      const toolIds = new Set<string>();
      for (const [i, m] of (messages as Body[]).entries()) {
        if (!m || !ROLES.has(m.role)) return error(res, 400, `Invalid value for 'messages[${i}].role'`, 'invalid_request_error', 'invalid_value', `messages[${i}].role`);
        for (const call of Array.isArray(m.tool_calls) ? (m.tool_calls as Body[]) : []) toolIds.add(String(call.id));
        if (m.role === 'tool' && !toolIds.has(String(m.tool_call_id))) {
          return error(res, 400, "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.", 'invalid_request_error', null, `messages[${i}].role`);
        }
      }
      if (b.stream_options !== undefined && b.stream_options !== null && b.stream !== true) {
        return error(res, 400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.", 'invalid_request_error', null, 'stream_options');
      }
      if (typeof b.n === 'number' && b.n !== 1) return error(res, 400, 'this stand-in answers one choice', 'invalid_request_error', null, 'n');
      const last = messages.at(-1) as Body;
      const lastText = textOf(last.content);
      if (lastText.includes('[429]') || remaining <= 0) {
        return error(res, 429, 'Rate limit reached for requests per min (RPM). Please try again in 20s.', 'requests', 'rate_limit_exceeded', null, { ...limitHeaders(0, '20s'), 'retry-after': '20' });
      }
      remaining--;
      const max = typeof b.max_completion_tokens === 'number' ? b.max_completion_tokens : typeof b.max_tokens === 'number' ? b.max_tokens : ANSWER_TOKENS.length;
      const tokens = ANSWER_TOKENS.slice(0, Math.max(0, max));
      const prompt = (messages as Body[]).reduce((n, m) => n + words(textOf(m.content)), 0);
      const cached = lastText.includes('[cached]') ? Math.min(8, prompt) : 0;
      const tools = Array.isArray(b.tools) ? (b.tools as Body[]) : [];
      const callTool = tools.length > 0 && last.role !== 'tool' && b.tool_choice !== 'none';
      const toolName = String(b.tool_choice?.function?.name ?? tools[0]?.function?.name ?? '');
      const call = { id: `call_${Math.random().toString(36).slice(2, 10)}`, type: 'function', function: { name: toolName, arguments: '{"query":"hello"}' } };
      const completion = callTool ? 5 : tokens.length;
      const usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: cached } };
      const finish = callTool ? 'tool_calls' : tokens.length < ANSWER_TOKENS.length ? 'length' : 'stop';
      const id = `chatcmpl-${Math.random().toString(36).slice(2, 12)}`;
      const created = Math.floor(Date.now() / 1000);
      const base = { id, created, model: b.model, system_fingerprint: 'fp_standin' };

      if (b.stream !== true) {
        const message = callTool ? { role: 'assistant', content: null, refusal: null, tool_calls: [call] } : { role: 'assistant', content: tokens.join(''), refusal: null };
        return json(res, 200, { ...base, object: 'chat.completion', choices: [{ index: 0, message, logprobs: null, finish_reason: finish }], usage }, limitHeaders(remaining));
      }
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', ...limitHeaders(remaining) });
      const chunk = (delta: Body, finish_reason: string | null = null) =>
        res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, logprobs: null, finish_reason }] })}\n\n`);
      chunk({ role: 'assistant', content: '' });
      if (callTool) {
        chunk({ tool_calls: [{ index: 0, id: call.id, type: 'function', function: { name: toolName, arguments: '' } }] });
        for (const piece of ['{"query"', ':"hello"}']) chunk({ tool_calls: [{ index: 0, function: { arguments: piece } }] });
      } else {
        for (const t of tokens) chunk({ content: t });
      }
      chunk({}, finish);
      if (b.stream_options?.include_usage === true) res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [], usage })}\n\n`);
      res.end('data: [DONE]\n\n');
    },
  };
}

export interface OpenAIFakeOptions extends OpenAIEngineOptions {
  /** The bearer key required on every call. */
  api_key: string;
  /** When set, OpenAI-Organization / OpenAI-Project must be these. */
  organization?: string;
  project?: string;
}

/** OpenAI's API at /v1/…, bearer auth, optional organization and project headers. */
export function startOpenAIFake(opts: OpenAIFakeOptions): Promise<Fake> {
  const engine = openAIEngine(opts);
  return startFake((req, body, res, ctx) => {
    const path = new URL(req.url ?? '/', ctx.url).pathname;
    if (req.headers.authorization !== `Bearer ${opts.api_key}`) {
      return json(res, 401, { error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    }
    if (opts.organization && req.headers['openai-organization'] !== opts.organization) {
      return json(res, 401, { error: { message: 'No such organization.', type: 'invalid_request_error', param: null, code: 'invalid_organization' } });
    }
    if (opts.project && req.headers['openai-project'] !== opts.project) {
      return json(res, 401, { error: { message: 'The project does not exist or the key has no access to it.', type: 'invalid_request_error', param: null, code: 'invalid_project' } });
    }
    if (req.method === 'POST' && path === '/v1/chat/completions') return engine.handle('chat', req, body, res);
    if (req.method === 'POST' && path === '/v1/embeddings') return engine.handle('embeddings', req, body, res);
    json(res, 404, { error: { message: `Invalid URL (${req.method} ${path})`, type: 'invalid_request_error', param: null, code: null } });
  });
}

export interface AzureFakeOptions extends OpenAIEngineOptions {
  api_key: string;
  /** Deployments this resource has. */
  deployments: string[];
  /** api-version values it accepts (default: 2024-10-21 and 2025-04-01-preview). */
  api_versions?: string[];
}

/**
 * Azure OpenAI (learn.microsoft.com/azure/ai-services/openai/reference): POST
 * /openai/deployments/{deployment}/chat/completions|embeddings?api-version=…, the key in the
 * api-key header. A missing or unknown api-version is 404 (Azure's "Resource not found"); a
 * wrong key 401 {"error": {"code": "401", "message"}}; an unknown deployment 404 DeploymentNotFound.
 */
export function startAzureFake(opts: AzureFakeOptions): Promise<Fake> {
  const engine = openAIEngine(opts);
  const versions = new Set(opts.api_versions ?? ['2024-10-21', '2025-04-01-preview']);
  return startFake((req, body, res, ctx) => {
    const url = new URL(req.url ?? '/', ctx.url);
    if (req.headers['api-key'] !== opts.api_key) {
      return json(res, 401, { error: { code: '401', message: 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.' } });
    }
    const version = url.searchParams.get('api-version');
    if (!version) return json(res, 404, { error: { code: '404', message: 'Resource not found' } });
    if (!versions.has(version)) return json(res, 400, { error: { code: 'BadRequest', message: `API version not supported: ${version}` } });
    const m = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|embeddings)$/.exec(url.pathname);
    if (req.method !== 'POST' || !m) return json(res, 404, { error: { code: '404', message: 'Resource not found' } });
    if (!opts.deployments.includes(decodeURIComponent(m[1]!))) {
      return json(res, 404, { error: { code: 'DeploymentNotFound', message: 'The API deployment for this resource does not exist.' } });
    }
    engine.handle(m[2] === 'embeddings' ? 'embeddings' : 'chat', req, body, res);
  });
}

export function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return (content as Body[]).map((p) => (typeof p?.text === 'string' ? p.text : '')).join(' ');
}

export const words = (text: string) => text.split(/\s+/).filter(Boolean).length;
