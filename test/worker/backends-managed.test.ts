import { exportPKCS8, exportSPKI, generateKeyPair } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { resetVertexTokens } from '../../worker/backends/vertex';
import { sseData } from '../support/sse';
import { ANSWER, ANSWER_TOKENS, fakeRouter, jsonEvents, spawnFake, streamedText, type FakeServer, type RecordedCall } from './fakes';
import { ledgerRecords } from './usage-support';

// The managed providers behind the router, end to end, each against its stand-in
// (scripts/dev/standins/: openai-api.ts, anthropic.ts, bedrock.ts, vertex.ts): chat, stream, tools,
// usage, and the usage record priced from [prices] and marked with the backend.

const PRICE = { input: 3, cached_input: 0.3, output: 15 }; // USD per million tokens
const cost = (u: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details?: { cached_tokens?: number } }) => {
  const cached = u.prompt_tokens_details?.cached_tokens ?? 0;
  return ((u.prompt_tokens - cached) * PRICE.input + cached * PRICE.cached_input + u.completion_tokens * PRICE.output) / 1e6;
};
const weather = { type: 'function', function: { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { query: { type: 'string' } } } } };

interface Provider {
  name: string;
  setup(): Promise<{ fake: FakeServer; backend: Record<string, unknown>; secrets: Record<string, string> }>;
  /** What every call to the provider must carry. */
  checkCall(call: RecordedCall): void;
}

const providers: Provider[] = [
  {
    name: 'openai',
    async setup() {
      const fake = await spawnFake('openai', { api_key: 'sk-router', organization: 'org-9', project: 'proj-9' });
      return { fake, secrets: { OPENAI_API_KEY: 'sk-router' }, backend: { kind: 'openai', url: fake.url, auth_secret: 'OPENAI_API_KEY', openai: { organization: 'org-9', project: 'proj-9' } } };
    },
    checkCall(c) {
      expect(c.path).toBe('/v1/chat/completions');
      expect(c.headers).toMatchObject({ authorization: 'Bearer sk-router', 'openai-organization': 'org-9', 'openai-project': 'proj-9' });
    },
  },
  {
    name: 'azure-openai',
    async setup() {
      const fake = await spawnFake('azure', { api_key: 'az-router', deployments: ['sl-prod'] });
      return { fake, secrets: { AZURE_OPENAI_KEY: 'az-router' }, backend: { kind: 'azure-openai', url: fake.url, auth_secret: 'AZURE_OPENAI_KEY', azure: { api_version: '2024-10-21', deployments: { 'org/sl-model': 'sl-prod' } } } };
    },
    checkCall(c) {
      expect(c.path).toBe('/openai/deployments/sl-prod/chat/completions?api-version=2024-10-21');
      expect(c.headers['api-key']).toBe('az-router');
      expect(c.headers.authorization).toBeUndefined();
    },
  },
  {
    name: 'anthropic',
    async setup() {
      const fake = await spawnFake('anthropic', { api_key: 'sk-ant-router' });
      return { fake, secrets: { ANTHROPIC_API_KEY: 'sk-ant-router' }, backend: { kind: 'anthropic', url: fake.url, auth_secret: 'ANTHROPIC_API_KEY' } };
    },
    checkCall(c) {
      expect(c.path).toBe('/v1/messages');
      expect(c.headers).toMatchObject({ 'x-api-key': 'sk-ant-router', 'anthropic-version': '2023-06-01' });
      expect(JSON.parse(c.body).max_tokens).toBeGreaterThan(0);
    },
  },
  {
    name: 'bedrock',
    async setup() {
      const fake = await spawnFake('bedrock', { access_key_id: 'AKIDROUTER', secret_access_key: 'router-secret', region: 'eu-west-1', models: ['org/sl-model'] });
      return {
        fake,
        secrets: { AWS_ACCESS_KEY_ID: 'AKIDROUTER', AWS_SECRET_ACCESS_KEY: 'router-secret' },
        backend: { kind: 'bedrock', url: fake.url, bedrock: { region: 'eu-west-1' } },
      };
    },
    checkCall(c) {
      expect(c.path).toMatch(/^\/model\/org%2Fsl-model\/converse(-stream)?$/);
      expect(c.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDROUTER\/\d{8}\/eu-west-1\/bedrock\/aws4_request/);
    },
  },
  {
    name: 'vertex',
    async setup() {
      const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
      const email = `router-${crypto.randomUUID().slice(0, 6)}@proj.iam.gserviceaccount.com`;
      const fake = await spawnFake('vertex', { client_email: email, public_key: await exportSPKI(publicKey), project: 'my-proj-1', location: 'us-central1' });
      const key = { type: 'service_account', client_email: email, private_key: await exportPKCS8(privateKey), private_key_id: 'k1', token_uri: `${fake.url}/token` };
      return { fake, secrets: { GOOGLE_SERVICE_ACCOUNT_KEY: JSON.stringify(key) }, backend: { kind: 'vertex', url: fake.url, vertex: { project: 'my-proj-1', location: 'us-central1' } } };
    },
    checkCall(c) {
      expect(c.path).toBe('/v1/projects/my-proj-1/locations/us-central1/endpoints/openapi/chat/completions');
      expect(c.headers.authorization).toMatch(/^Bearer ya29\./);
    },
  },
];

describe.each(providers)('$name backend through the router', (p) => {
  let fake: FakeServer;
  let router: Awaited<ReturnType<typeof fakeRouter>>;
  beforeAll(async () => {
    const s = await p.setup();
    fake = s.fake;
    router = await fakeRouter(s.backend, { secrets: s.secrets, extra: { prices: { sl: PRICE } } });
  });
  const providerCalls = async () => (await fake.calls()).filter((c) => c.path !== '/token');

  it('chat: the provider\'s answer and usage in OpenAI\'s format; the usage record is priced and names the backend', async () => {
    const res = await router.chat({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hello [cached]' }], max_tokens: 100, temperature: 0.2 });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-router-backend')).toBe(router.id);
    const body = (await res.json()) as Record<string, any>;
    expect(body).toMatchObject({ object: 'chat.completion', model: expect.any(String) });
    expect(body.choices[0]).toMatchObject({ index: 0, message: { role: 'assistant', content: ANSWER }, finish_reason: 'stop' });
    expect(body.usage.completion_tokens).toBe(ANSWER_TOKENS.length);
    expect(body.usage.prompt_tokens).toBeGreaterThanOrEqual(4);
    expect(body.usage.prompt_tokens_details?.cached_tokens).toBeGreaterThan(0); // every stand-in reports cache reads on [cached]
    p.checkCall((await providerCalls()).at(-1)!);

    const record = (await ledgerRecords(router.t)).at(-1)!;
    expect(record).toMatchObject({ backend: router.id, model: 'sl', prompt_tokens: body.usage.prompt_tokens, completion_tokens: ANSWER_TOKENS.length, cached_tokens: body.usage.prompt_tokens_details.cached_tokens, tokens_estimated: false });
    expect(record.cost_usd).toBeCloseTo(cost(body.usage), 12);
    expect(record.cost_usd).toBeGreaterThan(0);
  });

  it('stream: OpenAI chunks, one finish, the usage chunk, [DONE]', async () => {
    const res = await router.chat({ messages: [{ role: 'user', content: 'Stream it' }], stream: true, stream_options: { include_usage: true }, max_tokens: 3 });
    expect(res.status).toBe(200);
    const events = await sseData(res);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = jsonEvents(events);
    expect(chunks[0]!.choices[0].delta.role).toBe('assistant');
    expect(streamedText(chunks)).toBe(ANSWER_TOKENS.slice(0, 3).join(''));
    expect(chunks.flatMap((c) => c.choices.map((x: any) => x.finish_reason)).filter(Boolean)).toEqual(['length']);
    expect(chunks.at(-1)!.usage).toMatchObject({ completion_tokens: 3 });
    p.checkCall((await providerCalls()).at(-1)!);
  });

  it('tools: a tool call comes back as tool_calls, and the tool result goes back to the provider', async () => {
    const first = await router.chat({ messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: [weather] });
    expect(first.status).toBe(200);
    const body = (await first.json()) as Record<string, any>;
    expect(body.choices[0].finish_reason).toBe('tool_calls');
    const call = body.choices[0].message.tool_calls[0];
    expect(call).toMatchObject({ id: expect.any(String), type: 'function', function: { name: 'get_weather' } });
    expect(JSON.parse(call.function.arguments)).toEqual({ query: 'hello' });

    const second = await router.chat({
      tools: [weather],
      messages: [{ role: 'user', content: 'Weather in Paris?' }, body.choices[0].message, { role: 'tool', tool_call_id: call.id, content: 'Sunny, 21 °C' }],
    });
    expect(second.status).toBe(200);
    expect(((await second.json()) as any).choices[0].message.content).toBe(ANSWER);

    const streamed = jsonEvents(await sseData(await router.chat({ messages: [{ role: 'user', content: 'Weather?' }], tools: [weather], stream: true })));
    const deltas = streamed.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []);
    expect(deltas[0]).toMatchObject({ index: 0, id: expect.any(String), type: 'function', function: { name: 'get_weather' } });
    expect(JSON.parse(deltas.map((d: any) => d.function?.arguments ?? '').join(''))).toEqual({ query: 'hello' });
    expect(streamed.flatMap((c) => c.choices.map((x: any) => x.finish_reason)).filter(Boolean)).toEqual(['tool_calls']);
  });

  it('a provider 429 is answered as a failure of that backend, with no retry against it', async () => {
    const before = (await providerCalls()).length;
    const res = await router.chat({ messages: [{ role: 'user', content: 'too many [429]' }] });
    expect(res.status).toBe(502); // the only backend, throttled: nothing else to try
    expect((await providerCalls()).length).toBe(before + 1);
    // Throttled until the provider's reset: the next request does not reach it.
    const next = await router.chat({ messages: [{ role: 'user', content: 'again' }] });
    expect(next.status).toBe(503);
    expect((await providerCalls()).length).toBe(before + 1);
  });
});

describe('provider translations', () => {
  it('anthropic: system, merged consecutive turns, images, tool results and max_tokens in the Messages shape', async () => {
    const fake = await spawnFake('anthropic', { api_key: 'k' });
    const r = await fakeRouter({ kind: 'anthropic', url: fake.url, auth_secret: 'ANTHROPIC_API_KEY', anthropic: { default_max_tokens: 321 } }, { secrets: { ANTHROPIC_API_KEY: 'k' } });
    const res = await r.chat({
      messages: [
        { role: 'system', content: 'Rule one.' },
        { role: 'developer', content: 'Rule two.' },
        { role: 'user', content: 'first a1' },
        { role: 'user', content: [{ type: 'text', text: 'second' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] },
      ],
      stop: 'END',
      user: 'u-1',
    });
    expect(res.status).toBe(200);
    const sent = JSON.parse((await fake.calls()).find((c) => c.body.includes('a1'))!.body);
    expect(sent).toEqual({
      model: 'org/sl-model',
      max_tokens: 321,
      system: 'Rule one.\n\nRule two.',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'first a1' },
            { type: 'text', text: 'second' },
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
          ],
        },
      ],
      stop_sequences: ['END'],
      metadata: { user_id: 'u-1' },
    });
  });

  it('anthropic and bedrock: tool choice, tool history and inference settings in each provider\'s shape', async () => {
    const call = { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"query":"Paris"}' } };
    const history = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Weather tc1?' },
      { role: 'assistant', content: null, tool_calls: [call] },
      { role: 'tool', tool_call_id: 'call_1', content: 'Sunny' },
      { role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/jpeg;base64,/9j/AA==' } }, { type: 'text', text: 'And this?' }] },
    ];
    const fake = await spawnFake('anthropic', { api_key: 'k' });
    const a = await fakeRouter({ kind: 'anthropic', url: fake.url, auth_secret: 'ANTHROPIC_API_KEY' }, { secrets: { ANTHROPIC_API_KEY: 'k' } });
    const res = await a.chat({ messages: history, tools: [weather], tool_choice: 'required', parallel_tool_calls: false, max_completion_tokens: 77, temperature: 1.5, top_p: 0.9 });
    expect(res.status).toBe(200);
    const sent = JSON.parse((await fake.calls()).find((c) => c.body.includes('tc1'))!.body);
    expect(sent).toEqual({
      model: 'org/sl-model',
      max_tokens: 77,
      system: 'Be brief.',
      temperature: 1, // Anthropic's range ends at 1
      top_p: 0.9,
      tools: [{ name: 'get_weather', description: 'Weather in a city', input_schema: weather.function.parameters }],
      tool_choice: { type: 'any', disable_parallel_tool_use: true },
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'Weather tc1?' }] },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'call_1', name: 'get_weather', input: { query: 'Paris' } }] },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'call_1', content: 'Sunny' },
            { type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: '/9j/AA==' } },
            { type: 'text', text: 'And this?' },
          ],
        },
      ],
    });

    const bfake = await spawnFake('bedrock', { access_key_id: 'AKIDT', secret_access_key: 's', region: 'us-east-1', models: ['org/sl-model'] });
    const b = await fakeRouter({ kind: 'bedrock', url: bfake.url, bedrock: { region: 'us-east-1' } }, { secrets: { AWS_ACCESS_KEY_ID: 'AKIDT', AWS_SECRET_ACCESS_KEY: 's' } });
    const bres = await b.chat({ messages: history, tools: [weather], tool_choice: { type: 'function', function: { name: 'get_weather' } }, max_tokens: 55, stop: ['END'] });
    expect(bres.status).toBe(200);
    const bsent = JSON.parse((await bfake.calls()).find((c) => c.body.includes('tc1'))!.body);
    expect(bsent).toEqual({
      system: [{ text: 'Be brief.' }],
      inferenceConfig: { maxTokens: 55, stopSequences: ['END'] },
      toolConfig: { tools: [{ toolSpec: { name: 'get_weather', description: 'Weather in a city', inputSchema: { json: weather.function.parameters } } }], toolChoice: { tool: { name: 'get_weather' } } },
      messages: [
        { role: 'user', content: [{ text: 'Weather tc1?' }] },
        { role: 'assistant', content: [{ toolUse: { toolUseId: 'call_1', name: 'get_weather', input: { query: 'Paris' } } }] },
        { role: 'user', content: [{ toolResult: { toolUseId: 'call_1', content: [{ text: 'Sunny' }] } }, { image: { format: 'jpeg', source: { bytes: '/9j/AA==' } } }, { text: 'And this?' }] },
      ],
    });
    // A tool call whose arguments are not JSON is the client's to fix: 400, nothing sent.
    const before = (await bfake.calls()).length;
    const broken = await b.chat({ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', tool_calls: [{ ...call, function: { name: 'get_weather', arguments: '{oops' } }] }, { role: 'tool', tool_call_id: 'call_1', content: 'y' }] });
    expect(broken.status).toBe(400);
    expect((await bfake.calls()).length).toBe(before);
  });

  it('anthropic: an error event mid-stream ends the client stream with an error; overloaded (529) moves on like a 503', async () => {
    const fake = await spawnFake('anthropic', { api_key: 'k' });
    const r = await fakeRouter({ kind: 'anthropic', url: fake.url, auth_secret: 'ANTHROPIC_API_KEY' }, { secrets: { ANTHROPIC_API_KEY: 'k' } });
    const events = await sseData(await r.chat({ messages: [{ role: 'user', content: '[stream-error]' }], stream: true }));
    expect(events).not.toContain('[DONE]');
    expect(jsonEvents(events).at(-1)!.error).toMatchObject({ code: 'upstream_stream_error' });
    const overloaded = await r.chat({ messages: [{ role: 'user', content: '[overloaded]' }] });
    expect(overloaded.status).toBe(502);
    expect(((await overloaded.json()) as any).error.message).toContain('503 ');
  });

  it('bedrock: a wrong secret is refused by the stand-in\'s own SigV4 check; an exception frame mid-stream is a stream error', async () => {
    const fake = await spawnFake('bedrock', { access_key_id: 'AKIDX', secret_access_key: 'right', region: 'us-east-1', models: ['org/sl-model'] });
    const wrong = await fakeRouter({ kind: 'bedrock', url: fake.url, bedrock: { region: 'us-east-1' } }, { secrets: { AWS_ACCESS_KEY_ID: 'AKIDX', AWS_SECRET_ACCESS_KEY: 'wrong' } });
    const denied = await wrong.chat({ messages: [{ role: 'user', content: 'hi' }] });
    expect(denied.status).toBe(502);
    expect(((await denied.json()) as any).error.message).toContain('InvalidSignatureException');
    const right = await fakeRouter({ kind: 'bedrock', url: fake.url, bedrock: { region: 'us-east-1' } }, { secrets: { AWS_ACCESS_KEY_ID: 'AKIDX', AWS_SECRET_ACCESS_KEY: 'right' } });
    const events = await sseData(await right.chat({ messages: [{ role: 'user', content: '[stream-throttle]' }], stream: true }));
    expect(streamedText(jsonEvents(events))).toBe(ANSWER_TOKENS[0]);
    expect(jsonEvents(events).at(-1)!.error.message).toContain('throttlingException');
    // Images go as bytes; images by URL cannot (Bedrock takes bytes only): 400 naming what.
    const byUrl = await right.chat({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] }] });
    expect(byUrl.status).toBe(400);
    expect(((await byUrl.json()) as any).error.message).toContain('images by URL');
  });

  it('vertex: one token mint serves many requests (concurrent ones included), until it nears its expiry', async () => {
    resetVertexTokens();
    const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
    const email = `mint-${crypto.randomUUID().slice(0, 6)}@proj.iam.gserviceaccount.com`;
    const fake = await spawnFake('vertex', { client_email: email, public_key: await exportSPKI(publicKey), project: 'my-proj-1', location: 'us-central1', token_ttl_s: 3600 });
    const key = { client_email: email, private_key: await exportPKCS8(privateKey), private_key_id: 'k2', token_uri: `${fake.url}/token` };
    const r = await fakeRouter({ kind: 'vertex', url: fake.url, vertex: { project: 'my-proj-1', location: 'us-central1' } }, { secrets: { GOOGLE_SERVICE_ACCOUNT_KEY: JSON.stringify(key) } });
    const answers = await Promise.all(Array.from({ length: 5 }, (_, i) => r.chat({ messages: [{ role: 'user', content: `q${i}` }] })));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
    expect((await r.chat({ messages: [{ role: 'user', content: 'later' }] })).status).toBe(200);
    expect((await fake.calls()).filter((c) => c.path === '/token')).toHaveLength(1);

    // A token that expires within the refresh margin (5 min) is minted again before use.
    const shortFake = await spawnFake('vertex', { client_email: email, public_key: await exportSPKI(publicKey), project: 'my-proj-1', location: 'us-central1', token_ttl_s: 200 });
    const shortKey = { ...key, private_key_id: 'k3', token_uri: `${shortFake.url}/token` };
    const s = await fakeRouter({ kind: 'vertex', url: shortFake.url, vertex: { project: 'my-proj-1', location: 'us-central1' } }, { secrets: { GOOGLE_SERVICE_ACCOUNT_KEY: JSON.stringify(shortKey) } });
    expect((await s.chat({ messages: [{ role: 'user', content: 'a' }] })).status).toBe(200);
    expect((await s.chat({ messages: [{ role: 'user', content: 'b' }] })).status).toBe(200);
    expect((await shortFake.calls()).filter((c) => c.path === '/token')).toHaveLength(2);

    // A key the token endpoint refuses: the backend fails (401 → next backend), the key never leaks.
    const other = await generateKeyPair('RS256', { extractable: true });
    const bad = await fakeRouter({ kind: 'vertex', url: fake.url, vertex: { project: 'my-proj-1', location: 'us-central1' } }, { secrets: { GOOGLE_SERVICE_ACCOUNT_KEY: JSON.stringify({ ...key, private_key_id: 'k4', private_key: await exportPKCS8(other.privateKey) }) } });
    const refused = await bad.chat({ messages: [{ role: 'user', content: 'x' }] });
    expect(refused.status).toBe(502);
    const message = ((await refused.json()) as any).error.message as string;
    expect(message).toContain('invalid_grant');
    expect(message).not.toContain('PRIVATE KEY');
  });
});
