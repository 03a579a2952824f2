import { z } from 'zod';
import { errors } from '../../http/errors';

// POST /v1/responses request bodies (OpenAI's Responses API), the part the router can serve by
// translating to a chat completion: text and image input, function tools, structured output.
// Anything that needs state kept by the router (store: true, previous_response_id,
// item_reference, conversation, background) or a hosted tool gets a 400 that says so.

const text = z.string();
const inputText = z.looseObject({ type: z.literal('input_text'), text });
const outputText = z.looseObject({ type: z.literal('output_text'), text });
const refusal = z.looseObject({ type: z.literal('refusal'), refusal: text });
const inputImage = z.looseObject({
  type: z.literal('input_image'),
  image_url: z.string().min(1).nullish(),
  file_id: z.string().nullish(),
  detail: z.enum(['auto', 'low', 'high']).nullish(),
});
const inputFile = z.looseObject({ type: z.literal('input_file') });
const contentPart = z.discriminatedUnion('type', [inputText, outputText, refusal, inputImage, inputFile]);

const message = z.looseObject({
  type: z.literal('message').optional(),
  role: z.enum(['user', 'assistant', 'system', 'developer']),
  content: z.union([text, z.array(contentPart)]),
  id: z.string().nullish(),
  status: z.string().nullish(),
});
const functionCall = z.looseObject({
  type: z.literal('function_call'),
  call_id: z.string().min(1),
  name: z.string().min(1),
  arguments: z.string(),
  id: z.string().nullish(),
  status: z.string().nullish(),
});
const functionCallOutput = z.looseObject({
  type: z.literal('function_call_output'),
  call_id: z.string().min(1),
  output: z.union([text, z.array(contentPart)]),
  id: z.string().nullish(),
  status: z.string().nullish(),
});
/** Reasoning items a client sends back from earlier turns: the models behind the router write none; dropped. */
const reasoning = z.looseObject({ type: z.literal('reasoning') });
const itemReference = z.looseObject({ type: z.literal('item_reference'), id: z.string() });

const inputItem = z.union([functionCall, functionCallOutput, reasoning, itemReference, message]);

const functionTool = z.looseObject({
  type: z.literal('function'),
  name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 letters, digits, "_" or "-"'),
  description: z.string().nullish(),
  parameters: z.record(z.string(), z.unknown()).nullish(),
  strict: z.boolean().nullish(),
});
const tool = z.looseObject({ type: z.string() });

const textFormat = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('text') }),
  z.looseObject({ type: z.literal('json_object') }),
  z.looseObject({
    type: z.literal('json_schema'),
    name: z.string().min(1),
    schema: z.record(z.string(), z.unknown()),
    description: z.string().nullish(),
    strict: z.boolean().nullish(),
  }),
]);

export const responsesRequestSchema = z.looseObject({
  model: z.string().min(1),
  input: z.union([text, z.array(inputItem).min(1)]),
  instructions: z.string().nullish(),
  tools: z.array(tool).max(128).optional(),
  tool_choice: z
    .union([z.enum(['none', 'auto', 'required']), z.looseObject({ type: z.literal('function'), name: z.string() })])
    .optional(),
  parallel_tool_calls: z.boolean().nullish(),
  max_output_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  text: z.looseObject({ format: textFormat.optional(), verbosity: z.string().nullish() }).nullish(),
  stream: z.boolean().nullish(),
  store: z.boolean().nullish(),
  previous_response_id: z.string().nullish(),
  conversation: z.unknown().optional(),
  background: z.boolean().nullish(),
  user: z.string().max(256).optional(),
  metadata: z.record(z.string().max(64), z.string().max(512)).nullish(),
  truncation: z.enum(['auto', 'disabled']).nullish(),
});
export type ResponsesRequest = z.infer<typeof responsesRequestSchema>;
type FunctionTool = z.infer<typeof functionTool>;

const unsupported = (what: string, param: string) => errors.badRequest(`${what} The router keeps no responses or conversations: send the whole conversation in 'input', with store false or left out.`, param, 'unsupported_parameter');

/** The request's function tools; any other tool type is a 400. */
export function functionTools(body: ResponsesRequest): FunctionTool[] {
  return (body.tools ?? []).map((t, i) => {
    if (t.type !== 'function') throw errors.badRequest(`Tool type '${t.type}' is not supported by the router: only 'function' tools.`, `tools[${i}].type`, 'unsupported_parameter');
    const parsed = functionTool.safeParse(t);
    if (!parsed.success) throw errors.badRequest(`Invalid function tool: ${parsed.error.issues[0]?.message ?? 'invalid'}.`, `tools[${i}]`, 'invalid_value');
    return parsed.data;
  });
}

type ChatMessage = Record<string, unknown> & { role: string };

function partsToChat(parts: z.infer<typeof contentPart>[], where: string): { text: string; chat: Record<string, unknown>[]; images: boolean } {
  const chat: Record<string, unknown>[] = [];
  let images = false;
  parts.forEach((p, i) => {
    if (p.type === 'input_text' || p.type === 'output_text') chat.push({ type: 'text', text: p.text });
    else if (p.type === 'refusal') chat.push({ type: 'text', text: p.refusal });
    else if (p.type === 'input_image') {
      if (!p.image_url) throw errors.badRequest('Images by file_id are not supported by the router: send image_url (a URL or a data: URL).', `${where}.content[${i}]`, 'unsupported_parameter');
      images = true;
      chat.push({ type: 'image_url', image_url: { url: p.image_url, ...(p.detail ? { detail: p.detail } : {}) } });
    } else throw errors.badRequest('input_file parts are not supported by the router.', `${where}.content[${i}]`, 'unsupported_parameter');
  });
  return { text: chat.map((c) => (typeof c.text === 'string' ? c.text : '')).join(''), chat, images };
}

/** `input` and `instructions` as chat messages: consecutive function calls join one assistant message. */
function toMessages(body: ResponsesRequest): ChatMessage[] {
  const out: ChatMessage[] = [];
  if (body.instructions) out.push({ role: 'system', content: body.instructions });
  if (typeof body.input === 'string') {
    out.push({ role: 'user', content: body.input });
    return out;
  }
  body.input.forEach((item, i) => {
    const where = `input[${i}]`;
    if (item.type === 'reasoning') return;
    if (item.type === 'item_reference') throw unsupported('item_reference is not supported.', `${where}`);
    if (item.type === 'function_call') {
      const last = out[out.length - 1];
      const call = { id: item.call_id, type: 'function', function: { name: item.name, arguments: item.arguments } };
      if (last?.role === 'assistant') last.tool_calls = [...((last.tool_calls as unknown[] | undefined) ?? []), call];
      else out.push({ role: 'assistant', content: null, tool_calls: [call] });
      return;
    }
    if (item.type === 'function_call_output') {
      const content = typeof item.output === 'string' ? item.output : partsToChat(item.output, where).text;
      out.push({ role: 'tool', tool_call_id: item.call_id, content });
      return;
    }
    // A message (type "message" or none).
    const role = item.role === 'developer' ? 'system' : item.role;
    if (typeof item.content === 'string') {
      out.push({ role, content: item.content });
      return;
    }
    const parts = partsToChat(item.content, where);
    if (parts.images && role !== 'user') throw errors.badRequest('Images are allowed in user messages only.', where, 'invalid_value');
    out.push({ role, content: role === 'user' && parts.images ? parts.chat : parts.text });
  });
  if (!out.some((m) => m.role !== 'system')) throw errors.badRequest("'input' has no message to answer.", 'input', 'invalid_value');
  return leadingSystemAsOne(out);
}

/** `instructions` and the system/developer messages before the first turn as one system message: chat templates take one. */
function leadingSystemAsOne(messages: ChatMessage[]): ChatMessage[] {
  const first = messages.findIndex((m) => m.role !== 'system' || typeof m.content !== 'string');
  if (first <= 1) return messages;
  return [{ role: 'system', content: messages.slice(0, first).map((m) => m.content).join('\n\n') }, ...messages.slice(first)];
}

/** The chat-completions body for a Responses request (already validated), or a 400 for what cannot be served. */
export function toChatBody(body: ResponsesRequest): Record<string, unknown> & { model: string } {
  if (body.store === true) throw unsupported("'store: true' is not supported.", 'store');
  if (body.previous_response_id) throw unsupported("'previous_response_id' is not supported.", 'previous_response_id');
  if (body.conversation !== undefined && body.conversation !== null) throw unsupported("'conversation' is not supported.", 'conversation');
  if (body.background === true) throw errors.badRequest("'background: true' is not supported by the router.", 'background', 'unsupported_parameter');
  const tools = functionTools(body);
  const chat: Record<string, unknown> & { model: string } = { model: body.model, messages: toMessages(body) };
  if (tools.length) {
    chat.tools = tools.map((t) => ({
      type: 'function',
      function: { name: t.name, ...(t.description ? { description: t.description } : {}), ...(t.parameters ? { parameters: t.parameters } : {}), ...(typeof t.strict === 'boolean' ? { strict: t.strict } : {}) },
    }));
  }
  if (body.tool_choice !== undefined) chat.tool_choice = typeof body.tool_choice === 'string' ? body.tool_choice : { type: 'function', function: { name: body.tool_choice.name } };
  if (typeof body.parallel_tool_calls === 'boolean' && tools.length) chat.parallel_tool_calls = body.parallel_tool_calls;
  if (body.max_output_tokens != null) chat.max_tokens = body.max_output_tokens;
  if (body.temperature != null) chat.temperature = body.temperature;
  if (body.top_p != null) chat.top_p = body.top_p;
  if (body.user) chat.user = body.user;
  const format = body.text?.format;
  if (format?.type === 'json_object') chat.response_format = { type: 'json_object' };
  if (format?.type === 'json_schema') {
    chat.response_format = {
      type: 'json_schema',
      json_schema: { name: format.name, schema: format.schema, ...(format.description ? { description: format.description } : {}), ...(typeof format.strict === 'boolean' ? { strict: format.strict } : {}) },
    };
  }
  if (body.stream === true) {
    chat.stream = true;
    chat.stream_options = { include_usage: true }; // response.completed carries the usage
  }
  return chat;
}
