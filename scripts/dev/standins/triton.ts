import { ANSWER_TOKENS, json, parseBody, startFake, type Fake, type StandInServerOptions } from './common';

// A stand-in for Triton Inference Server serving TensorRT-LLM, through Triton's generate
// extension (triton-inference-server/server, docs/protocol/extension_generate.md):
// - POST /v2/models/{model}[/versions/{version}]/generate with {"text_input": "…", …}: 200
//   {"model_name", "model_version", "text_output"}; a failure: an error status (400 unless said)
//   with {"error": "<message>"}.
// - POST …/generate_stream, same request: 200 `text/event-stream; charset=utf-8`, one
//   `data: {"model_name", "model_version", "sequence_end", "sequence_id", "sequence_start",
//   "text_output"}` per generated piece, and the body ends. An error during inference comes as
//   `data: {"error": "…"}` after the 200 (the status went out with the first response).
// Like TensorRT-LLM's ensemble: max_tokens is required (an input tensor), generate_stream wants
// "stream": true, and text_output of /generate repeats text_input first (exclude_input_in_output
// off, TensorRT-LLM's default); streamed pieces are the new text only.
// The model answers ANSWER_TOKENS, cut at max_tokens. Markers in text_input:
//   [error-after]  stream: two pieces, then an error event after the 200
//   [error-first]  stream: an error event as the first (and only) event
//   [error]        generate: 500 {"error"}
//   [bad-json]     generate: a 200 whose body is not JSON
// Options: models (served model names, default ["ensemble"]).

export interface TritonFakeOptions extends StandInServerOptions {
  models?: string[];
}

export function startTritonFake(opts: TritonFakeOptions = {}): Promise<Fake> {
  const models = new Set(opts.models ?? ['ensemble']);
  return startFake((req, body, res, ctx) => {
    const path = new URL(req.url ?? '/', ctx.url).pathname;
    const m = /^\/v2\/models\/([^/]+)(?:\/versions\/(\d+))?\/(generate|generate_stream)$/.exec(path);
    if (req.method !== 'POST' || !m) return json(res, 404, { error: 'Not Found' });
    const [, model, version = '1', endpoint] = m;
    if (!models.has(model!)) return json(res, 400, { error: `Request for unknown model: '${model}' is not found` });
    const b = parseBody(body);
    if (!b) return json(res, 400, { error: 'failed to parse the request JSON buffer' });
    if (typeof b.text_input !== 'string') return json(res, 400, { error: "input 'text_input' is required" });
    if (!Number.isInteger(b.max_tokens)) return json(res, 400, { error: "[request id: 1] expected 1 inputs but got 0 inputs for model 'ensemble'. At least one required input is missing: 'max_tokens'" });
    const input: string = b.text_input;
    const tokens = ANSWER_TOKENS.slice(0, b.max_tokens);
    const base = { model_name: model, model_version: version };

    if (endpoint === 'generate') {
      if (input.includes('[error]')) return json(res, 500, { error: 'Executor failed process requestId 1 due to the following error: out of memory' });
      if (input.includes('[bad-json]')) return void res.writeHead(200, { 'content-type': 'application/json' }).end('<html>502 Bad Gateway</html>');
      return json(res, 200, { ...base, text_output: input + tokens.join('') });
    }

    if (b.stream !== true) return json(res, 400, { error: 'in ensemble, streaming requires "stream": true for a decoupled model' });
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
    const send = (v: unknown) => res.write(`data: ${JSON.stringify(v)}\n\n`);
    const piece = (text: string) => send({ ...base, sequence_end: false, sequence_id: 0, sequence_start: false, text_output: text });
    if (input.includes('[error-first]')) {
      send({ error: 'Executor failed process requestId 1 due to the following error: out of memory' });
      return void res.end();
    }
    if (input.includes('[error-after]')) {
      tokens.slice(0, 2).forEach(piece);
      send({ error: 'Executor failed process requestId 1 due to the following error: out of memory' });
      return void res.end();
    }
    tokens.forEach(piece);
    res.end();
  }, opts);
}
