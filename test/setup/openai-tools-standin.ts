import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';

// A loopback stand-in for an OpenAI-compatible server that calls tools (vLLM with
// --enable-auto-tool-choice): the simulators never write tool calls. It is strict about what
// the router sends it (OpenAI's chat schema for messages, tools and their results: a tool
// message must answer a call of the assistant message before it) and answers in vLLM's wire
// format, nulls included (system_fingerprint, annotations, function_call), so the router's
// clean-up is tested too.
//
// Its answers, decided by the request alone:
// - tools offered (tool_choice not "none") and the last message is not a tool result: one call
//   of the first tool (or the one tool_choice names), arguments made from its JSON schema;
// - the last message is a tool result: "The tool answered: <result>";
// - response_format json_schema: a JSON object made from the schema;
// - otherwise "Hello from the stand-in." Streams write the same answer in pieces;
// - a stream whose messages contain "[cut]" stops after two pieces: the connection drops;
// - "[slow]": 200 pieces, one every 50 ms (hungUp records a stream the router left early).

const toolCall = z.strictObject({ id: z.string().min(1), type: z.literal('function'), function: z.strictObject({ name: z.string().min(1), arguments: z.string() }) });
const part = z.union([z.strictObject({ type: z.literal('text'), text: z.string() }), z.strictObject({ type: z.literal('image_url'), image_url: z.looseObject({ url: z.string().min(1) }) })]);
const message = z.discriminatedUnion('role', [
  z.strictObject({ role: z.literal('system'), content: z.string() }),
  z.strictObject({ role: z.literal('user'), content: z.union([z.string(), z.array(part).min(1)]) }),
  z.looseObject({ role: z.literal('assistant'), content: z.string().nullable(), tool_calls: z.array(toolCall).min(1).optional() }),
  z.strictObject({ role: z.literal('tool'), tool_call_id: z.string().min(1), content: z.string() }),
]);
const jsonSchema = z.record(z.string(), z.unknown());
const body = z.looseObject({
  model: z.string().min(1),
  messages: z.array(message).min(1),
  tools: z.array(z.strictObject({ type: z.literal('function'), function: z.looseObject({ name: z.string(), description: z.string().optional(), parameters: jsonSchema.optional() }) })).optional(),
  tool_choice: z.union([z.enum(['none', 'auto', 'required']), z.strictObject({ type: z.literal('function'), function: z.strictObject({ name: z.string() }) })]).optional(),
  response_format: z.looseObject({ type: z.string(), json_schema: z.looseObject({ name: z.string(), schema: jsonSchema.optional() }).optional() }).optional(),
  max_tokens: z.number().int().positive().optional(),
  stream: z.boolean().optional(),
  stream_options: z.looseObject({ include_usage: z.boolean().optional() }).optional(),
});
type Body = z.infer<typeof body>;

export const STANDIN_TEXT = 'Hello from the stand-in.';

/** A value for a JSON schema: the first enum value, or a fixed one per type. */
function sample(schema: unknown): unknown {
  const s = (schema ?? {}) as { type?: unknown; properties?: Record<string, unknown>; enum?: unknown[]; items?: unknown };
  if (Array.isArray(s.enum) && s.enum.length) return s.enum[0];
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  if (type === 'object' || s.properties) return Object.fromEntries(Object.entries(s.properties ?? {}).map(([k, v]) => [k, sample(v)]));
  if (type === 'array') return [sample(s.items)];
  if (type === 'number' || type === 'integer') return 21;
  if (type === 'boolean') return true;
  return 'Paris';
}

function problem(b: Body): string | null {
  const calls = new Set<string>();
  for (const [i, m] of b.messages.entries()) {
    if (m.role === 'assistant') for (const t of m.tool_calls ?? []) calls.add(t.id);
    if (m.role === 'tool' && !calls.has(m.tool_call_id)) return `messages[${i}]: tool_call_id ${m.tool_call_id} answers no earlier tool call`;
  }
  return null;
}

interface Answer {
  text: string | null;
  call: { id: string; name: string; arguments: string } | null;
}

function answer(b: Body): Answer {
  const last = b.messages[b.messages.length - 1]!;
  if (last.role === 'tool') return { text: `The tool answered: ${last.content}`, call: null };
  if (b.tools?.length && b.tool_choice !== 'none') {
    const name = typeof b.tool_choice === 'object' ? b.tool_choice.function.name : b.tools[0]!.function.name;
    const tool = b.tools.find((t) => t.function.name === name) ?? b.tools[0]!;
    return { text: null, call: { id: `chatcmpl-tool-${Math.random().toString(16).slice(2, 10)}`, name: tool.function.name, arguments: JSON.stringify(sample(tool.function.parameters)) } };
  }
  if (b.response_format?.type === 'json_schema') return { text: JSON.stringify(sample(b.response_format.json_schema?.schema)), call: null };
  if (b.response_format?.type === 'json_object') return { text: '{"answer":"Paris"}', call: null };
  return { text: STANDIN_TEXT, call: null };
}

const words = (s: string) => s.match(/\S+\s*/g) ?? [s];

export interface StandIn {
  url: string;
  /** Bodies the stand-in was sent, in order. */
  bodies: Record<string, unknown>[];
  /** One entry per stream the router hung up on before it ended. */
  hungUp: string[];
  close(): Promise<void>;
}

export async function startToolsStandIn(): Promise<StandIn> {
  const bodies: Record<string, unknown>[] = [];
  const hungUp: string[] = [];
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      const fail = (status: number, message: string) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message, type: 'BadRequestError', param: null, code: status } }));
      };
      if (req.method !== 'POST' || req.url !== '/v1/chat/completions') return fail(404, `no route ${req.method} ${req.url}`);
      let json: unknown;
      try {
        json = JSON.parse(raw);
      } catch {
        return fail(400, 'body is not JSON');
      }
      bodies.push(json as Record<string, unknown>);
      const parsed = body.safeParse(json);
      if (!parsed.success) return fail(400, `invalid request: ${JSON.stringify(parsed.error.issues[0])}`);
      const b = parsed.data;
      const bad = problem(b);
      if (bad) return fail(400, bad);
      const a = answer(b);
      const id = `chatcmpl-${Math.random().toString(16).slice(2)}`;
      const created = Math.floor(Date.now() / 1000);
      const prompt = JSON.stringify(b.messages).length >> 2;
      const completion = a.call ? a.call.arguments.length >> 2 || 1 : words(a.text ?? '').length;
      const usage = { prompt_tokens: prompt, total_tokens: prompt + completion, completion_tokens: completion, prompt_tokens_details: null };
      const finish = a.call ? 'tool_calls' : 'stop';
      if (!b.stream) {
        const message = { role: 'assistant', content: a.text, refusal: null, annotations: null, audio: null, function_call: null, tool_calls: a.call ? [{ id: a.call.id, type: 'function', function: { name: a.call.name, arguments: a.call.arguments } }] : [], reasoning_content: null };
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id, object: 'chat.completion', created, model: b.model, choices: [{ index: 0, message, logprobs: null, finish_reason: finish, stop_reason: null }], service_tier: null, system_fingerprint: null, usage, prompt_logprobs: null }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunk = (choice: Record<string, unknown>) => res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: b.model, choices: [{ index: 0, logprobs: null, finish_reason: null, ...choice }] })}\n\n`);
      chunk({ delta: { role: 'assistant', content: '' } });
      if (JSON.stringify(b.messages).includes('[slow]')) {
        // A long answer, one piece every 50 ms: the client may leave mid-way (then the router must hang up).
        let n = 0;
        const timer = setInterval(() => {
          if (n++ < 200) return void chunk({ delta: { content: `w${n} ` } });
          clearInterval(timer);
          res.end('data: [DONE]\n\n');
        }, 50);
        res.on('close', () => {
          clearInterval(timer);
          if (!res.writableEnded) hungUp.push(b.model);
        });
        return;
      }
      if (JSON.stringify(b.messages).includes('[cut]')) {
        // The connection drops mid-answer: two pieces, then the socket closes.
        for (const w of words(a.text ?? '').slice(0, 2)) chunk({ delta: { content: w } });
        setTimeout(() => res.destroy(), 20);
        return;
      }
      for (const w of words(a.text ?? '')) if (a.text) chunk({ delta: { content: w } });
      if (a.call) {
        chunk({ delta: { tool_calls: [{ index: 0, id: a.call.id, type: 'function', function: { name: a.call.name, arguments: '' } }] } });
        const half = Math.ceil(a.call.arguments.length / 2);
        chunk({ delta: { tool_calls: [{ index: 0, function: { arguments: a.call.arguments.slice(0, half) } }] } });
        chunk({ delta: { tool_calls: [{ index: 0, function: { arguments: a.call.arguments.slice(half) } }] } });
      }
      chunk({ delta: {}, finish_reason: finish, stop_reason: null });
      if (b.stream_options?.include_usage) res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: b.model, choices: [], usage: { ...usage, prompt_tokens_details: undefined } })}\n\n`);
      res.end('data: [DONE]\n\n');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, bodies, hungUp, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
