// Builds the non-streamed answer (chat.completion / text_completion) from a stream's chunks. The
// router streams from the backend for every request of a kind that can stream (so TTFT is known and
// bounded for every request), and a client that did not ask for a stream gets this JSON instead.
// Written here rather than taken from a library: the SDKs' accumulators (openai's
// ChatCompletionStream) run in the client, drop vLLM's extensions (stop_reason, reasoning_content)
// and do not do completions; this keeps every field the backend sent, merged per choice.

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

interface ToolAcc {
  id?: string;
  type?: string;
  name: string;
  args: string;
}

interface ChoiceAcc {
  index: number;
  role: string;
  content: string | null;
  refusal: string | null;
  reasoning: string | null;
  tools: Map<number, ToolAcc>;
  text: string;
  logprobs: Json | null;
  finish: unknown;
  extra: Json;
}

/** Fields of a chunk that the assembled answer builds itself. */
const TOP_OWN = new Set(['choices', 'object', 'usage']);
const CHOICE_OWN = new Set(['index', 'delta', 'text', 'logprobs', 'finish_reason']);

/**
 * The answer object behind each Response the router assembled (worker/routing/execute.ts), with its
 * JSON text's length, so readers of the served answer (quality/answer-signals.ts, the exact cache)
 * take it as built instead of cloning the body and parsing it again. Weak: gone with the Response.
 */
const assembledAnswers = new WeakMap<Response, AssembledAnswer>();

export interface AssembledAnswer {
  /** Read-only by contract: every reader shares it. */
  readonly answer: Readonly<Json>;
  /** The length of its JSON text (the body's characters). */
  readonly chars: number;
}

/** A JSON Response of an assembled answer, remembered for assembledAnswerOf. */
export function assembledResponse(answer: Json, headers: Record<string, string>): Response {
  const text = JSON.stringify(answer);
  const res = new Response(text, { status: 200, headers: { 'content-type': 'application/json', ...headers } });
  assembledAnswers.set(res, { answer, chars: text.length });
  return res;
}

/** What a Response was assembled from (undefined: not one the router assembled). */
export function assembledAnswerOf(res: Response): AssembledAnswer | undefined {
  return assembledAnswers.get(res);
}

export class CompletionAssembler {
  private top: Json | null = null;
  private usage: unknown = undefined;
  /** Chunks that carried generated text (about one token each from vLLM): the estimate without usage. */
  textChunks = 0;
  private readonly choices = new Map<number, ChoiceAcc>();

  constructor(private readonly endpoint: 'chat' | 'completions') {}

  /** One event's data (`[DONE]` is ignored); a chunk that is not JSON is ignored too. */
  add(data: string): void {
    if (data === '[DONE]') return;
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      return;
    }
    if (!isObj(chunk)) return;
    if (this.top === null) this.top = chunk;
    else if (chunk.system_fingerprint != null) this.top.system_fingerprint = chunk.system_fingerprint;
    if (chunk.usage != null) this.usage = chunk.usage;
    if (!Array.isArray(chunk.choices)) return;
    let text = false;
    for (const c of chunk.choices) if (isObj(c) && this.addChoice(c)) text = true;
    if (text) this.textChunks++;
  }

  /** Merges one choice's delta; true when it carried generated text (a non-empty content or text). */
  private addChoice(c: Json): boolean {
    const index = typeof c.index === 'number' ? c.index : 0;
    let acc = this.choices.get(index);
    if (!acc) this.choices.set(index, (acc = { index, role: 'assistant', content: null, refusal: null, reasoning: null, tools: new Map(), text: '', logprobs: null, finish: null, extra: {} }));
    // for-in, not Object.entries: no array per member on the per-token path (a parsed chunk has no inherited keys).
    for (const k in c) if (!CHOICE_OWN.has(k) && c[k] !== undefined) acc.extra[k] = c[k];
    if (c.finish_reason != null) acc.finish = c.finish_reason;
    if (isObj(c.logprobs)) mergeLogprobs(acc, c.logprobs);
    if (this.endpoint === 'completions') {
      if (typeof c.text !== 'string') return false;
      acc.text += c.text;
      return c.text !== '';
    }
    const d = c.delta;
    if (!isObj(d)) return false;
    if (typeof d.role === 'string') acc.role = d.role;
    if (typeof d.content === 'string') acc.content = (acc.content ?? '') + d.content;
    if (typeof d.refusal === 'string') acc.refusal = (acc.refusal ?? '') + d.refusal;
    if (typeof d.reasoning_content === 'string') acc.reasoning = (acc.reasoning ?? '') + d.reasoning_content;
    if (Array.isArray(d.tool_calls)) {
      for (const t of d.tool_calls) {
        if (!isObj(t)) continue;
        const ti = typeof t.index === 'number' ? t.index : acc.tools.size;
        let tool = acc.tools.get(ti);
        if (!tool) acc.tools.set(ti, (tool = { name: '', args: '' }));
        if (typeof t.id === 'string') tool.id = t.id;
        if (typeof t.type === 'string') tool.type = t.type;
        if (isObj(t.function)) {
          if (typeof t.function.name === 'string') tool.name += t.function.name;
          if (typeof t.function.arguments === 'string') tool.args += t.function.arguments;
        }
      }
    }
    return typeof d.content === 'string' && d.content !== '';
  }

  /** The usage the stream reported (its last usage chunk), if any. */
  get reportedUsage(): unknown {
    return this.usage;
  }

  /** The whole answer, as the backend would have sent it without `stream`. */
  result(): Json {
    const top: Json = {};
    for (const [k, v] of Object.entries(this.top ?? {})) if (!TOP_OWN.has(k) && v !== null) top[k] = v;
    const choices = [...this.choices.values()].sort((a, b) => a.index - b.index).map((c) => this.choice(c));
    return {
      ...top,
      object: this.endpoint === 'chat' ? 'chat.completion' : 'text_completion',
      choices,
      ...(isObj(this.usage) ? { usage: withoutNullDetails(this.usage) } : {}),
    };
  }

  private choice(c: ChoiceAcc): Json {
    if (this.endpoint === 'completions') return { index: c.index, text: c.text, logprobs: c.logprobs, finish_reason: c.finish, ...c.extra };
    const tools = [...c.tools].sort((a, b) => a[0] - b[0]).map(([, t]) => ({ id: t.id ?? '', type: t.type ?? 'function', function: { name: t.name, arguments: t.args } }));
    const message: Json = { role: c.role, content: c.content, refusal: c.refusal };
    if (tools.length) message.tool_calls = tools;
    if (c.reasoning !== null) message.reasoning_content = c.reasoning;
    return { index: c.index, message, logprobs: c.logprobs, finish_reason: c.finish, ...c.extra };
  }
}

/** Chat logprobs ({content, refusal} lists) and completions logprobs (parallel lists) concatenate. */
function mergeLogprobs(acc: ChoiceAcc, lp: Json): void {
  const into = (acc.logprobs ??= {});
  for (const [k, v] of Object.entries(lp)) {
    if (Array.isArray(v)) into[k] = [...((Array.isArray(into[k]) ? into[k] : []) as unknown[]), ...v];
    else if (v !== null && into[k] === undefined) into[k] = v;
    else if (into[k] === undefined) into[k] = v;
  }
}

/** OpenAI's schema types the usage details as objects, never null (worker/openai/conform.ts). */
function withoutNullDetails(usage: Json): Json {
  const out = { ...usage };
  for (const k of ['prompt_tokens_details', 'completion_tokens_details']) if (out[k] === null) delete out[k];
  return out;
}
