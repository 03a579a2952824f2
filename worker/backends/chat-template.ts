import type { ChatTemplateConfig } from '../config/backend-kinds';

// Backends that take one prompt string (Triton's generate endpoint, Replicate models without a
// chat input) get the conversation rendered here, the way the model was trained to read it.
// Named templates leave out the BOS token: the backend's tokenizer adds it (TensorRT-LLM's
// preprocessing does by default), and a second one would shift the model off its template.

/** A message reduced to text; developer messages count as system ones. */
export interface TextMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
}

interface Template {
  prefix: string;
  turn(m: TextMessage): string;
  generation: string;
}

const named: Record<'llama3' | 'chatml', Template> = {
  // Llama 3 / 3.1 / 3.3 instruct; tool results go in the "ipython" role (Llama 3.1's).
  llama3: {
    prefix: '',
    turn: (m) => `<|start_header_id|>${m.role === 'tool' ? 'ipython' : m.role}<|end_header_id|>\n\n${m.content}<|eot_id|>`,
    generation: '<|start_header_id|>assistant<|end_header_id|>\n\n',
  },
  // ChatML (Qwen, Hermes, Yi, …).
  chatml: {
    prefix: '',
    turn: (m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`,
    generation: '<|im_start|>assistant\n',
  },
};

/** Mistral / Mixtral instruct (v1): no system role, so system text opens the first user turn. */
function renderMistral(messages: readonly TextMessage[]): string {
  const system = messages.filter((m) => m.role === 'system').map((m) => m.content).join('\n\n');
  let out = '';
  let first = true;
  for (const m of messages) {
    if (m.role === 'system') continue;
    if (m.role === 'assistant') {
      out += ` ${m.content}</s>`;
      continue;
    }
    const text = first && system ? `${system}\n\n${m.content}` : m.content;
    first = false;
    out += `[INST] ${text} [/INST]`;
  }
  // A conversation of system text alone still needs an instruction to answer.
  return out || `[INST] ${system} [/INST]`;
}

/** The prompt string for a conversation under a named or custom template. */
export function renderChat(template: ChatTemplateConfig, messages: readonly TextMessage[]): string {
  if (template === 'mistral') return renderMistral(messages);
  const t: Template =
    typeof template === 'string'
      ? named[template]
      : {
          prefix: template.prefix,
          turn: (m) => fill(m.role === 'tool' ? (template.tool ?? template.user) : template[m.role], m.content),
          generation: template.generation,
        };
  return t.prefix + messages.map((m) => t.turn(m)).join('') + t.generation;
}

/** `{content}` replaced by the text, everywhere, with nothing in the text read as a placeholder. */
const fill = (pattern: string, content: string) => pattern.split('{content}').join(content);
