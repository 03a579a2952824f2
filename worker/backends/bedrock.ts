import { EventStreamCodec, getChunkedStream } from '@smithy/core/event-streams';
import { AwsClient } from 'aws4fetch';
import type { BackendConfig } from '../config/schema';
import type { Usage } from '../openai/usage';
import { answerResponse, blockChat, ChunkWriter, providerHeaders, translatedStream, type Block, type BlockChat, blockUsage } from './chat-blocks';
import { badUpstream, openAIError, parseJson } from './translate';
import { UpstreamStreamError, type BackendAdapter, type SendInit } from './types';

// Amazon Bedrock's Converse API (docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html,
// …_ConverseStream.html): POST {url}/model/{modelId}/converse or /converse-stream, SigV4-signed
// (service "bedrock") with aws4fetch. The model id is the served name (a model id such as
// anthropic.claude-3-5-sonnet-20240620-v1:0, or an inference profile).
// - Request: messages [{role, content: [{text} | {image: {format, source: {bytes}}} | {toolUse} |
//   {toolResult}]}], system [{text}], inferenceConfig {maxTokens, temperature, topP,
//   stopSequences}, toolConfig {tools: [{toolSpec: {name, description, inputSchema: {json}}}], toolChoice}.
// - Answer: output.message.content, stopReason, usage {inputTokens, outputTokens, totalTokens,
//   cacheReadInputTokens, cacheWriteInputTokens}.
// - ConverseStream answers application/vnd.amazon.eventstream: binary frames (decoded with
//   @smithy/eventstream-codec) whose :event-type header names the event (messageStart,
//   contentBlockStart, contentBlockDelta, contentBlockStop, messageStop, metadata) and whose
//   payload is its JSON; :message-type "exception" frames carry errors (:exception-type).
//   Framing and decoding (lengths, CRCs, headers) are Smithy's own, from @smithy/core/event-streams
//   (where @smithy/eventstream-codec now lives; that package is a deprecated re-export).
// - Errors: the status with {"message"} and x-amzn-ErrorType (ThrottlingException 429, …).
// aws4fetch's own fetch() retries by itself; only its signing is used, the call is a plain fetch.

export const bedrockAdapter: BackendAdapter = {
  async send(backend, request, init) {
    const chat = blockChat(request, 'bedrock', false);
    if (chat instanceof Response) return chat;
    const client = awsClient(backend, init);
    if (client instanceof Response) return client;
    const model = encodeURIComponent(chat.model);
    const url = `${backend.url.replace(/\/+$/, '')}/model/${model}/${request.stream ? 'converse-stream' : 'converse'}`;
    const signed = await client.sign(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: request.stream ? 'application/vnd.amazon.eventstream' : 'application/json' },
      body: JSON.stringify(converseBody(chat, backend.bedrock?.default_max_tokens ?? 4_096)),
    });
    const res = await fetch(signed, { signal: init.signal });
    const kept = providerHeaders(res.headers);
    if (!res.ok) return bedrockError(res, backend.id, kept);
    if (!request.stream) {
      const json = parseJson(await res.text()) as Record<string, any> | null;
      const content = json?.output?.message?.content;
      if (!Array.isArray(content)) return badUpstream(`${backend.id}: the answer is not a Converse answer`);
      const blocks = (content as unknown[]).filter((c): c is Record<string, any> => typeof c === 'object' && c !== null);
      const text = blocks.filter((c) => typeof c.text === 'string').map((c) => c.text as string).join('');
      const toolCalls = blocks.filter((c) => c.toolUse && typeof c.toolUse === 'object').map((c) => ({ id: String(c.toolUse.toolUseId), name: String(c.toolUse.name), arguments: JSON.stringify(c.toolUse.input ?? {}) }));
      return answerResponse(chat, { text, toolCalls, finishReason: finishOf(json!.stopReason), usage: usageOf(json!.usage) }, kept);
    }
    // Frames are read by their length prefix: a body that is not an event stream is refused before any is read.
    if (!res.body || !/^application\/vnd\.amazon\.eventstream\b/i.test(res.headers.get('content-type') ?? '')) {
      await res.body?.cancel().catch(() => {});
      return badUpstream(`${backend.id}: the stream is not an AWS event stream`);
    }
    return new Response(converseStream(res.body, chat, backend.id), { status: 200, headers: { 'content-type': 'text/event-stream; charset=utf-8', ...kept } });
  },
};

function awsClient(backend: BackendConfig, init: SendInit): AwsClient | Response {
  const cfg = backend.bedrock;
  const secret = (name: string | undefined) => (name ? init.env?.[name] : undefined);
  const accessKeyId = secret(cfg?.access_key_secret);
  const secretAccessKey = secret(cfg?.secret_key_secret);
  const sessionToken = secret(cfg?.session_token_secret);
  if (!cfg || typeof accessKeyId !== 'string' || typeof secretAccessKey !== 'string' || !accessKeyId || !secretAccessKey) {
    // Like a key the provider refuses: this backend cannot answer, the next one may.
    return openAIError(401, `${backend.id}: AWS credentials missing (Worker secrets ${cfg?.access_key_secret ?? '?'} and ${cfg?.secret_key_secret ?? '?'})`, 'upstream_auth');
  }
  return new AwsClient({ accessKeyId, secretAccessKey, ...(typeof sessionToken === 'string' && sessionToken ? { sessionToken } : {}), service: 'bedrock', region: cfg.region, retries: 0 });
}

/** The Converse request for a chat. */
export function converseBody(chat: BlockChat, defaultMaxTokens: number): Record<string, unknown> {
  const inferenceConfig: Record<string, unknown> = { maxTokens: chat.maxTokens ?? defaultMaxTokens };
  if (chat.temperature !== null) inferenceConfig.temperature = Math.min(1, chat.temperature);
  if (chat.topP !== null) inferenceConfig.topP = chat.topP;
  if (chat.stop.length > 0) inferenceConfig.stopSequences = chat.stop;
  const body: Record<string, unknown> = {
    messages: chat.turns.map((t) => ({ role: t.role, content: t.blocks.map(blockOf) })),
    inferenceConfig,
  };
  if (chat.system.length > 0) body.system = chat.system.map((text) => ({ text }));
  const usesTools = chat.turns.some((t) => t.blocks.some((b) => b.type === 'tool_use' || b.type === 'tool_result'));
  if (chat.tools.length > 0 || usesTools) {
    // Converse needs toolConfig whenever the conversation holds tool blocks; it has no "none".
    const c = chat.toolChoice;
    const toolChoice = c === 'required' ? { any: {} } : c && typeof c === 'object' ? { tool: { name: c.name } } : { auto: {} };
    body.toolConfig = {
      tools: chat.tools.map((t) => ({ toolSpec: { name: t.name, ...(t.description ? { description: t.description } : {}), inputSchema: { json: t.parameters } } })),
      ...(chat.tools.length > 0 ? { toolChoice } : {}),
    };
  }
  return body;
}

const imageFormats: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpeg', 'image/jpg': 'jpeg', 'image/gif': 'gif', 'image/webp': 'webp' };

function blockOf(b: Block): Record<string, unknown> {
  switch (b.type) {
    case 'text':
      return { text: b.text };
    case 'image':
      return { image: { format: imageFormats[b.mediaType] ?? b.mediaType.replace(/^image\//, ''), source: { bytes: b.data } } };
    case 'image_url':
      return { text: b.url }; // refused earlier (blocksUnsupported with remoteImages false); never sent
    case 'tool_use':
      return { toolUse: { toolUseId: b.id, name: b.name, input: b.input } };
    case 'tool_result':
      return { toolResult: { toolUseId: b.id, content: [{ text: b.text }] } };
  }
}

const finishes: Record<string, string> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  max_tokens: 'length',
  model_context_window_exceeded: 'length',
  tool_use: 'tool_calls',
  guardrail_intervened: 'content_filter',
  content_filtered: 'content_filter',
};
const finishOf = (reason: unknown) => finishes[String(reason)] ?? 'stop';
/** Converse usage as OpenAI's (chat-blocks.ts blockUsage). */
export const usageOf = (u: Record<string, unknown> | null | undefined): Usage => blockUsage(u?.inputTokens, u?.outputTokens, u?.cacheReadInputTokens, u?.cacheWriteInputTokens);

async function bedrockError(res: Response, id: string, headers: Record<string, string>): Promise<Response> {
  const text = await res.text().catch(() => '');
  const json = parseJson(text) as { message?: unknown; Message?: unknown } | null;
  const type = (res.headers.get('x-amzn-errortype') ?? '').split(':')[0] || 'upstream_error';
  const message = typeof json?.message === 'string' ? json.message : typeof json?.Message === 'string' ? json.Message : text.slice(0, 300) || `HTTP ${res.status}`;
  return openAIError(res.status, `${id}: ${type}: ${message}`, type, null, headers);
}

const utf8 = { encode: (s: string) => new TextEncoder().encode(s), decode: (b: Uint8Array) => new TextDecoder().decode(b) };

/** ConverseStream's binary event stream as OpenAI chunks. */
function converseStream(body: ReadableStream<Uint8Array>, chat: BlockChat, id: string): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const codec = new EventStreamCodec(utf8.decode, utf8.encode);
  const out = new ChunkWriter(chat);
  let stopReason: unknown = null;
  let usage: Record<string, unknown> | null = null;
  let stopped = false;
  let finished = false;

  const step = (headers: Record<string, { value: unknown }>, payload: Uint8Array): string => {
    const messageType = headers[':message-type']?.value;
    const data = parseJson(utf8.decode(payload)) as Record<string, any> | null;
    if (messageType === 'exception' || messageType === 'error') {
      const type = String(headers[':exception-type']?.value ?? headers[':error-code']?.value ?? 'exception');
      throw new UpstreamStreamError(`${id}: ${type}: ${String(data?.message ?? headers[':error-message']?.value ?? 'stream error')}`);
    }
    switch (headers[':event-type']?.value) {
      case 'contentBlockStart': {
        const tool = data?.start?.toolUse;
        return tool ? out.toolStart(Number(data?.contentBlockIndex), String(tool.toolUseId), String(tool.name)) : '';
      }
      case 'contentBlockDelta': {
        const d = data?.delta;
        if (typeof d?.text === 'string') return out.text(d.text);
        if (typeof d?.toolUse?.input === 'string') return out.toolArgs(Number(data?.contentBlockIndex), d.toolUse.input);
        return ''; // reasoning content
      }
      case 'messageStop':
        stopReason = data?.stopReason;
        stopped = true;
        return '';
      case 'metadata':
        usage = data?.usage ?? {};
        finished = true;
        return out.end(finishOf(stopReason), usageOf(usage));
      default:
        return ''; // messageStart, contentBlockStop, events added later
    }
  };

  const frames = getChunkedStream(chunks(reader))[Symbol.asyncIterator]();
  return translatedStream(
    async () => {
      for (;;) {
        if (finished) {
          reader.cancel().catch(() => {});
          return null;
        }
        const frame = await frames.next();
        if (frame.done) {
          // The usage (metadata) follows messageStop; a stream cut between the two still ends (the executor estimates its usage).
          if (stopped) {
            finished = true;
            return out.end(finishOf(stopReason), usage ? usageOf(usage) : null);
          }
          throw new UpstreamStreamError(`${id}: the stream ended before messageStop`);
        }
        const m = codec.decode(frame.value);
        const text = step(m.headers as Record<string, { value: unknown }>, m.body);
        if (text !== '' || finished) return text;
      }
    },
    () => void reader.cancel().catch(() => {}),
  );
}

async function* chunks(reader: ReadableStreamDefaultReader<Uint8Array>): AsyncGenerator<Uint8Array> {
  for (;;) {
    const read = await reader.read();
    if (read.done) return;
    yield read.value;
  }
}
