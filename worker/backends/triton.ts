import type { TritonConfig } from '../config/backend-kinds';
import { synthesize } from '../openai/synthesize';
import { renderChat } from './chat-template';
import { badUpstream, estimatedUsage, finishReason, parseJson, textRequest, translateStream, upstreamError, type TextRequest } from './translate';
import { UpstreamStreamError, USAGE_HEADER, type BackendAdapter } from './types';

// Triton Inference Server with TensorRT-LLM, through Triton's generate extension
// (triton-inference-server/server docs/protocol/extension_generate.md):
// - POST /v2/models/{model}[/versions/{v}]/generate: {"text_input": "…", <parameters>} →
//   {"model_name", "model_version", "text_output"}; a failure is an error status with {"error": "…"}.
// - …/generate_stream: the same request (TensorRT-LLM's ensemble also wants "stream": true), answered
//   as SSE, one `data: {…"text_output": "<new text>"}` per response, ending when the body ends.
//   The status is sent with the first response, so a later failure arrives as `data: {"error": "…"}`
//   after a 200: it becomes an error of the translated stream (the client sees an error event, no [DONE]).
// Chat turns are rendered into text_input with the backend's chat template; the request's
// parameters go as top-level fields (the ensemble's input tensors), named per config. Triton
// reports no token counts: usage is estimated (x-router-usage: estimated, "estimated": true).

export const tritonAdapter: BackendAdapter = {
  async send(backend, request, { signal, secret }) {
    const cfg = backend.triton;
    if (!cfg) return badUpstream(`${backend.id}: no [triton] settings`); // the config schema requires them
    const tr = textRequest(request, 'triton');
    if (tr instanceof Response) return tr;
    const textInput = tr.endpoint === 'chat' ? renderChat(cfg.chat_template, tr.messages) : tr.prompt;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: request.stream ? 'text/event-stream' : 'application/json',
      'x-request-id': request.requestId,
    };
    if (secret) headers[backend.auth_header] = backend.auth_header === 'authorization' ? `Bearer ${secret}` : secret;
    const model = `/v2/models/${encodeURIComponent(cfg.model)}${cfg.version ? `/versions/${cfg.version}` : ''}`;
    const url = backend.url.replace(/\/+$/, '') + model + (request.stream ? '/generate_stream' : '/generate');
    const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(generateRequest(cfg, tr, textInput, request.stream)), signal });
    if (!res.ok) return upstreamError(res, backend.id);

    if (request.stream) {
      if (!res.body) return badUpstream(`${backend.id}: empty stream`);
      const body = translateStream({
        endpoint: tr.endpoint,
        model: tr.model,
        includeUsage: tr.includeUsage,
        body: res.body,
        onEvent: (e) => {
          const json = parseJson(e.data) as { text_output?: unknown; error?: unknown } | null;
          if (json === null || typeof json !== 'object') throw new UpstreamStreamError(`${backend.id}: an event that is not JSON`);
          if (json.error !== undefined) throw new UpstreamStreamError(`${backend.id}: ${String(json.error)}`);
          return typeof json.text_output === 'string' ? { text: json.text_output } : null;
        },
        // The body ending is the end of the answer (Triton sends no final event).
        onEnd: async ({ text }) => {
          const usage = estimatedUsage(textInput, text);
          return { usage, finishReason: finishReason(usage.completion_tokens, tr.maxTokens ?? cfg.default_max_tokens) };
        },
      });
      return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream; charset=utf-8', [USAGE_HEADER]: 'estimated' } });
    }

    const json = parseJson(await res.text()) as { text_output?: unknown; error?: unknown } | null;
    if (json && typeof json === 'object' && json.error !== undefined) return badUpstream(`${backend.id}: ${String(json.error)}`);
    if (!json || typeof json.text_output !== 'string') return badUpstream(`${backend.id}: the answer is not Triton's generate JSON`);
    // TensorRT-LLM echoes the input unless the model is configured with exclude_input_in_output.
    const text = json.text_output.startsWith(textInput) && textInput !== '' ? json.text_output.slice(textInput.length) : json.text_output;
    const usage = estimatedUsage(textInput, text);
    const answer = synthesize({
      endpoint: tr.endpoint,
      model: tr.model,
      text,
      finishReason: finishReason(usage.completion_tokens, tr.maxTokens ?? cfg.default_max_tokens),
      stream: false,
      includeUsage: false,
      usage,
    });
    answer.headers.set(USAGE_HEADER, 'estimated');
    return answer;
  },
};

/** The generate request: text_input, the sampling parameters under their configured names, fixed extras. */
function generateRequest(cfg: TritonConfig, tr: TextRequest, textInput: string, stream: boolean): Record<string, unknown> {
  const p = cfg.parameters;
  const out: Record<string, unknown> = { ...cfg.extra_parameters, text_input: textInput, [p.max_tokens]: tr.maxTokens ?? cfg.default_max_tokens };
  const set = (field: string | false, value: unknown) => {
    if (field !== false && value !== null && value !== undefined) out[field] = value;
  };
  set(p.temperature, tr.temperature);
  set(p.top_p, tr.topP);
  set(p.stop, tr.stop.length > 0 ? tr.stop : null);
  set(p.seed, tr.seed);
  if (stream) out.stream = true;
  return out;
}
