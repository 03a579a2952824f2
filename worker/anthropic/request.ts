import { z } from 'zod';
import { errors } from '../http/errors';

// POST /v1/messages request bodies (Anthropic's Messages API), translated to a chat completion:
// system prompt, text and image blocks, client tools and their results, stop sequences.
// Server tools (web search, code execution…), documents and files get a 400 that says so.

const text = z.string();
const cacheControl = { cache_control: z.unknown().optional() };
const textBlock = z.looseObject({ type: z.literal('text'), text, ...cacheControl });
const imageBlock = z.looseObject({
  type: z.literal('image'),
  source: z.discriminatedUnion('type', [
    z.looseObject({ type: z.literal('base64'), media_type: z.string().min(1), data: z.string().min(1) }),
    z.looseObject({ type: z.literal('url'), url: z.string().min(1) }),
  ]),
  ...cacheControl,
});
const toolUseBlock = z.looseObject({ type: z.literal('tool_use'), id: z.string().min(1), name: z.string().min(1), input: z.unknown(), ...cacheControl });
const toolResultBlock = z.looseObject({
  type: z.literal('tool_result'),
  tool_use_id: z.string().min(1),
  content: z.union([text, z.array(z.discriminatedUnion('type', [textBlock, imageBlock]))]).optional(),
  is_error: z.boolean().optional(),
  ...cacheControl,
});
/** Thinking blocks a client sends back from earlier turns: the models behind the router write none; dropped. */
const thinkingBlock = z.looseObject({ type: z.enum(['thinking', 'redacted_thinking']) });
const KNOWN = new Set(['text', 'image', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking']);
/** Any other block type (document, server tool blocks…): parsed so the 400 can name it. */
const otherBlock = z.looseObject({ type: z.string().refine((t) => !KNOWN.has(t)) });

const block = z.union([textBlock, imageBlock, toolUseBlock, toolResultBlock, thinkingBlock, otherBlock]);
type Block = z.infer<typeof block>;

const message = z.looseObject({ role: z.enum(['user', 'assistant']), content: z.union([text, z.array(block)]) });

const tool = z.looseObject({
  type: z.string().optional(),
  name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, "_" or "-"'),
  description: z.string().optional(),
  input_schema: z.record(z.string(), z.unknown()).optional(),
});

export const messagesRequestSchema = z.looseObject({
  model: z.string().min(1),
  max_tokens: z.number().int().min(1),
  messages: z.array(message).min(1),
  system: z.union([text, z.array(textBlock)]).optional(),
  stop_sequences: z.array(z.string()).max(16).optional(),
  temperature: z.number().min(0).max(1).optional(),
  top_p: z.number().min(0).max(1).optional(),
  top_k: z.number().int().min(0).optional(),
  stream: z.boolean().optional(),
  metadata: z.looseObject({ user_id: z.string().max(256).nullish() }).optional(),
  tools: z.array(tool).max(128).optional(),
  tool_choice: z
    .discriminatedUnion('type', [
      z.looseObject({ type: z.literal('auto'), disable_parallel_tool_use: z.boolean().optional() }),
      z.looseObject({ type: z.literal('any'), disable_parallel_tool_use: z.boolean().optional() }),
      z.looseObject({ type: z.literal('tool'), name: z.string().min(1), disable_parallel_tool_use: z.boolean().optional() }),
      z.looseObject({ type: z.literal('none') }),
    ])
    .optional(),
  /** Structured output: format → the chat response_format (json_schema); effort is ignored. */
  output_config: z.looseObject({ format: z.looseObject({ type: z.literal('json_schema'), schema: z.record(z.string(), z.unknown()) }).nullish() }).optional(),
  /** Accepted and ignored: the models behind the router do not think in separate blocks. */
  thinking: z.unknown().optional(),
});
export type MessagesRequest = z.infer<typeof messagesRequestSchema>;

type ChatMessage = Record<string, unknown> & { role: string };

const unsupportedBlock = (type: string, where: string) => errors.badRequest(`Content blocks of type '${type}' are not supported by the router.`, where, 'unsupported_parameter');

function imageUrl(b: Extract<Block, { type: 'image' }>): string {
  return b.source.type === 'base64' ? `data:${b.source.media_type};base64,${b.source.data}` : b.source.url;
}

/** A user turn: its tool results first (as tool messages, in order), then its text and images (one user message). */
function userTurn(content: Block[], where: string, out: ChatMessage[]): void {
  const parts: Record<string, unknown>[] = [];
  content.forEach((b, i) => {
    const at = `${where}.content[${i}]`;
    if (b.type === 'text') parts.push({ type: 'text', text: (b as { text: string }).text });
    else if (b.type === 'image') parts.push({ type: 'image_url', image_url: { url: imageUrl(b as Extract<Block, { type: 'image' }>) } });
    else if (b.type === 'tool_result') {
      const r = b as z.infer<typeof toolResultBlock>;
      // A chat tool message holds text only.
      if (Array.isArray(r.content) && r.content.some((x) => x.type === 'image')) throw errors.badRequest('Images in tool_result blocks are not supported by the router.', at, 'unsupported_parameter');
      const result = typeof r.content === 'string' ? r.content : (r.content ?? []).map((x) => (x.type === 'text' ? x.text : '')).join('');
      out.push({ role: 'tool', tool_call_id: r.tool_use_id, content: r.is_error ? `Error: ${result}` : result });
    } else throw unsupportedBlock(b.type, at);
  });
  if (parts.length === 0) return;
  out.push({ role: 'user', content: parts.every((p) => p.type === 'text') ? parts.map((p) => p.text).join('') : parts });
}

function assistantTurn(content: Block[], where: string, out: ChatMessage[]): void {
  let textOut = '';
  const calls: unknown[] = [];
  content.forEach((b, i) => {
    if (b.type === 'text') textOut += (b as { text: string }).text;
    else if (b.type === 'tool_use') {
      const t = b as z.infer<typeof toolUseBlock>;
      calls.push({ id: t.id, type: 'function', function: { name: t.name, arguments: JSON.stringify(t.input ?? {}) } });
    } else if (b.type !== 'thinking' && b.type !== 'redacted_thinking') throw unsupportedBlock(b.type, `${where}.content[${i}]`);
  });
  out.push({ role: 'assistant', content: textOut === '' && calls.length ? null : textOut, ...(calls.length ? { tool_calls: calls } : {}) });
}

/** The chat-completions body for a Messages request (already validated), or a 400 for what cannot be served. */
export function toChatBody(body: MessagesRequest): Record<string, unknown> & { model: string } {
  const messages: ChatMessage[] = [];
  const system = typeof body.system === 'string' ? body.system : (body.system ?? []).map((b) => b.text).join('\n');
  if (system) messages.push({ role: 'system', content: system });
  body.messages.forEach((m, i) => {
    const content: Block[] = typeof m.content === 'string' ? [{ type: 'text', text: m.content }] : m.content;
    if (m.role === 'user') userTurn(content, `messages[${i}]`, messages);
    else assistantTurn(content, `messages[${i}]`, messages);
  });
  if (!messages.some((m) => m.role !== 'system')) throw errors.badRequest("'messages' has no content to answer.", 'messages', 'invalid_value');
  const chat: Record<string, unknown> & { model: string } = { model: body.model, messages, max_tokens: body.max_tokens };
  if (body.tools?.length) {
    chat.tools = body.tools.map((t, i) => {
      if (t.type !== undefined && t.type !== 'custom') throw errors.badRequest(`Tool type '${t.type}' is not supported by the router: only client tools (name, description, input_schema).`, `tools[${i}].type`, 'unsupported_parameter');
      return { type: 'function', function: { name: t.name, ...(t.description ? { description: t.description } : {}), parameters: t.input_schema ?? { type: 'object', properties: {} } } };
    });
  }
  const choice = body.tool_choice;
  if (choice) {
    chat.tool_choice = choice.type === 'auto' ? 'auto' : choice.type === 'any' ? 'required' : choice.type === 'none' ? 'none' : { type: 'function', function: { name: choice.name } };
    if ('disable_parallel_tool_use' in choice && choice.disable_parallel_tool_use === true && body.tools?.length) chat.parallel_tool_calls = false;
  }
  const format = body.output_config?.format;
  if (format) chat.response_format = { type: 'json_schema', json_schema: { name: 'output', schema: format.schema } };
  if (body.stop_sequences?.length) chat.stop = body.stop_sequences;
  if (body.temperature !== undefined) chat.temperature = body.temperature;
  if (body.top_p !== undefined) chat.top_p = body.top_p;
  if (body.top_k !== undefined) chat.top_k = body.top_k;
  if (body.metadata?.user_id) chat.user = body.metadata.user_id;
  if (body.stream === true) {
    chat.stream = true;
    chat.stream_options = { include_usage: true }; // message_delta carries the usage
  }
  return chat;
}
