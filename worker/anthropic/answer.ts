import type { ChatAnswer, ChatStreamSink } from '../openai/chat-reader';
import type { Usage } from '../openai/usage';

// A chat answer written as an Anthropic `message`, and a chat stream as Anthropic's events
// (message_start, ping, content_block_start/delta/stop, message_delta with usage, message_stop).

type Json = Record<string, unknown>;
export const messageId = () => `msg_${crypto.randomUUID().replaceAll('-', '')}`;

/** finish_reason → stop_reason (a stop string vLLM names is a stop_sequence). */
function stopReason(a: Pick<ChatAnswer, 'finishReason' | 'stopSequence' | 'toolCalls'>): { stop_reason: string; stop_sequence: string | null } {
  if (a.finishReason === 'length') return { stop_reason: 'max_tokens', stop_sequence: null };
  if (a.finishReason === 'tool_calls' || (a.toolCalls.length > 0 && a.finishReason !== 'content_filter')) return { stop_reason: 'tool_use', stop_sequence: null };
  if (a.finishReason === 'content_filter') return { stop_reason: 'refusal', stop_sequence: null };
  if (a.stopSequence) return { stop_reason: 'stop_sequence', stop_sequence: a.stopSequence };
  return { stop_reason: 'end_turn', stop_sequence: null };
}

function wireUsage(u: Usage | null): Json {
  const cached = u?.cached_tokens ?? 0;
  // Anthropic counts cache reads apart from input_tokens (which are the uncached ones).
  return { input_tokens: Math.max(0, (u?.prompt_tokens ?? 0) - cached), output_tokens: u?.completion_tokens ?? 0, cache_creation_input_tokens: 0, cache_read_input_tokens: cached };
}

/** A tool call's arguments as the `input` object; arguments that are not a JSON object are kept under "arguments". */
function toolInput(args: string): Json {
  if (args.trim() === '') return {};
  try {
    const v = JSON.parse(args) as unknown;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Json;
  } catch {
    // below
  }
  return { arguments: args };
}

export function messageFromChat(answer: ChatAnswer): Json {
  const content: Json[] = [];
  if (answer.text !== '' || answer.toolCalls.length === 0) content.push({ type: 'text', text: answer.text });
  for (const c of answer.toolCalls) content.push({ type: 'tool_use', id: c.id, name: c.name, input: toolInput(c.arguments) });
  return { id: messageId(), type: 'message', role: 'assistant', model: answer.model, content, ...stopReason(answer), usage: wireUsage(answer.usage) };
}

export function messageEvents(emit: (text: string) => void): ChatStreamSink {
  const id = messageId();
  const send = (type: string, data: Json) => emit(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
  let index = -1;
  let open: 'text' | 'tool' | null = null;
  const toolBlocks = new Map<number, number>(); // chat tool index → content block index
  const close = () => {
    if (open) send('content_block_stop', { index });
    open = null;
  };
  return {
    start(model) {
      // Input tokens are known only at the end: message_delta carries the whole usage.
      send('message_start', { message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: wireUsage(null) } });
      send('ping', {});
    },
    text(delta) {
      if (open !== 'text') {
        close();
        open = 'text';
        send('content_block_start', { index: ++index, content_block: { type: 'text', text: '' } });
      }
      send('content_block_delta', { index, delta: { type: 'text_delta', text: delta } });
    },
    toolCall(i, call) {
      close();
      open = 'tool';
      toolBlocks.set(i, ++index);
      send('content_block_start', { index, content_block: { type: 'tool_use', id: call.id, name: call.name, input: {} } });
    },
    toolArguments(i, delta) {
      const at = toolBlocks.get(i);
      if (at === undefined) return;
      // Blocks stream one after another: arguments of an earlier call arriving after a later call
      // started cannot be written (OpenAI-compatible servers stream calls one after another).
      if (at !== index) return;
      send('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: delta } });
    },
    end(answer) {
      if (index < 0) {
        open = 'text'; // an empty answer is still one text block
        send('content_block_start', { index: ++index, content_block: { type: 'text', text: '' } });
      }
      close();
      send('message_delta', { delta: stopReason(answer), usage: wireUsage(answer.usage) });
      send('message_stop', {});
    },
    error(message) {
      close();
      emit(`event: error\ndata: ${JSON.stringify({ type: 'error', error: { type: 'api_error', message } })}\n\n`);
    },
  };
}
