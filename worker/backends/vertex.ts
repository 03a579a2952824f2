import { importPKCS8, SignJWT } from 'jose';
import { z } from 'zod';
import { registerIsolateState } from '../isolate/registry';
import { openAIError, parseJson } from './translate';
import type { BackendAdapter } from './types';
import { raceAbort } from './race-abort';

// Gemini (and Model Garden models) on Vertex AI through its OpenAI-compatible endpoint
// (cloud.google.com/vertex-ai/generative-ai/docs/migrate/openai): POST
// {url}/v1/projects/{project}/locations/{location}/endpoints/openapi/chat/completions, OpenAI's
// format both ways, model = the served name (e.g. "google/gemini-2.0-flash-001").
// Auth is an OAuth2 access token, not an API key: minted from a service account's JSON key
// (developers.google.com/identity/protocols/oauth2/service-account#httprest): an RS256 JWT
// {iss: client_email, scope, aud: token_uri, iat, exp ≤ 1 h} signed with the key (jose, on
// WebCrypto), exchanged at token_uri for {access_token, expires_in}. The token is cached per
// isolate until a few minutes before it expires; concurrent requests share one mint.

const SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
const GOOGLE_TOKEN_URI = 'https://oauth2.googleapis.com/token';
/** A token is renewed this long before its expiry. */
const REFRESH_MARGIN_MS = 5 * 60_000;
const MINT_TIMEOUT_MS = 10_000;

const serviceAccountSchema = z.looseObject({
  client_email: z.string().min(1),
  private_key: z.string().includes('PRIVATE KEY'),
  private_key_id: z.string().optional(),
  token_uri: z.url({ protocol: /^https?$/ }).optional(),
});
type ServiceAccount = z.infer<typeof serviceAccountSchema>;

const tokenSchema = z.looseObject({ access_token: z.string().min(1), expires_in: z.number().positive().max(86_400).optional() });

interface CachedToken {
  token: string;
  expiresAt: number;
}
const tokens = new Map<string, CachedToken>();
const minting = new Map<string, Promise<CachedToken>>();

export const vertexAdapter: BackendAdapter = {
  async send(backend, request, { signal, env }) {
    const cfg = backend.vertex;
    if (!cfg) return openAIError(502, `${backend.id}: no [vertex] settings`, 'bad_config');
    if (request.endpoint !== 'chat') return openAIError(400, `Backend kind "vertex" cannot serve the ${request.endpoint} endpoint.`, 'unsupported_by_backend', 'model');
    const account = serviceAccountSchema.safeParse(parseJson(String(env?.[cfg.credentials_secret] ?? '')));
    if (!account.success) return openAIError(401, `${backend.id}: the Worker secret ${cfg.credentials_secret} is not a service account JSON key`, 'upstream_auth');
    let token: string;
    try {
      token = await raceAbort(accessToken(account.data), signal);
    } catch (e) {
      if (signal.aborted) throw e;
      return openAIError(401, `${backend.id}: no access token: ${(e as Error).message}`, 'upstream_auth');
    }
    const base = backend.url.replace(/\/+$/, '');
    const url = `${base}/v1/projects/${encodeURIComponent(cfg.project)}/locations/${encodeURIComponent(cfg.location)}/endpoints/openapi/chat/completions`;
    return fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: request.stream ? 'text/event-stream' : 'application/json',
        authorization: `Bearer ${token}`,
        'x-request-id': request.requestId,
      },
      body: JSON.stringify(request.body),
      signal,
    });
  },
};

/** A valid access token for the account: cached, or minted (once per isolate at a time). */
export async function accessToken(account: ServiceAccount, now: number = Date.now()): Promise<string> {
  const tokenUri = account.token_uri ?? GOOGLE_TOKEN_URI;
  const key = `${account.client_email}\u0000${account.private_key_id ?? ''}\u0000${tokenUri}`;
  const cached = tokens.get(key);
  if (cached && now < cached.expiresAt - REFRESH_MARGIN_MS) return cached.token;
  let pending = minting.get(key);
  if (!pending) {
    pending = mint(account, tokenUri)
      .then((t) => {
        tokens.set(key, t);
        return t;
      })
      .finally(() => minting.delete(key));
    minting.set(key, pending);
  }
  return (await pending).token;
}

async function mint(account: ServiceAccount, tokenUri: string): Promise<CachedToken> {
  let privateKey: CryptoKey;
  try {
    privateKey = await importPKCS8(account.private_key, 'RS256');
  } catch {
    throw new Error('private_key is not a PKCS#8 RSA key');
  }
  const assertion = await new SignJWT({ scope: SCOPE })
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT', ...(account.private_key_id ? { kid: account.private_key_id } : {}) })
    .setIssuer(account.client_email)
    .setAudience(tokenUri)
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(privateKey);
  const started = Date.now();
  const res = await fetch(tokenUri, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }).toString(),
    signal: AbortSignal.timeout(MINT_TIMEOUT_MS),
  });
  const text = await res.text();
  if (!res.ok) {
    const err = parseJson(text) as { error?: unknown; error_description?: unknown } | null;
    throw new Error(`token exchange answered ${res.status}${typeof err?.error === 'string' ? ` ${err.error}` : ''}${typeof err?.error_description === 'string' ? `: ${err.error_description}` : ''}`);
  }
  const parsed = tokenSchema.safeParse(parseJson(text));
  if (!parsed.success) throw new Error('the token exchange answer has no access_token');
  return { token: parsed.data.access_token, expiresAt: started + (parsed.data.expires_in ?? 3_600) * 1000 };
}

/** For tests: forget cached tokens (also through resetIsolate('vertex-tokens')); a mint in flight still lands. */
export function resetVertexTokens(): void {
  tokens.clear();
}
registerIsolateState('vertex-tokens', resetVertexTokens);
