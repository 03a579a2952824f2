import { importSPKI, jwtVerify } from 'jose';
import { json, startFake, type Fake } from './common';
import { openAIEngine, type OpenAIEngineOptions } from './openai-api';

// A stand-in for Vertex AI's OpenAI-compatible endpoint and Google's OAuth2 token endpoint
// (cloud.google.com/vertex-ai/generative-ai/docs/migrate/openai,
// developers.google.com/identity/protocols/oauth2/service-account#httprest):
// - POST /token (the service account key's token_uri): form grant_type =
//   urn:ietf:params:oauth:grant-type:jwt-bearer and assertion = an RS256 JWT, checked with the
//   account's public key: iss = client_email, aud = this token URL, scope holding
//   https://www.googleapis.com/auth/cloud-platform, iat/exp present with exp - iat ≤ 1 h, not
//   expired. Answer {access_token, expires_in, token_type: "Bearer"}; a bad one 400
//   {"error": "invalid_grant", "error_description"}.
// - POST /v1/projects/{project}/locations/{location}/endpoints/openapi/chat/completions with
//   Authorization: Bearer <an access token it issued, unexpired>; model with its publisher
//   ("google/gemini-…"). Else 401 {"error": {"code": 401, "status": "UNAUTHENTICATED"}}.
//   The answer is the OpenAI engine's (openai-api.ts).

export interface VertexFakeOptions extends OpenAIEngineOptions {
  client_email: string;
  /** The service account's public key, SPKI PEM. */
  public_key: string;
  project: string;
  location: string;
  /** expires_in of issued tokens (seconds, default 3600). */
  token_ttl_s?: number;
}

export function startVertexFake(opts: VertexFakeOptions): Promise<Fake> {
  const engine = openAIEngine(opts);
  const issued = new Map<string, number>(); // token → expiry (epoch ms)
  const keyPromise = importSPKI(opts.public_key, 'RS256');
  const denied = (res: Parameters<Parameters<typeof startFake>[0]>[2], message: string) =>
    json(res, 401, { error: { code: 401, message, status: 'UNAUTHENTICATED' } });

  return startFake(async (req, raw, res, ctx) => {
    const url = new URL(req.url ?? '/', ctx.url);
    if (req.method === 'POST' && url.pathname === '/token') {
      if (!String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) return json(res, 400, { error: 'invalid_request', error_description: 'Bad Request' });
      const form = new URLSearchParams(raw);
      if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return json(res, 400, { error: 'unsupported_grant_type', error_description: 'Invalid grant_type' });
      try {
        const { payload } = await jwtVerify(form.get('assertion') ?? '', await keyPromise, { algorithms: ['RS256'], issuer: opts.client_email, audience: `${ctx.url}/token`, requiredClaims: ['iat', 'exp', 'scope'] });
        if (!String(payload.scope).split(' ').includes('https://www.googleapis.com/auth/cloud-platform')) return json(res, 400, { error: 'invalid_scope', error_description: 'Invalid OAuth scope' });
        if (payload.exp! - payload.iat! > 3600) return json(res, 400, { error: 'invalid_grant', error_description: 'Invalid JWT: Token must be a short-lived token (60 minutes)' });
      } catch (e) {
        return json(res, 400, { error: 'invalid_grant', error_description: `Invalid JWT: ${(e as Error).message}` });
      }
      const token = `ya29.${crypto.randomUUID().replaceAll('-', '')}`;
      const ttl = opts.token_ttl_s ?? 3600;
      issued.set(token, Date.now() + ttl * 1000);
      return json(res, 200, { access_token: token, expires_in: ttl, token_type: 'Bearer' });
    }
    const m = /^\/v1(?:beta1)?\/projects\/([^/]+)\/locations\/([^/]+)\/endpoints\/openapi\/chat\/completions$/.exec(url.pathname);
    if (req.method !== 'POST' || !m) return json(res, 404, { error: { code: 404, message: `no route ${req.method} ${url.pathname}`, status: 'NOT_FOUND' } });
    const bearer = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ''))?.[1];
    const expiry = bearer ? issued.get(bearer) : undefined;
    if (expiry === undefined) return denied(res, 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.');
    if (Date.now() >= expiry) return denied(res, 'Request had invalid authentication credentials: the access token expired.');
    if (m[1] !== opts.project || m[2] !== opts.location) return json(res, 403, { error: { code: 403, message: `Permission denied on resource project ${m[1]} (or it may not exist).`, status: 'PERMISSION_DENIED' } });
    const model = /"model"\s*:\s*"([^"]*)"/.exec(raw)?.[1] ?? '';
    if (!model.includes('/')) return json(res, 400, { error: { code: 400, message: `Invalid model "${model}": give it with its publisher, e.g. google/gemini-2.0-flash-001`, status: 'INVALID_ARGUMENT' } });
    engine.handle('chat', req, raw, res);
  });
}
