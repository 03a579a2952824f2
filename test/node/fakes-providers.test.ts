import Anthropic from '@anthropic-ai/sdk';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand, type ConverseStreamOutput } from '@aws-sdk/client-bedrock-runtime';
import { exportPKCS8, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import OpenAI, { AzureOpenAI } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANSWER_TOKENS, type Fake } from '../../scripts/dev/standins/common';
import { startAnthropicFake, startAzureFake, startBedrockFake, startOpenAIFake, startVertexFake } from '../../scripts/dev/standins';

// The managed providers' stand-ins (scripts/dev/standins/), driven by each provider's own Node SDK:
// if the SDK reads a stand-in, the router's adapter is tested against the wire format the
// provider speaks. No retries in the clients: each refusal is seen as the stand-in sent it.

const ANSWER = ANSWER_TOKENS.join('');
const fakes: Fake[] = [];
afterAll(() => Promise.all(fakes.map((f) => f.close())));
const started = async (f: Promise<Fake>) => {
  const fake = await f;
  fakes.push(fake);
  return fake;
};
const weather = { type: 'function' as const, function: { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { query: { type: 'string' } } } } };

describe('openai SDK against the OpenAI stand-in', () => {
  let client: OpenAI;
  beforeAll(async () => {
    const fake = await started(startOpenAIFake({ api_key: 'sk-node', organization: 'org-1', project: 'proj-1' }));
    client = new OpenAI({ apiKey: 'sk-node', organization: 'org-1', project: 'proj-1', baseURL: `${fake.url}/v1`, maxRetries: 0 });
  });

  it('chat, stream with usage, tools, embeddings', async () => {
    const chat = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hi' }] });
    expect(chat.choices[0]!.message.content).toBe(ANSWER);
    expect(chat.usage).toMatchObject({ prompt_tokens: 2, completion_tokens: ANSWER_TOKENS.length });
    const { data, response } = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    expect(data.object).toBe('chat.completion');
    expect(response.headers.get('x-ratelimit-remaining-requests')).toMatch(/^\d+$/);

    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage: unknown = null;
    for await (const c of stream) {
      text += c.choices[0]?.delta.content ?? '';
      if (c.usage) usage = c.usage;
    }
    expect(text).toBe(ANSWER);
    expect(usage).toMatchObject({ completion_tokens: ANSWER_TOKENS.length });

    const tool = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Weather?' }], tools: [weather] });
    const call = tool.choices[0]!.message.tool_calls![0]!;
    expect(call).toMatchObject({ type: 'function', function: { name: 'get_weather', arguments: '{"query":"hello"}' } });
    const after = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      tools: [weather],
      messages: [{ role: 'user', content: 'Weather?' }, tool.choices[0]!.message, { role: 'tool', tool_call_id: call.id, content: 'sunny' }],
    });
    expect(after.choices[0]!.message.content).toBe(ANSWER);

    const emb = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'] });
    expect(emb.data).toHaveLength(2);
  });

  it('refuses a bad key, a stray tool message and answers 429 with its rate-limit headers', async () => {
    const fake = fakes[0]!;
    const wrong = new OpenAI({ apiKey: 'sk-wrong', organization: 'org-1', project: 'proj-1', baseURL: `${fake.url}/v1`, maxRetries: 0 });
    await expect(wrong.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status: 401, code: 'invalid_api_key' });
    await expect(client.chat.completions.create({ model: 'm', messages: [{ role: 'tool', tool_call_id: 'nope', content: 'x' }] })).rejects.toMatchObject({ status: 400 });
    const limited = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: '[429]' }] }).catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(OpenAI.RateLimitError);
    expect((limited as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after')).toBe('20');
    expect((limited as InstanceType<typeof OpenAI.RateLimitError>).headers.get('x-ratelimit-remaining-requests')).toBe('0');
  });
});

describe('AzureOpenAI (openai SDK) against the Azure stand-in', () => {
  it('calls a deployment with api-key and api-version; refuses an unknown version or deployment', async () => {
    const fake = await started(startAzureFake({ api_key: 'az-key', deployments: ['gpt4o-prod'] }));
    const client = new AzureOpenAI({ endpoint: fake.url, apiKey: 'az-key', apiVersion: '2024-10-21', deployment: 'gpt4o-prod', maxRetries: 0 });
    const chat = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello there' }] });
    expect(chat.choices[0]!.message.content).toBe(ANSWER);
    const old = new AzureOpenAI({ endpoint: fake.url, apiKey: 'az-key', apiVersion: '2023-01-01', deployment: 'gpt4o-prod', maxRetries: 0 });
    await expect(old.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status: 400 });
    const missing = new AzureOpenAI({ endpoint: fake.url, apiKey: 'az-key', apiVersion: '2024-10-21', deployment: 'nope', maxRetries: 0 });
    await expect(missing.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status: 404 });
    const wrong = new AzureOpenAI({ endpoint: fake.url, apiKey: 'other', apiVersion: '2024-10-21', deployment: 'gpt4o-prod', maxRetries: 0 });
    await expect(wrong.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status: 401 });
  });
});

describe('@anthropic-ai/sdk against the Anthropic stand-in', () => {
  let client: Anthropic;
  beforeAll(async () => {
    const fake = await started(startAnthropicFake({ api_key: 'sk-ant-node' }));
    client = new Anthropic({ apiKey: 'sk-ant-node', baseURL: fake.url, maxRetries: 0 });
  });

  it('messages, cache usage, stream, tools', async () => {
    const msg = await client.messages.create({ model: 'claude-x', max_tokens: 100, system: 'Be brief.', messages: [{ role: 'user', content: 'Say hi [cached]' }] });
    expect(msg.content).toEqual([{ type: 'text', text: ANSWER }]);
    expect(msg.stop_reason).toBe('end_turn');
    expect(msg.usage).toMatchObject({ input_tokens: 5, output_tokens: ANSWER_TOKENS.length, cache_read_input_tokens: 10, cache_creation_input_tokens: 4 });

    const stream = client.messages.stream({ model: 'claude-x', max_tokens: 3, messages: [{ role: 'user', content: 'hi' }] });
    const deltas: string[] = [];
    stream.on('text', (t) => deltas.push(t));
    const final = await stream.finalMessage();
    expect(deltas.join('')).toBe(ANSWER_TOKENS.slice(0, 3).join(''));
    expect(final.stop_reason).toBe('max_tokens');
    expect(final.usage.output_tokens).toBe(3);

    const tools = [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object' as const, properties: { query: { type: 'string' } } } }];
    const call = await client.messages.create({ model: 'claude-x', max_tokens: 100, tools, messages: [{ role: 'user', content: 'Weather?' }] });
    expect(call.stop_reason).toBe('tool_use');
    const use = call.content.find((c) => c.type === 'tool_use')!;
    expect(use).toMatchObject({ name: 'get_weather', input: { query: 'hello' } });
    const streamedTool = await client.messages.stream({ model: 'claude-x', max_tokens: 100, tools, messages: [{ role: 'user', content: 'Weather?' }] }).finalMessage();
    expect(streamedTool.content.find((c) => c.type === 'tool_use')).toMatchObject({ name: 'get_weather', input: { query: 'hello' } });
    const answered = await client.messages.create({
      model: 'claude-x',
      max_tokens: 100,
      tools,
      messages: [
        { role: 'user', content: 'Weather?' },
        { role: 'assistant', content: call.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.type === 'tool_use' ? use.id : '', content: 'sunny' }] },
      ],
    });
    expect(answered.content).toEqual([{ type: 'text', text: ANSWER }]);
  });

  it('refuses a missing max_tokens, two user turns in a row, an OpenAI field, a bad key; 429 with retry-after', async () => {
    const bad = (body: Record<string, unknown>) => client.messages.create(body as never).catch((e: unknown) => e);
    const noMax = await bad({ model: 'claude-x', messages: [{ role: 'user', content: 'x' }] });
    expect(noMax).toBeInstanceOf(Anthropic.BadRequestError);
    expect((noMax as Error).message).toContain('max_tokens');
    const twice = await bad({ model: 'claude-x', max_tokens: 5, messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }] });
    expect((twice as Error).message).toContain('roles must alternate');
    expect(await bad({ model: 'claude-x', max_tokens: 5, stream_options: {}, messages: [{ role: 'user', content: 'a' }] })).toBeInstanceOf(Anthropic.BadRequestError);
    const limited = await bad({ model: 'claude-x', max_tokens: 5, messages: [{ role: 'user', content: '[429]' }] });
    expect(limited).toBeInstanceOf(Anthropic.RateLimitError);
    expect((limited as InstanceType<typeof Anthropic.RateLimitError>).headers?.get('retry-after')).toBe('30');
    const wrong = new Anthropic({ apiKey: 'nope', baseURL: (client as unknown as { baseURL: string }).baseURL, maxRetries: 0 });
    await expect(wrong.messages.create({ model: 'claude-x', max_tokens: 5, messages: [{ role: 'user', content: 'a' }] })).rejects.toBeInstanceOf(Anthropic.AuthenticationError);
  });
});

describe('@aws-sdk/client-bedrock-runtime against the Bedrock stand-in', () => {
  let url: string;
  const credentials = { accessKeyId: 'AKIDNODE', secretAccessKey: 'node-secret' };
  const client = (creds = credentials) => new BedrockRuntimeClient({ region: 'us-east-1', endpoint: url, credentials: creds, maxAttempts: 1, requestHandler: new NodeHttpHandler() }); // HTTP/1.1: the stand-in is a node:http server
  const modelId = 'anthropic.claude-3-5-sonnet-20240620-v1:0';
  beforeAll(async () => {
    url = (await started(startBedrockFake({ access_key_id: 'AKIDNODE', secret_access_key: 'node-secret', region: 'us-east-1', models: [modelId] }))).url;
  });

  it('Converse: signed by the SDK, verified by the stand-in, answered in the SDK\'s shape', async () => {
    const out = await client().send(new ConverseCommand({ modelId, system: [{ text: 'Be brief.' }], messages: [{ role: 'user', content: [{ text: 'Say hi [cached]' }] }], inferenceConfig: { maxTokens: 50 } }));
    expect(out.output?.message?.content).toEqual([{ text: ANSWER }]);
    expect(out.stopReason).toBe('end_turn');
    expect(out.usage).toMatchObject({ inputTokens: 5, outputTokens: ANSWER_TOKENS.length, cacheReadInputTokens: 12 });
  });

  it('ConverseStream: the event stream decodes into the SDK\'s events, tool use included', async () => {
    const res = await client().send(new ConverseStreamCommand({ modelId, messages: [{ role: 'user', content: [{ text: 'hi' }] }] }));
    const events: ConverseStreamOutput[] = [];
    for await (const e of res.stream!) events.push(e);
    expect(events.map((e) => Object.keys(e).find((k) => k !== '$unknown'))).toEqual(['messageStart', ...ANSWER_TOKENS.map(() => 'contentBlockDelta'), 'contentBlockStop', 'messageStop', 'metadata']);
    expect(events.map((e) => e.contentBlockDelta?.delta?.text ?? '').join('')).toBe(ANSWER);
    expect(events.at(-1)!.metadata?.usage).toMatchObject({ outputTokens: ANSWER_TOKENS.length });

    const toolConfig = { tools: [{ toolSpec: { name: 'get_weather', inputSchema: { json: { type: 'object' } } } }] };
    const tool = await client().send(new ConverseStreamCommand({ modelId, toolConfig, messages: [{ role: 'user', content: [{ text: 'Weather?' }] }] }));
    const toolEvents: ConverseStreamOutput[] = [];
    for await (const e of tool.stream!) toolEvents.push(e);
    expect(toolEvents.find((e) => e.contentBlockStart)?.contentBlockStart?.start?.toolUse?.name).toBe('get_weather');
    expect(toolEvents.map((e) => e.contentBlockDelta?.delta?.toolUse?.input ?? '').join('')).toBe('{"query":"hello"}');
    expect(toolEvents.find((e) => e.messageStop)?.messageStop?.stopReason).toBe('tool_use');
  });

  it('refuses a wrong secret, two user turns in a row; throttles; an exception frame mid-stream', async () => {
    await expect(client({ accessKeyId: 'AKIDNODE', secretAccessKey: 'wrong' }).send(new ConverseCommand({ modelId, messages: [{ role: 'user', content: [{ text: 'x' }] }] }))).rejects.toMatchObject({ name: 'InvalidSignatureException' });
    await expect(client().send(new ConverseCommand({ modelId, messages: [{ role: 'user', content: [{ text: 'a' }] }, { role: 'user', content: [{ text: 'b' }] }] }))).rejects.toMatchObject({ name: 'ValidationException' });
    await expect(client().send(new ConverseCommand({ modelId, messages: [{ role: 'user', content: [{ text: '[429]' }] }] }))).rejects.toMatchObject({ name: 'ThrottlingException', $metadata: { httpStatusCode: 429 } });
    const res = await client().send(new ConverseStreamCommand({ modelId, messages: [{ role: 'user', content: [{ text: '[stream-throttle]' }] }] }));
    const seen: string[] = [];
    const failed = await (async () => {
      for await (const e of res.stream!) seen.push(Object.keys(e)[0]!);
    })().catch((e: unknown) => e);
    expect(seen).toContain('contentBlockDelta');
    expect(failed).toMatchObject({ name: 'ThrottlingException' });
  });
});

describe('Vertex stand-in: the token exchange, then the openai SDK on the OpenAI-compatible endpoint', () => {
  it('mints a token from a signed JWT, refuses a JWT signed by another key, serves chat with the token', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
    const other = await generateKeyPair('RS256');
    const fake = await started(startVertexFake({ client_email: 'sa@proj.iam.gserviceaccount.com', public_key: await exportSPKI(publicKey), project: 'my-proj', location: 'us-central1' }));
    expect(await exportPKCS8(privateKey)).toContain('PRIVATE KEY');
    const jwt = (key: CryptoKey) =>
      new SignJWT({ scope: 'https://www.googleapis.com/auth/cloud-platform' }).setProtectedHeader({ alg: 'RS256', typ: 'JWT' }).setIssuer('sa@proj.iam.gserviceaccount.com').setAudience(`${fake.url}/token`).setIssuedAt().setExpirationTime('1h').sign(key);
    const exchange = (assertion: string) =>
      fetch(`${fake.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }) });
    const refused = await exchange(await jwt(other.privateKey));
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: string }).error).toBe('invalid_grant');
    const minted = (await (await exchange(await jwt(privateKey))).json()) as { access_token: string; expires_in: number };
    expect(minted.expires_in).toBe(3600);

    const base = `${fake.url}/v1/projects/my-proj/locations/us-central1/endpoints/openapi`;
    const client = new OpenAI({ apiKey: minted.access_token, baseURL: base, maxRetries: 0 });
    const chat = await client.chat.completions.create({ model: 'google/gemini-2.0-flash-001', messages: [{ role: 'user', content: 'hi' }] });
    expect(chat.choices[0]!.message.content).toBe(ANSWER);
    const anonymous = new OpenAI({ apiKey: 'not-a-token', baseURL: base, maxRetries: 0 });
    await expect(anonymous.chat.completions.create({ model: 'google/gemini-2.0-flash-001', messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ status: 401 });
  });
});
