import { describe, expect, it } from 'vitest';
import { scrapeOne } from '../../durable-objects/backend-metrics';
import { metricsUrlOf } from '../../worker/protocol/rules/backend-endpoints';
import { renderChat } from '../../worker/backends/chat-template';
import { compileConfig } from '../../worker/config/compiled';
import { configSecrets } from '../../worker/config/secrets';

// The config of the modal, replicate and triton kinds: cross-checks, defaults, secrets, scraping.

const base = (backend: Record<string, unknown>, models: Record<string, unknown>[] = [{ id: 'm' }]) => ({
  regions: [{ id: 'r', latitude: 0, longitude: 0 }],
  models,
  backends: [{ id: 'b', region: 'r', url: 'https://api.example.com', models: models.map((m) => m.id), ...backend }],
});
const errorsOf = (backend: Record<string, unknown>, models?: Record<string, unknown>[]) => {
  const r = compileConfig(base(backend, models));
  return r.ok ? [] : r.errors;
};
const parsed = (backend: Record<string, unknown>) => {
  const r = compileConfig(base(backend));
  if (!r.ok) throw new Error(r.errors.join('; '));
  return r.config.raw.backends[0]!;
};

describe('backend kinds in the config', () => {
  it('replicate and triton need their table; each table only on its kind', () => {
    expect(errorsOf({ kind: 'replicate' }).join()).toContain('kind "replicate" needs a replicate table');
    expect(errorsOf({ kind: 'triton' }).join()).toContain('kind "triton" needs a triton table');
    expect(errorsOf({ kind: 'vllm', modal: {} }).join()).toContain('[modal] settings on a backend of kind "vllm"');
    expect(errorsOf({ kind: 'modal', triton: {} }).join()).toContain('[triton] settings on a backend of kind "modal"');
    expect(errorsOf({ kind: 'modal' })).toEqual([]);
  });

  it('replicate: exactly one of model and deployment, version only with model, owner/name form', () => {
    expect(errorsOf({ kind: 'replicate', replicate: {} }).join()).toContain('set exactly one of model and deployment');
    expect(errorsOf({ kind: 'replicate', replicate: { model: 'a/b', deployment: 'c/d' } }).join()).toContain('set exactly one');
    expect(errorsOf({ kind: 'replicate', replicate: { deployment: 'c/d', version: 'a'.repeat(64) } }).join()).toContain('version goes with model');
    expect(errorsOf({ kind: 'replicate', replicate: { model: 'no-slash' } }).join()).toContain('must be "owner/name"');
    expect(errorsOf({ kind: 'replicate', replicate: { model: 'a/b' }, metrics_url: 'https://x.example.com/metrics' }).join()).toContain('Replicate serves no load metrics');
    const r = parsed({ kind: 'replicate', replicate: { model: 'meta/meta-llama-3-70b-instruct', input: { max_tokens: 'max_new_tokens', seed: false } } });
    expect(r.replicate).toMatchObject({
      wait_seconds: 60,
      input: { prompt: 'prompt', system_prompt: 'system_prompt', max_tokens: 'max_new_tokens', temperature: 'temperature', top_p: 'top_p', stop: 'stop_sequences', seed: false },
      extra_input: {},
    });
  });

  it('modal: proxy key and secret go together', () => {
    expect(errorsOf({ kind: 'modal', modal: { key_secret: 'MODAL_KEY' } }).join()).toContain('key_secret and secret_secret go together');
    expect(parsed({ kind: 'modal', modal: { key_secret: 'MODAL_KEY', secret_secret: 'MODAL_SECRET' } }).modal).toEqual({ key_secret: 'MODAL_KEY', secret_secret: 'MODAL_SECRET', max_redirects: 20 });
  });

  it('triton: defaults, and custom templates need {content}', () => {
    expect(parsed({ kind: 'triton', triton: {} }).triton).toMatchObject({
      model: 'ensemble',
      chat_template: 'llama3',
      default_max_tokens: 1024,
      parameters: { max_tokens: 'max_tokens', temperature: 'temperature', top_p: 'top_p', stop: 'stop_words', seed: 'random_seed' },
    });
    expect(errorsOf({ kind: 'triton', triton: { chat_template: 'vicuna' } }).length).toBeGreaterThan(0);
    expect(errorsOf({ kind: 'triton', triton: { chat_template: { user: 'U:', assistant: 'A:{content}' } } }).length).toBeGreaterThan(0);
  });

  it('text backends serve chat models only', () => {
    const errs = errorsOf({ kind: 'triton', triton: {} }, [{ id: 'm' }, { id: 'e', type: 'embedding' }]);
    expect(errs.join()).toContain('a triton backend serves chat models only');
  });

  it('npm start and config:check know the Modal proxy secrets', () => {
    const r = compileConfig(base({ kind: 'modal', auth_secret: 'VLLM_KEY', modal: { key_secret: 'MODAL_KEY', secret_secret: 'MODAL_SECRET' } }));
    if (!r.ok) throw new Error(r.errors.join());
    expect(configSecrets(r.config.raw).map((s) => s.name)).toEqual(expect.arrayContaining(['VLLM_KEY', 'MODAL_KEY', 'MODAL_SECRET']));
  });

  it('scraping: /metrics for vllm, trtllm; nothing for modal, replicate, triton or managed providers unless metrics_url', () => {
    expect(metricsUrlOf(parsed({ kind: 'vllm', url: 'https://v.example.com/' }))).toBe('https://v.example.com/metrics');
    expect(metricsUrlOf(parsed({ kind: 'openai', url: 'https://api.openai.com' }))).toBeNull();
    expect(metricsUrlOf(parsed({ kind: 'anthropic', url: 'https://api.anthropic.com', auth_secret: 'K' }))).toBeNull();
    expect(metricsUrlOf(parsed({ kind: 'modal' }))).toBeNull();
    expect(metricsUrlOf(parsed({ kind: 'replicate', replicate: { model: 'a/b' } }))).toBeNull();
    expect(metricsUrlOf(parsed({ kind: 'triton', triton: {} }))).toBeNull();
    expect(metricsUrlOf(parsed({ kind: 'triton', triton: {}, metrics_url: 'https://t.example.com:8443/prometheus/metrics' }))).toBe('https://t.example.com:8443/prometheus/metrics');
  });

  it('a scrape target with metrics_url is read there, with the kind\'s parser', async () => {
    const seen: string[] = [];
    const fetcher = (async (url: string) => {
      seen.push(String(url));
      return new Response('trtllm_num_requests_running 3\ntrtllm_num_requests_waiting 1\n', { headers: { 'content-type': 'text/plain' } });
    }) as unknown as typeof fetch;
    const load = await scrapeOne({ id: 't', url: 'https://t.example.com', metrics_url: 'https://t.example.com:8002/metrics', kind: 'triton' }, fetcher);
    expect(seen).toEqual(['https://t.example.com:8002/metrics']);
    expect(load).toMatchObject({ running: 3, waiting: 1 });
  });

  it('chat templates: mistral folds the system text into the first instruction', () => {
    const msgs = [
      { role: 'system', content: 'S' },
      { role: 'user', content: 'U1' },
      { role: 'assistant', content: 'A1' },
      { role: 'user', content: 'U2' },
    ] as const;
    expect(renderChat('mistral', [...msgs])).toBe('[INST] S\n\nU1 [/INST] A1</s>[INST] U2 [/INST]');
    expect(renderChat('llama3', [{ role: 'tool', content: '{"ok":1}' }])).toBe('<|start_header_id|>ipython<|end_header_id|>\n\n{"ok":1}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n');
  });
});
