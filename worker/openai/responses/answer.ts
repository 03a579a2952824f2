import type { ChatAnswer, ChatStreamSink } from '../chat-reader';
import type { Usage } from '../usage';
import { functionTools, type ResponsesRequest } from './request';

// A chat answer written as a Responses API `response` object, and a chat stream as the Responses
// API's typed events (response.created … response.completed), in the order OpenAI sends them.

const hex = () => crypto.randomUUID().replaceAll('-', '');
export const responseId = () => `resp_${hex()}`;

type Json = Record<string, unknown>;

function wireUsage(u: Usage): Json {
  return {
    input_tokens: u.prompt_tokens,
    input_tokens_details: { cached_tokens: u.cached_tokens ?? 0, cache_write_tokens: 0 },
    output_tokens: u.completion_tokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: u.total_tokens,
  };
}

const textPart = (text: string) => ({ type: 'output_text', text, annotations: [], logprobs: [] });
const messageItem = (id: string, text: string, status: string) => ({ id, type: 'message', status, role: 'assistant', content: status === 'in_progress' ? [] : [textPart(text)] });
const callItem = (id: string, call: { id: string; name: string; arguments: string }, status: string) => ({ id, type: 'function_call', status, call_id: call.id, name: call.name, arguments: call.arguments });

/** The response object: what the request asked (echoed as OpenAI does) and, once known, the output and usage. */
export function responseObject(req: ResponsesRequest, o: { id: string; created: number; model: string; status: string; output: Json[]; usage: Usage | null; incomplete?: boolean; error?: { code: string; message: string } | null }): Json {
  return {
    id: o.id,
    object: 'response',
    created_at: o.created,
    status: o.status,
    ...(o.status === 'completed' || o.status === 'incomplete' ? { completed_at: Math.floor(Date.now() / 1000) } : {}),
    error: o.error ?? null,
    incomplete_details: o.incomplete ? { reason: 'max_output_tokens' } : null,
    instructions: req.instructions ?? null,
    max_output_tokens: req.max_output_tokens ?? null,
    model: o.model,
    output: o.output,
    parallel_tool_calls: req.parallel_tool_calls ?? true,
    previous_response_id: null,
    reasoning: null,
    store: false,
    temperature: req.temperature ?? 1,
    text: { format: req.text?.format ?? { type: 'text' } },
    tool_choice: req.tool_choice ?? 'auto',
    tools: functionTools(req).map((t) => ({ type: 'function', name: t.name, description: t.description ?? null, parameters: t.parameters ?? null, strict: t.strict ?? null })),
    top_p: req.top_p ?? 1,
    truncation: req.truncation ?? 'disabled',
    // usage and user are objects/strings in OpenAI's schema, never null: left out until known.
    ...(o.usage ? { usage: wireUsage(o.usage) } : {}),
    ...(req.user ? { user: req.user } : {}),
    metadata: req.metadata ?? {},
  };
}

/** A whole chat answer as a response object. */
export function responseFromChat(req: ResponsesRequest, answer: ChatAnswer): Json {
  const output: Json[] = [];
  if (answer.text !== '' || answer.toolCalls.length === 0) output.push(messageItem(`msg_${hex()}`, answer.text, 'completed'));
  for (const call of answer.toolCalls) output.push(callItem(`fc_${hex()}`, call, 'completed'));
  const incomplete = answer.finishReason === 'length';
  return responseObject(req, { id: responseId(), created: Math.floor(Date.now() / 1000), model: answer.model, status: incomplete ? 'incomplete' : 'completed', output, usage: answer.usage, incomplete });
}

/** SSE events for one streamed response, written to `emit`: a ChatStreamSink for translateChatStream. */
export function responseEvents(req: ResponsesRequest, emit: (text: string) => void): ChatStreamSink {
  const id = responseId();
  const created = Math.floor(Date.now() / 1000);
  let model = req.model;
  let seq = 0;
  const send = (type: string, data: Json) => emit(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...data })}\n\n`);
  const output: Json[] = [];
  // The open message item (text so far), and the function calls by their chat index.
  let message: { id: string; index: number; text: string } | null = null;
  const calls = new Map<number, { id: string; index: number; call: { id: string; name: string; arguments: string } }>();

  const openMessage = () => {
    const m = { id: `msg_${hex()}`, index: output.length, text: '' };
    output.push(messageItem(m.id, '', 'in_progress'));
    send('response.output_item.added', { output_index: m.index, item: messageItem(m.id, '', 'in_progress') });
    send('response.content_part.added', { item_id: m.id, output_index: m.index, content_index: 0, part: textPart('') });
    return m;
  };
  const closeMessage = () => {
    if (!message) return;
    const { id: itemId, index, text } = message;
    send('response.output_text.done', { item_id: itemId, output_index: index, content_index: 0, text, logprobs: [] });
    send('response.content_part.done', { item_id: itemId, output_index: index, content_index: 0, part: textPart(text) });
    const item = messageItem(itemId, text, 'completed');
    output[index] = item;
    send('response.output_item.done', { output_index: index, item });
    message = null;
  };
  const closeCalls = () => {
    for (const c of calls.values()) {
      send('response.function_call_arguments.done', { item_id: c.id, output_index: c.index, name: c.call.name, arguments: c.call.arguments });
      const item = callItem(c.id, c.call, 'completed');
      output[c.index] = item;
      send('response.output_item.done', { output_index: c.index, item });
    }
    calls.clear();
  };
  const snapshot = (status: string, usage: Usage | null, extra: { incomplete?: boolean; error?: { code: string; message: string } } = {}) =>
    responseObject(req, { id, created, model, status, output: output.filter(Boolean), usage, ...extra });

  return {
    start(m) {
      model = m;
      send('response.created', { response: snapshot('in_progress', null) });
      send('response.in_progress', { response: snapshot('in_progress', null) });
    },
    text(delta) {
      message ??= openMessage();
      message.text += delta;
      send('response.output_text.delta', { item_id: message.id, output_index: message.index, content_index: 0, delta, logprobs: [] });
    },
    toolCall(index, call) {
      closeMessage(); // text comes before the calls; a message after them would be a new item
      const c = { id: `fc_${hex()}`, index: output.length, call: { ...call, arguments: '' } };
      calls.set(index, c);
      output.push(callItem(c.id, c.call, 'in_progress'));
      send('response.output_item.added', { output_index: c.index, item: callItem(c.id, c.call, 'in_progress') });
    },
    toolArguments(index, delta) {
      const c = calls.get(index);
      if (!c) return;
      c.call.arguments += delta;
      send('response.function_call_arguments.delta', { item_id: c.id, output_index: c.index, delta });
    },
    end(answer) {
      if (output.length === 0) message = openMessage(); // an empty answer is still a message
      closeMessage();
      closeCalls();
      const incomplete = answer.finishReason === 'length';
      send(incomplete ? 'response.incomplete' : 'response.completed', { response: snapshot(incomplete ? 'incomplete' : 'completed', answer.usage, { incomplete }) });
    },
    error(message, code) {
      send('error', { code: code ?? 'server_error', message, param: null });
      send('response.failed', { response: snapshot('failed', null, { error: { code: 'server_error', message } }) });
    },
  };
}
