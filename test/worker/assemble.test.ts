import { describe, expect, it } from 'vitest';
import { CompletionAssembler } from '../../worker/openai/assemble';

const chat = (choices: unknown[], extra: Record<string, unknown> = {}) => JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'm', choices, ...extra });

describe('CompletionAssembler', () => {
  it('counts the chunks that carried generated text (the estimate when a backend reports no usage)', () => {
    const a = new CompletionAssembler('chat');
    a.add(chat([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }])); // role only
    a.add(chat([{ index: 0, delta: { content: 'Hel' }, finish_reason: null }]));
    a.add(chat([{ index: 0, delta: { content: 'lo' }, finish_reason: null }, { index: 1, delta: { content: 'Hi' }, finish_reason: null }])); // one chunk, two choices
    a.add(chat([{ index: 0, delta: { reasoning_content: 'hmm' }, finish_reason: null }])); // reasoning is not content
    a.add(chat([{ index: 0, delta: {}, finish_reason: 'stop', stop_reason: null }]));
    a.add(chat([], { usage: { prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 } }));
    a.add('not json');
    a.add('[DONE]');
    expect(a.textChunks).toBe(2);
    const r = a.result() as { choices: { index: number; message: { content: string; reasoning_content?: string }; finish_reason: unknown; stop_reason?: unknown }[]; usage: unknown };
    expect(r.choices.map((c) => c.message.content)).toEqual(['Hello', 'Hi']);
    expect(r.choices[0]!.message.reasoning_content).toBe('hmm');
    // vLLM's own members of a choice (stop_reason) are kept on the answer.
    expect(r.choices[0]).toMatchObject({ finish_reason: 'stop', stop_reason: null });
    expect(r.usage).toEqual({ prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 });
  });

  it('completions: a chunk counts when its text is not empty', () => {
    const a = new CompletionAssembler('completions');
    const c = (text: string, finish: string | null) => JSON.stringify({ id: 'cmpl-1', object: 'text_completion', created: 1, model: 'm', choices: [{ index: 0, text, logprobs: null, finish_reason: finish, stop_reason: null }] });
    a.add(c('', null));
    a.add(c('one', null));
    a.add(c(' two', 'length'));
    expect(a.textChunks).toBe(2);
    expect((a.result() as { choices: { text: string; finish_reason: string }[] }).choices[0]).toMatchObject({ text: 'one two', finish_reason: 'length', stop_reason: null });
  });
});
