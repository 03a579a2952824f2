import { z } from 'zod';

// Settings of the backend kinds that do not speak OpenAI's API themselves (worker/backends/):
// a `[backends.modal]`, `[backends.replicate]` or `[backends.triton]` table on a `[[backends]]`
// entry. schema.ts checks that each table sits on a backend of its kind (and that replicate and
// triton have theirs).

const secretName = z.string().regex(/^[A-Z][A-Z0-9_]*$/, 'must be an UPPER_SNAKE secret name');

/** "owner/name", as Replicate names models and deployments. */
const ownerName = z.string().regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, 'must be "owner/name"');

/** An input field name, or false: the field is not sent at all. */
const fieldName = z.union([z.string().min(1), z.literal(false)]);
/** Fixed inputs merged into every request (a model's own knobs: prompt_template, min_tokens, …). */
const staticInputs = z.record(z.string().min(1), z.union([z.string(), z.number(), z.boolean()]));

/**
 * How a chat conversation becomes one prompt string: a named template (the model family's
 * special tokens) or a custom one, with `{content}` standing for a message's text. `prefix`
 * starts the prompt, `generation` ends it (the assistant turn the model is to write).
 */
export const chatTemplateSchema = z.union([
  z.enum(['llama3', 'chatml', 'mistral']),
  z.strictObject({
    prefix: z.string().default(''),
    system: z.string().includes('{content}').default('{content}\n\n'),
    user: z.string().includes('{content}'),
    assistant: z.string().includes('{content}'),
    /** Tool results; the user template when unset. */
    tool: z.string().includes('{content}').optional(),
    generation: z.string().default(''),
  }),
]);

export const modalSchema = z
  .strictObject({
    /**
     * Modal proxy auth (endpoints with requires_proxy_auth): Worker secrets holding the proxy auth
     * token's id and secret, sent as Modal-Key and Modal-Secret. A bearer key for vLLM's
     * --api-key is the backend's own auth_secret, and both may be set.
     */
    key_secret: secretName.optional(),
    secret_secret: secretName.optional(),
    /** Modal answers a call still running after 150 s with a 303 to a result URL: follow at most this many. */
    max_redirects: z.number().int().min(0).max(100).default(20),
  })
  .refine((m) => (m.key_secret === undefined) === (m.secret_secret === undefined), {
    message: 'key_secret and secret_secret go together (Modal-Key and Modal-Secret)',
  });

export const replicateSchema = z
  .strictObject({
    /** An official model, run at its latest version: POST /v1/models/{owner}/{name}/predictions. */
    model: ownerName.optional(),
    /** A deployment of the account's own: POST /v1/deployments/{owner}/{name}/predictions. */
    deployment: ownerName.optional(),
    /** A pinned version (64 hex chars), with `model`: POST /v1/predictions { version }. */
    version: z.string().regex(/^[0-9a-f]{64}$/, 'must be a 64-character version id').optional(),
    /**
     * Origins (scheme://host[:port]) besides the backend's own `url` whose prediction URLs
     * (urls.get / stream / cancel) the router follows, sending them the API token. Any other URL a
     * prediction names is refused (an upstream error). https://stream.replicate.com is implied
     * when url is https://api.replicate.com (README "Security model").
     */
    allowed_origins: z
      .array(z.url({ protocol: /^https?$/ }).refine((u) => new URL(u).origin === u.replace(/\/$/, ''), 'must be an origin: scheme://host[:port], no path'))
      .default([]),
    /** Prefer: wait=N on non-streamed calls: Replicate holds the create call up to N s (1-60) for the output. */
    wait_seconds: z.number().int().min(1).max(60).default(60),
    /**
     * Which input fields get what. Defaults fit Replicate's Llama-style language models
     * (meta/meta-llama-3-70b-instruct: prompt, system_prompt, max_tokens, temperature, top_p,
     * stop_sequences, seed); false leaves a field out (e.g. max_tokens = "max_new_tokens" for
     * models that call it so, system_prompt = false for models without one).
     */
    input: z
      .strictObject({
        prompt: z.string().min(1).default('prompt'),
        system_prompt: fieldName.default('system_prompt'),
        max_tokens: fieldName.default('max_tokens'),
        temperature: fieldName.default('temperature'),
        top_p: fieldName.default('top_p'),
        /** Stop strings, sent comma-separated (Replicate's Llama models take one string). */
        stop: fieldName.default('stop_sequences'),
        seed: fieldName.default('seed'),
      })
      .prefault({}),
    extra_input: staticInputs.default({}),
    /**
     * Renders the whole conversation into `prompt` (system included) instead of sending system
     * messages as system_prompt and the turns as a plain transcript. Pair it with the model's
     * pass-through (e.g. extra_input.prompt_template = "{prompt}") so it is not wrapped twice.
     */
    chat_template: chatTemplateSchema.optional(),
  })
  .refine((r) => (r.model === undefined) !== (r.deployment === undefined), { message: 'set exactly one of model and deployment' })
  .refine((r) => r.version === undefined || r.model !== undefined, { message: 'version goes with model (a deployment pins its own)', path: ['version'] });

export const tritonSchema = z.strictObject({
  /** The model in Triton's repository (TensorRT-LLM's is usually the "ensemble" or "tensorrt_llm_bls"). */
  model: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'must be a Triton model name').default('ensemble'),
  /** Model version; Triton picks by its version policy when unset. */
  version: z.string().regex(/^[0-9]+$/).optional(),
  chat_template: chatTemplateSchema.default('llama3'),
  /** Sent when the request has no max_tokens (TensorRT-LLM requires one). */
  default_max_tokens: z.number().int().positive().default(1_024),
  /** Request field for each OpenAI parameter (the ensemble's input tensors); false: not sent. */
  parameters: z
    .strictObject({
      max_tokens: z.string().min(1).default('max_tokens'),
      temperature: fieldName.default('temperature'),
      top_p: fieldName.default('top_p'),
      /** Sent as a list of strings. */
      stop: fieldName.default('stop_words'),
      seed: fieldName.default('random_seed'),
    })
    .prefault({}),
  extra_parameters: staticInputs.default({}),
});

export type ChatTemplateConfig = z.infer<typeof chatTemplateSchema>;
export type ModalConfig = z.infer<typeof modalSchema>;
export type ReplicateConfig = z.infer<typeof replicateSchema>;
export type TritonConfig = z.infer<typeof tritonSchema>;

// Managed providers (worker/backends/openai.ts, azure-openai.ts, anthropic.ts, bedrock.ts, vertex.ts).
// Their API keys are the backend's `auth_secret`, like any backend's; the tables below hold what
// each provider adds. A provider's 429 and its rate-limit headers are signals, not failures
// (worker/routing/provider-throttle.ts).

/** `[backends.openai]`: OpenAI's optional account headers (any OpenAI-compatible hosted API needs none). */
export const openaiSchema = z.strictObject({
  /** Sent as OpenAI-Organization. */
  organization: z.string().min(1).max(200).optional(),
  /** Sent as OpenAI-Project. */
  project: z.string().min(1).max(200).optional(),
});

const azureDeployment = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be an Azure deployment name');

/** `[backends.azure]`: Azure OpenAI. `url` is the resource endpoint (https://<resource>.openai.azure.com). */
export const azureSchema = z.strictObject({
  /** The api-version query parameter of every call. */
  api_version: z.string().regex(/^\d{4}-\d{2}-\d{2}(-preview)?$/, 'must look like 2024-10-21 or 2025-04-01-preview').default('2024-10-21'),
  /** The model's served name (its id unless served_name is set) → the deployment serving it; a model not listed is its own deployment name. */
  deployments: z.record(z.string().min(1), azureDeployment).default({}),
});

/** `[backends.anthropic]`: the Messages API. The key (auth_secret) goes in x-api-key. */
export const anthropicSchema = z.strictObject({
  /** The anthropic-version header. */
  version: z.string().min(1).default('2023-06-01'),
  /** Extra anthropic-beta flags, comma-joined into one header. */
  beta: z.array(z.string().regex(/^[a-z0-9-]+$/)).default([]),
  /** max_tokens for a request that sets none (Anthropic requires it; the router's budget usually sets it first). */
  default_max_tokens: z.number().int().positive().default(4_096),
});

/** `[backends.bedrock]`: Converse / ConverseStream, SigV4-signed. `url` is the runtime endpoint (https://bedrock-runtime.<region>.amazonaws.com). */
export const bedrockSchema = z.strictObject({
  /** The AWS region the signature is scoped to. */
  region: z.string().regex(/^[a-z]{2}(-gov)?-[a-z]+-\d$/, 'must be an AWS region such as us-east-1'),
  /** Worker secrets holding the IAM credentials. */
  access_key_secret: secretName.default('AWS_ACCESS_KEY_ID'),
  secret_key_secret: secretName.default('AWS_SECRET_ACCESS_KEY'),
  /** For temporary credentials only. */
  session_token_secret: secretName.optional(),
  /** maxTokens for a request that sets none. */
  default_max_tokens: z.number().int().positive().default(4_096),
});

/** `[backends.vertex]`: Gemini through Vertex AI's OpenAI-compatible endpoint. `url`: https://<location>-aiplatform.googleapis.com. */
export const vertexSchema = z.strictObject({
  project: z.string().regex(/^[a-z][a-z0-9-]{4,61}[a-z0-9]$/, 'must be a Google Cloud project id'),
  location: z.string().regex(/^[a-z0-9-]+$/, 'must be a location such as us-central1 or global'),
  /** Worker secret holding the service account's JSON key (client_email, private_key, token_uri). */
  credentials_secret: secretName.default('GOOGLE_SERVICE_ACCOUNT_KEY'),
});

export type OpenAIConfig = z.infer<typeof openaiSchema>;
export type AzureConfig = z.infer<typeof azureSchema>;
export type AnthropicConfig = z.infer<typeof anthropicSchema>;
export type BedrockConfig = z.infer<typeof bedrockSchema>;
export type VertexConfig = z.infer<typeof vertexSchema>;
