import { describe, expect, it } from 'vitest';
import { guardAllows, promptFeatures } from '../../worker/protocol/rules/semantic-guard';
import { cosine, LOCAL_DIMENSIONS, localEmbedding } from '../../worker/cache/semantic/local-embedding';
import { semanticPrompt } from '../../worker/cache/semantic/prompt';
import { contentTokens, stem } from '../../worker/protocol/rules/semantic-text';

const allows = (a: string, b: string, depth = 1) => guardAllows({ text: a, depth }, { text: b, depth });
const refusal = (a: string, b: string) => {
  const v = allows(a, b);
  return v.ok ? null : v.reason;
};

describe('semantic guards', () => {
  it('"what is 2+2" never answers "what is 2+3" (nor 2+2+2, nor 2*2)', () => {
    expect(refusal('what is 2+2', 'what is 2+3')).toBe('numbers');
    expect(refusal('what is 2+2', 'what is 2+2+2')).toBe('numbers');
    expect(refusal('what is 2+2', 'what is 2*2')).toBe('arithmetic');
    expect(refusal('What is 9 minus 4?', 'What is 9 plus 4?')).toBe('arithmetic');
    expect(allows('What is 12 times 12?', 'what is 12 * 12')).toEqual({ ok: true }); // "times" is "*"
    expect(allows('what is 2+2', 'What is 2 + 2?')).toEqual({ ok: true });
  });

  it('numbers: order, written-out small numbers, thousands separators, decimals, signs', () => {
    expect(promptFeatures('Give me three tips, then 1,000 more, then 2.50 and -5').numbers).toEqual(['1000', '2.5', '-5', '3']);
    expect(refusal('Is 3 bigger than 5?', 'Is 5 bigger than 3?')).toBe('numbers');
    expect(allows('give me two examples', 'Give me 2 examples')).toEqual({ ok: true }); // "two" is 2
    expect(refusal('3 cats and two dogs', 'three cats and 2 dogs')).toBe('numbers'); // digits first, then words: mixed forms refuse (safe, not clever)
    expect(refusal('Is -5 greater than 3?', 'Is 5 greater than 3?')).toBe('numbers');
  });

  it('code: fenced blocks, inline spans and identifiers, as multisets', () => {
    expect(refusal('What does `arr.pop()` do?', 'What does `arr.shift()` do?')).toBe('code');
    expect(refusal('Why does my_function fail?', 'Why does my_other_function fail?')).toBe('code');
    expect(refusal('How do I use useEffect?', 'How do I use useState?')).toBe('code');
    expect(refusal('Parse config.yaml', 'Parse config.json')).toBe('code');
    expect(refusal('Fix ```a = b``` please', 'Fix ```a = c``` please')).toBe('code');
    expect(promptFeatures('e.g. this, i.e. that').code).toEqual([]); // abbreviations are not member access
    expect(allows('What does os.path.join do?', 'what does os.path.join do')).toEqual({ ok: true });
  });

  it('named entities, in order, found case-insensitively in the other prompt', () => {
    expect(refusal('What is the capital of France?', 'What is the capital of Germany?')).toBe('entities');
    expect(refusal('Flights from London to Paris', 'Flights from Paris to London')).toBe('entities');
    expect(refusal('Paris is lovely in spring', 'Berlin is lovely in spring')).toBe('entities'); // at the start of a sentence too
    expect(allows('Who wrote Pride and Prejudice?', 'who wrote pride and prejudice')).toEqual({ ok: true });
    expect(allows('What is Docker?', 'What is Docker? Explain.')).toEqual({ ok: true }); // "Explain" starts a sentence: a common word
    expect(refusal("What's the weather today?", "What's the weather tomorrow?")).toBe('entities'); // relative days always count
  });

  it('quotes, links, units, negations and polar words', () => {
    expect(refusal('Define "ephemeral"', 'Define "ethereal"')).toBe('quoted');
    expect(refusal('Summarize https://a.example/x', 'Summarize https://a.example/y')).toBe('links');
    expect(refusal('Convert 5 km to miles', 'Convert 5 miles to km')).toBe('units');
    expect(refusal('100 USD in EUR', '100 € in $')).toBe('units');
    expect(allows('100 USD in EUR', '100 dollars in euros')).toEqual({ ok: true });
    expect(refusal('Which foods are safe for dogs?', 'Which foods are not safe for dogs?')).toBe('negation');
    expect(refusal('Why do people like cilantro?', "Why don't people like cilantro?")).toBe('negation');
    expect(refusal('How do I enable dark mode?', 'How do I disable dark mode?')).toBe('polarity');
    expect(refusal('Sort ascending', 'Sort descending')).toBe('polarity');
  });

  it('one content word swapped for another is refused; inflections, reordering and extra words are not', () => {
    expect(refusal('How do I train a puppy?', 'How do I train a kitten?')).toBe('substitution');
    expect(refusal('How do I paint a bedroom wall?', 'How do I paint a bathroom wall?')).toBe('substitution');
    expect(allows('How do I train a puppy?', 'how can i train the puppy')).toEqual({ ok: true });
    expect(allows('Explain how photosynthesis works.', 'Explain how photosynthesis is working')).toEqual({ ok: true });
    expect(allows('Why do cats purr?', 'What is the reason cats purr?')).toEqual({ ok: true });
  });

  it('depth must match', () => {
    expect(guardAllows({ text: 'Continue.', depth: 1 }, { text: 'Continue.', depth: 3 })).toEqual({ ok: false, reason: 'depth' });
  });
});

describe('local lexical embedding', () => {
  it('is deterministic, L2-normalized, and scores by shared content words', () => {
    const a = localEmbedding('How do I reset my password?')!;
    expect(a).toHaveLength(LOCAL_DIMENSIONS);
    expect(cosine(a, a)).toBeCloseTo(1, 6);
    expect(localEmbedding('How do I reset my password?')).toEqual(a);
    expect(cosine(a, localEmbedding('how can i reset the password')!)).toBeCloseTo(1, 6); // stop words, case, punctuation
    expect(cosine(a, localEmbedding('I forgot my login, what now?')!)).toBeLessThan(0.3); // a paraphrase with other words: a miss
    expect(localEmbedding('Is it the?')).toBeNull(); // nothing but stop words: nothing to compare
  });

  it('stems inflections and expands contractions', () => {
    expect(['running', 'runs', 'ran'].map(stem)).toEqual(['run', 'run', 'ran']);
    expect(contentTokens("Don't stop believing")).toEqual(['not', 'stop', 'believ']);
  });
});

describe('what the semantic cache embeds', () => {
  it('the last user message; everything else is the scope, matched exactly', () => {
    const body = { model: 'm', temperature: 0, max_tokens: 9, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: [{ type: 'text', text: '  Hello\n there ' }] }] };
    expect(semanticPrompt('chat', body, 100)).toEqual({
      text: 'Hello there',
      depth: 2,
      rest: { model: 'm', temperature: 0, max_tokens: 9, messages: [{ role: 'system', content: 'Be brief.' }], last_message: { role: 'user' } },
    });
    expect(semanticPrompt('completions', { model: 'm', prompt: 'Once upon a time' }, 100)).toMatchObject({ text: 'Once upon a time', depth: 1 });
  });

  it('is not a candidate: assistant or tool last, images, prompt arrays, long or empty text', () => {
    expect(semanticPrompt('chat', { messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }] }, 100)).toBeNull();
    expect(semanticPrompt('chat', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 100)).toBeNull();
    expect(semanticPrompt('completions', { prompt: ['a', 'b'] }, 100)).toBeNull();
    expect(semanticPrompt('chat', { messages: [{ role: 'user', content: 'x'.repeat(101) }] }, 100)).toBeNull();
    expect(semanticPrompt('chat', { messages: [{ role: 'user', content: '   ' }] }, 100)).toBeNull();
    expect(semanticPrompt('embeddings', { input: 'x' }, 100)).toBeNull();
  });
});
