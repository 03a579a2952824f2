/**
 * Turning request bodies into prompt tokens, the way vLLM does before scheduling:
 * chat messages go through a (Llama-3 style) chat template, completion prompts get a BOS,
 * token-id prompts are taken as they are, embedding inputs get [CLS] … [SEP].
 *
 * Non-text content parts (image_url, input_audio, video_url, file, …) cost a fixed
 * MM_PART_TOKENS tokens each; their token strings carry a hash of the part so different
 * images do not share prefix-cache blocks (vLLM adds the multimodal hash to block keys).
 */
import { hashBlock, hashString } from './hash.js';
import { countTokens, SPECIAL, tokenize } from './tokenizer.js';

export const MM_PART_TOKENS = 64;

export class PromptError extends Error {
  constructor(message: string) {
    super(message);
  }
}

export interface RenderedPrompt {
  tokens: string[];
  /** Hash of the whole token sequence (seeds the generated text). */
  hash: number;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function pushContent(content: unknown, out: string[], where: string): void {
  if (content === undefined || content === null) return;
  if (typeof content === 'string') {
    tokenize(content, out);
    return;
  }
  if (!Array.isArray(content)) {
    throw new PromptError(`${where}.content: Input should be a valid string or a valid list`);
  }
  for (let i = 0; i < content.length; i++) {
    const part: unknown = content[i];
    if (typeof part === 'string') {
      tokenize(part, out);
      continue;
    }
    if (!isObj(part) || typeof part.type !== 'string') {
      throw new PromptError(`${where}.content.${i}: each content part must be an object with a "type"`);
    }
    if (part.type === 'text' || part.type === 'input_text' || part.type === 'refusal') {
      const t = part.type === 'refusal' ? part.refusal : part.text;
      if (typeof t !== 'string') throw new PromptError(`${where}.content.${i}.text: Field required`);
      tokenize(t, out);
    } else {
      const tag = `<|${part.type}:${hashString(JSON.stringify(part)).toString(36)}|>`;
      for (let k = 0; k < MM_PART_TOKENS; k++) out.push(tag);
    }
  }
}

function header(role: string, out: string[]): void {
  out.push(SPECIAL.HEADER_START, role, SPECIAL.HEADER_END, SPECIAL.NL2);
}

/** Renders `messages` (+ `tools`) through a Llama-3 style chat template. */
export function renderChat(body: Record<string, unknown>): RenderedPrompt {
  const messages = body.messages;
  if (!Array.isArray(messages)) {
    throw new PromptError(
      messages === undefined ? "[{'type': 'missing', 'loc': ('body', 'messages'), 'msg': 'Field required'}]" : "[{'type': 'list_type', 'loc': ('body', 'messages'), 'msg': 'Input should be a valid list'}]",
    );
  }
  const out: string[] = [SPECIAL.BOS];
  if (Array.isArray(body.tools) && body.tools.length > 0) {
    header('system', out);
    tokenize(`Environment: ipython\nTools: ${JSON.stringify(body.tools)}`, out);
    out.push(SPECIAL.EOT);
  }
  const last = messages.length - 1;
  const continueFinal = body.continue_final_message === true;
  for (let i = 0; i < messages.length; i++) {
    const m: unknown = messages[i];
    if (!isObj(m) || typeof m.role !== 'string') {
      throw new PromptError(`[{'type': 'missing', 'loc': ('body', 'messages', ${i}, 'role'), 'msg': 'Field required'}]`);
    }
    header(m.role, out);
    pushContent(m.content, out, `messages.${i}`);
    if (m.tool_calls !== undefined && m.tool_calls !== null) tokenize(JSON.stringify(m.tool_calls), out);
    if (!(continueFinal && i === last)) out.push(SPECIAL.EOT);
  }
  if (body.add_generation_prompt !== false && !continueFinal) header('assistant', out);
  return { tokens: out, hash: hashBlock(0, out, 0, out.length) };
}

/**
 * The prompts of a /v1/completions body: a string, a list of strings, a list of token ids
 * or a list of lists of token ids (vLLM accepts all four).
 */
export function renderCompletionPrompts(prompt: unknown): RenderedPrompt[] {
  if (typeof prompt === 'string') return [textPrompt(prompt, true)];
  if (Array.isArray(prompt)) {
    if (prompt.length === 0) throw new PromptError('Prompt cannot be empty');
    if (prompt.every((p) => typeof p === 'string')) return (prompt as string[]).map((p) => textPrompt(p, true));
    if (prompt.every((p) => Number.isInteger(p))) return [idPrompt(prompt as number[])];
    if (prompt.every((p) => Array.isArray(p) && p.length > 0 && p.every((x) => Number.isInteger(x)))) {
      return (prompt as number[][]).map(idPrompt);
    }
  }
  if (prompt === undefined) {
    throw new PromptError("[{'type': 'missing', 'loc': ('body', 'prompt'), 'msg': 'Field required'}]");
  }
  throw new PromptError('prompt must be a string, a list of strings, a list of token ids or a list of lists of token ids');
}

function textPrompt(text: string, bos: boolean): RenderedPrompt {
  const out = bos ? [SPECIAL.BOS] : [];
  tokenize(text, out);
  return { tokens: out, hash: hashBlock(0, out, 0, out.length) };
}

function idPrompt(ids: number[]): RenderedPrompt {
  const out = ids.map((id) => `<#${id}>`);
  return { tokens: out, hash: hashBlock(0, out, 0, out.length) };
}

/** Inputs of a /v1/embeddings body, with their token counts and texts (for the vector). */
export function renderEmbeddingInputs(input: unknown): { key: string; tokens: number }[] {
  const one = (v: unknown): { key: string; tokens: number } => {
    if (typeof v === 'string') return { key: v, tokens: countTokens(v) + 2 };
    if (Array.isArray(v) && v.every((x) => Number.isInteger(x))) return { key: `ids:${v.join(',')}`, tokens: v.length };
    throw new PromptError('input must be a string, a list of strings, a list of token ids or a list of lists of token ids');
  };
  if (typeof input === 'string') return [one(input)];
  if (Array.isArray(input)) {
    if (input.length === 0) throw new PromptError('Input cannot be empty');
    if (input.every((x) => Number.isInteger(x))) return [one(input)];
    return input.map(one);
  }
  if (input === undefined) throw new PromptError("[{'type': 'missing', 'loc': ('body', 'input'), 'msg': 'Field required'}]");
  return [one(input)];
}
