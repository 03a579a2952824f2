/**
 * vLLM's OpenAI-compatible wire format, serialized by hand (string templates, no
 * intermediate objects) for speed. Field sets and order follow vLLM's pydantic models
 * (vllm/entrypoints/openai/protocol.py, ~v0.10/0.11) as FastAPI/pydantic serialize them:
 *
 * - non-streaming responses: `model_dump()`: every field, unset ones as null;
 * - chat stream chunks: `model_dump_json(exclude_unset=True)`: only fields that were set
 *   (finish_reason/stop_reason appear only on the last chunk of a choice);
 * - completion stream chunks: `model_dump_json(exclude_unset=False)` (all fields, usage null);
 * - the final usage chunk: `exclude_unset=True, exclude_none=True` (`choices: []`).
 */
import { randomBytes } from 'node:crypto';

const ID_PREFIX = randomBytes(8).toString('hex');
let idCounter = 0;

/** 32 hex chars, like vLLM's `random_uuid()` (uuid4().hex). */
export function randomId(): string {
  idCounter = (idCounter + 1) % Number.MAX_SAFE_INTEGER;
  return ID_PREFIX + idCounter.toString(16).padStart(16, '0');
}

/** `{"error": {...}}`: vLLM's ErrorResponse (message, type, param, code). */
export function errorJson(message: string, type: string, code: number, param: string | null = null): string {
  return `{"error":{"message":${JSON.stringify(message)},"type":${JSON.stringify(type)},"param":${param === null ? 'null' : JSON.stringify(param)},"code":${code}}}`;
}

export interface UsageNumbers {
  prompt: number;
  completion: number;
  cached: number;
}

/** UsageInfo as in a non-streaming response (prompt_tokens_details enabled). */
export function usageJson(u: UsageNumbers): string {
  return `{"prompt_tokens":${u.prompt},"total_tokens":${u.prompt + u.completion},"completion_tokens":${u.completion},"prompt_tokens_details":{"cached_tokens":${u.cached}}}`;
}

/** Per-chunk usage with `continuous_usage_stats` (chat: only the set fields). */
export function chatContinuousUsage(prompt: number, completion: number): string {
  return `{"prompt_tokens":${prompt},"total_tokens":${prompt + completion},"completion_tokens":${completion}}`;
}

/** Per-chunk usage with `continuous_usage_stats` (completions dump every field). */
export function completionContinuousUsage(prompt: number, completion: number): string {
  return `{"prompt_tokens":${prompt},"total_tokens":${prompt + completion},"completion_tokens":${completion},"prompt_tokens_details":null}`;
}

export function stopReasonJson(s: string | null): string {
  return s === null ? 'null' : JSON.stringify(s);
}

export interface ChoiceOut {
  index: number;
  text: string;
  finishReason: string;
  stopReason: string | null;
}

export function chatCompletionJson(id: string, created: number, modelJson: string, choices: readonly ChoiceOut[], usage: UsageNumbers): string {
  let cs = '';
  for (let i = 0; i < choices.length; i++) {
    const c = choices[i] as ChoiceOut;
    if (i > 0) cs += ',';
    cs += `{"index":${c.index},"message":{"role":"assistant","content":${JSON.stringify(c.text)},"refusal":null,"annotations":null,"audio":null,"function_call":null,"tool_calls":[],"reasoning_content":null},"logprobs":null,"finish_reason":"${c.finishReason}","stop_reason":${stopReasonJson(c.stopReason)}}`;
  }
  return `{"id":"chatcmpl-${id}","object":"chat.completion","created":${created},"model":${modelJson},"choices":[${cs}],"service_tier":null,"system_fingerprint":null,"usage":${usageJson(usage)},"prompt_logprobs":null,"kv_transfer_params":null}`;
}

export function completionJson(id: string, created: number, modelJson: string, choices: readonly ChoiceOut[], usage: UsageNumbers): string {
  let cs = '';
  for (let i = 0; i < choices.length; i++) {
    const c = choices[i] as ChoiceOut;
    if (i > 0) cs += ',';
    cs += `{"index":${c.index},"text":${JSON.stringify(c.text)},"logprobs":null,"finish_reason":"${c.finishReason}","stop_reason":${stopReasonJson(c.stopReason)},"prompt_logprobs":null}`;
  }
  return `{"id":"cmpl-${id}","object":"text_completion","created":${created},"model":${modelJson},"choices":[${cs}],"service_tier":null,"system_fingerprint":null,"usage":${usageJson(usage)},"kv_transfer_params":null}`;
}

/** Prefix shared by every chunk of one stream: `data: {"id":…,"object":…,"created":…,"model":…,"choices":[`. */
export function chunkHead(kind: 'chat' | 'completion', id: string, created: number, modelJson: string): string {
  return kind === 'chat'
    ? `data: {"id":"chatcmpl-${id}","object":"chat.completion.chunk","created":${created},"model":${modelJson},"choices":[`
    : `data: {"id":"cmpl-${id}","object":"text_completion","created":${created},"model":${modelJson},"choices":[`;
}

/** The first chat chunk of a choice: `delta: {"role":"assistant","content":""}`. */
export function chatRoleChunk(head: string, index: number, usage: string | null): string {
  return `${head}{"index":${index},"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]${usage === null ? '' : `,"usage":${usage}`}}\n\n`;
}

export function chatContentChunk(head: string, index: number, piece: string, finishReason: string | null, stopReason: string | null, usage: string | null): string {
  const fin = finishReason === null ? '"finish_reason":null' : `"finish_reason":"${finishReason}","stop_reason":${stopReasonJson(stopReason)}`;
  return `${head}{"index":${index},"delta":{"content":${JSON.stringify(piece)}},"logprobs":null,${fin}}]${usage === null ? '' : `,"usage":${usage}`}}\n\n`;
}

export function completionChunk(head: string, index: number, piece: string, finishReason: string | null, stopReason: string | null, usage: string | null): string {
  return `${head}{"index":${index},"text":${JSON.stringify(piece)},"logprobs":null,"finish_reason":${finishReason === null ? 'null' : `"${finishReason}"`},"stop_reason":${stopReasonJson(stopReason)}}],"usage":${usage === null ? 'null' : usage}}\n\n`;
}

/** The `include_usage` chunk: `choices: []` plus usage (nulls excluded). */
export function usageChunk(head: string, usage: UsageNumbers): string {
  return `${head}],"usage":${usageJson(usage)}}\n\n`;
}

export const DONE = 'data: [DONE]\n\n';

export function embeddingResponseJson(id: string, created: number, modelJson: string, data: readonly string[], promptTokens: number): string {
  let d = '';
  for (let i = 0; i < data.length; i++) {
    if (i > 0) d += ',';
    d += `{"index":${i},"object":"embedding","embedding":${data[i]}}`;
  }
  return `{"id":"embd-${id}","object":"list","created":${created},"model":${modelJson},"data":[${d}],"usage":{"prompt_tokens":${promptTokens},"total_tokens":${promptTokens},"completion_tokens":0,"prompt_tokens_details":null}}`;
}
