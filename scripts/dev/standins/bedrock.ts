import type { IncomingMessage, ServerResponse } from 'node:http';
import { Hash } from '@smithy/hash-node';
import { EventStreamCodec } from '@smithy/core/event-streams';
import { SignatureV4 } from '@smithy/signature-v4';
import { ANSWER_TOKENS, json, parseBody, startFake, type Fake } from './common';
import { words } from './openai-api';

// A stand-in for Amazon Bedrock Runtime's Converse and ConverseStream
// (docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html, …ConverseStream.html):
// - POST /model/{modelId}/converse and /model/{modelId}/converse-stream, SigV4-signed for
//   service "bedrock" in the stand-in's region. The signature is checked with a second,
//   independent implementation (@smithy/signature-v4, the AWS SDK's own): the request is signed
//   again over the headers its SignedHeaders names, with its own X-Amz-Date, and must give the
//   same Authorization. X-Amz-Date must be within 15 minutes. Failures: 403
//   MissingAuthenticationTokenException / InvalidSignatureException / UnrecognizedClientException.
// - Request: messages (non-empty, starting with user, alternating), each content block an object
//   with exactly one member (text non-blank, image {format, source: {bytes}}, toolUse,
//   toolResult, …); toolUse/toolResult need toolConfig; system [{text}]; inferenceConfig
//   {maxTokens ≥ 1, temperature 0..1, topP, stopSequences}; unknown top-level fields refused.
// - Answer: {output: {message: {role, content}}, stopReason, usage {inputTokens, outputTokens,
//   totalTokens, cacheReadInputTokens?, cacheWriteInputTokens?}, metrics {latencyMs}}.
// - Stream: application/vnd.amazon.eventstream frames encoded with Smithy's EventStreamCodec:
//   :message-type event, :event-type messageStart | contentBlockStart | contentBlockDelta |
//   contentBlockStop | messageStop | metadata, :content-type application/json; errors as
//   :message-type exception with :exception-type (throttlingException, …).
// - Errors: the status, x-amzn-ErrorType, {"message"}: ValidationException 400,
//   ResourceNotFoundException 404, ThrottlingException 429.
// The model answers ANSWER_TOKENS (cut at maxTokens); with tools (and the last turn not a
// toolResult) it calls the first tool with {"query": "hello"}. inputTokens counts words.
// Markers in the last user text: [429] ThrottlingException; [cached] 12 cache-read tokens;
// [stream-throttle] a throttlingException frame after the first delta.

export interface BedrockFakeOptions {
  access_key_id: string;
  secret_access_key: string;
  session_token?: string;
  region: string;
  /** Model ids it serves. */
  models: string[];
}

type Body = Record<string, any>;
const FIELDS = new Set(['messages', 'system', 'inferenceConfig', 'toolConfig', 'guardrailConfig', 'additionalModelRequestFields', 'promptVariables', 'additionalModelResponseFieldPaths', 'requestMetadata', 'performanceConfig']);
const BLOCK_MEMBERS = new Set(['text', 'image', 'document', 'video', 'toolUse', 'toolResult', 'guardContent', 'reasoningContent', 'cachePoint']);
const utf8 = { encode: (s: string) => new TextEncoder().encode(s), decode: (b: Uint8Array) => new TextDecoder().decode(b) };

export function startBedrockFake(opts: BedrockFakeOptions): Promise<Fake> {
  const signer = new SignatureV4({
    credentials: { accessKeyId: opts.access_key_id, secretAccessKey: opts.secret_access_key, ...(opts.session_token ? { sessionToken: opts.session_token } : {}) },
    region: opts.region,
    service: 'bedrock',
    sha256: Hash.bind(null, 'sha256'),
    applyChecksum: false,
  });
  const codec = new EventStreamCodec(utf8.decode, utf8.encode);
  const error = (res: ServerResponse, status: number, type: string, message: string) =>
    json(res, status, { message }, { 'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/`, 'x-amzn-requestid': crypto.randomUUID() });

  return startFake(async (req, raw, res, ctx) => {
    const url = new URL(req.url ?? '/', ctx.url);
    const auth = await verifySignature(signer, opts, req, url, raw);
    if (auth) return error(res, 403, auth.type, auth.message);
    const m = /^\/model\/([^/]+)\/(converse|converse-stream)$/.exec(url.pathname);
    if (req.method !== 'POST' || !m) return error(res, 404, 'UnknownOperationException', `no operation ${req.method} ${url.pathname}`);
    const modelId = decodeURIComponent(m[1]!);
    if (!opts.models.includes(modelId)) return error(res, 400, 'ValidationException', 'The provided model identifier is invalid.');
    const b = parseBody(raw);
    if (!b) return error(res, 400, 'SerializationException', 'Could not parse the request body');
    const problem = validate(b);
    if (problem) return error(res, 400, 'ValidationException', problem);

    const messages = b.messages as Body[];
    const last = messages.at(-1)!;
    const lastText = (last.content as Body[]).filter((c) => typeof c.text === 'string').map((c) => c.text).join(' ');
    if (lastText.includes('[429]')) return error(res, 429, 'ThrottlingException', 'Too many requests, please wait before trying again.');
    const max = b.inferenceConfig?.maxTokens ?? ANSWER_TOKENS.length;
    const tokens = ANSWER_TOKENS.slice(0, max);
    const tools = (b.toolConfig?.tools ?? []) as Body[];
    const callTool = tools.length > 0 && !(last.content as Body[]).some((c) => c.toolResult);
    const toolName = String(b.toolConfig?.toolChoice?.tool?.name ?? tools[0]?.toolSpec?.name ?? '');
    const toolUse = { toolUseId: `tooluse_${Math.random().toString(36).slice(2, 12)}`, name: toolName, input: { query: 'hello' } };
    const stopReason = callTool ? 'tool_use' : tokens.length < ANSWER_TOKENS.length ? 'max_tokens' : 'end_turn';
    const inputTokens = ((b.system ?? []) as Body[]).reduce((n, s) => n + words(String(s.text ?? '')), 0) + messages.reduce((n, msg) => n + (msg.content as Body[]).reduce((k, c) => k + words(String(c.text ?? '')), 0), 0);
    const outputTokens = callTool ? 7 : tokens.length;
    const cached = lastText.includes('[cached]') ? { cacheReadInputTokens: 12, cacheWriteInputTokens: 0 } : {};
    const usage = { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens + (cached.cacheReadInputTokens ?? 0), ...cached };

    if (m[2] === 'converse') {
      const content = callTool ? [{ text: 'Checking.' }, { toolUse }] : [{ text: tokens.join('') }];
      return json(res, 200, { output: { message: { role: 'assistant', content } }, stopReason, usage, metrics: { latencyMs: 12 } }, { 'x-amzn-requestid': crypto.randomUUID() });
    }
    res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': crypto.randomUUID() });
    const frame = (event: string, payload: Body) =>
      res.write(
        codec.encode({
          headers: {
            ':event-type': { type: 'string', value: event },
            ':content-type': { type: 'string', value: 'application/json' },
            ':message-type': { type: 'string', value: 'event' },
          },
          body: utf8.encode(JSON.stringify(payload)),
        }),
      );
    frame('messageStart', { role: 'assistant' });
    if (lastText.includes('[stream-throttle]')) {
      frame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: tokens[0] } });
      res.write(
        codec.encode({
          headers: {
            ':exception-type': { type: 'string', value: 'throttlingException' },
            ':content-type': { type: 'string', value: 'application/json' },
            ':message-type': { type: 'string', value: 'exception' },
          },
          body: utf8.encode(JSON.stringify({ message: 'Too many tokens, please wait before trying again.' })),
        }),
      );
      return void res.end();
    }
    if (callTool) {
      frame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Checking.' } });
      frame('contentBlockStop', { contentBlockIndex: 0 });
      frame('contentBlockStart', { contentBlockIndex: 1, start: { toolUse: { toolUseId: toolUse.toolUseId, name: toolUse.name } } });
      for (const piece of ['{"query":', '"hello"}']) frame('contentBlockDelta', { contentBlockIndex: 1, delta: { toolUse: { input: piece } } });
      frame('contentBlockStop', { contentBlockIndex: 1 });
    } else {
      for (const t of tokens) frame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: t } });
      frame('contentBlockStop', { contentBlockIndex: 0 });
    }
    frame('messageStop', { stopReason });
    frame('metadata', { usage, metrics: { latencyMs: 15 } });
    res.end();
  });
}

/** Null when the SigV4 signature is right; else the exception to answer with. */
async function verifySignature(signer: SignatureV4, opts: BedrockFakeOptions, req: IncomingMessage, url: URL, body: string): Promise<{ type: string; message: string } | null> {
  const authorization = String(req.headers.authorization ?? '');
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  if (!authorization) return { type: 'MissingAuthenticationTokenException', message: 'Missing Authentication Token' };
  const parsed = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(authorization);
  if (!parsed) return { type: 'IncompleteSignatureException', message: 'Authorization header requires Credential, SignedHeaders and Signature' };
  const [, keyId, day, region, service, signedHeaders] = parsed;
  if (keyId !== opts.access_key_id) return { type: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.' };
  if (region !== opts.region || service !== 'bedrock') return { type: 'InvalidSignatureException', message: `Credential should be scoped to a valid region and service 'bedrock' in '${opts.region}'` };
  const date = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
  if (!date || !amzDate.startsWith(day!)) return { type: 'IncompleteSignatureException', message: 'X-Amz-Date is missing or does not match the credential scope' };
  const signingDate = new Date(Date.UTC(+date[1]!, +date[2]! - 1, +date[3]!, +date[4]!, +date[5]!, +date[6]!));
  if (Math.abs(Date.now() - signingDate.getTime()) > 15 * 60_000) return { type: 'InvalidSignatureException', message: 'Signature expired' };
  const names = signedHeaders!.split(';');
  if (!names.includes('host') || !names.includes('x-amz-date')) return { type: 'InvalidSignatureException', message: 'host and x-amz-date must be signed' };
  const headers: Record<string, string> = {};
  for (const name of names) {
    const v = req.headers[name];
    if (v === undefined) return { type: 'InvalidSignatureException', message: `signed header ${name} is missing` };
    headers[name] = Array.isArray(v) ? v.join(',') : v;
  }
  const query: Record<string, string> = {};
  url.searchParams.forEach((v, k) => (query[k] = v));
  const again = await signer.sign(
    { method: req.method ?? 'POST', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: url.pathname, query, headers, body },
    { signingDate },
  );
  const expected = String(again.headers.authorization ?? again.headers.Authorization ?? '');
  if (expected !== authorization) {
    return { type: 'InvalidSignatureException', message: 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.' };
  }
  return null;
}

function validate(b: Body): string | null {
  for (const k of Object.keys(b)) if (!FIELDS.has(k)) return `Malformed input request: extraneous key [${k}] is not permitted`;
  if (!Array.isArray(b.messages) || b.messages.length === 0) return 'A conversation must start with a user message. Try again with a conversation that starts with a user message.';
  const usesTools = (b.messages as Body[]).some((m) => Array.isArray(m?.content) && m.content.some((c: Body) => c?.toolUse || c?.toolResult));
  if (usesTools && !b.toolConfig) return 'The toolConfig field must be defined when using toolUse and toolResult content blocks.';
  for (const [i, m] of (b.messages as Body[]).entries()) {
    if (m?.role !== 'user' && m?.role !== 'assistant') return `messages.${i}.role: must be user or assistant`;
    if (i === 0 && m.role !== 'user') return 'A conversation must start with a user message. Try again with a conversation that starts with a user message.';
    if (i > 0 && (b.messages as Body[])[i - 1]!.role === m.role) return 'A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.';
    if (!Array.isArray(m.content) || m.content.length === 0) return `messages.${i}.content: must be a non-empty list of content blocks`;
    for (const [j, c] of (m.content as Body[]).entries()) {
      const members = c && typeof c === 'object' ? Object.keys(c) : [];
      if (members.length !== 1 || !BLOCK_MEMBERS.has(members[0]!)) return `messages.${i}.content.${j}: a ContentBlock must have exactly one member`;
      if ('text' in c && (typeof c.text !== 'string' || c.text.trim() === '')) return `The text field in the ContentBlock object at messages.${i}.content.${j} is blank. Add text to the text field, and try again.`;
      if ('image' in c && !(['png', 'jpeg', 'gif', 'webp'].includes(c.image?.format) && typeof c.image?.source?.bytes === 'string')) return `messages.${i}.content.${j}.image: format and source.bytes are required`;
      if ('toolUse' in c && (m.role !== 'assistant' || typeof c.toolUse?.toolUseId !== 'string' || typeof c.toolUse?.input !== 'object')) return `messages.${i}.content.${j}.toolUse: invalid`;
      if ('toolResult' in c && (m.role !== 'user' || typeof c.toolResult?.toolUseId !== 'string' || !Array.isArray(c.toolResult?.content))) return `messages.${i}.content.${j}.toolResult: invalid`;
    }
  }
  if (b.system !== undefined && !(Array.isArray(b.system) && b.system.every((s: Body) => typeof s?.text === 'string' || s?.cachePoint))) return 'system: must be a list of SystemContentBlock';
  const ic = b.inferenceConfig;
  if (ic !== undefined) {
    if (ic.maxTokens !== undefined && !(Number.isInteger(ic.maxTokens) && ic.maxTokens >= 1)) return 'inferenceConfig.maxTokens: must be an integer of at least 1';
    if (ic.temperature !== undefined && !(typeof ic.temperature === 'number' && ic.temperature >= 0 && ic.temperature <= 1)) return 'inferenceConfig.temperature: must be between 0 and 1';
  }
  for (const [i, t] of ((b.toolConfig?.tools ?? []) as Body[]).entries()) {
    if (typeof t?.toolSpec?.name !== 'string' || !t.toolSpec.inputSchema?.json) return `toolConfig.tools.${i}.toolSpec: name and inputSchema.json are required`;
  }
  return null;
}
