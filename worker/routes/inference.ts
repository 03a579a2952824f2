import type { Context } from 'hono';
import type { AppEnv } from '../env';
import { readJsonBody } from '../http/body';
import { endpoints, type EndpointKind } from '../openai/schemas';
import { execute } from '../routing/execute';
import { clientLocation } from '../routing/geo';
import { planCandidates } from '../routing/plan';
import { resolveModel } from '../routing/resolve-model';

/** POST /v1/chat/completions, /v1/completions, /v1/embeddings: validate, resolve, plan, execute. */
export function inferenceRoute(kind: EndpointKind) {
  const spec = endpoints[kind];
  return async (c: Context<AppEnv>) => {
    const config = c.get('config');
    const body = (await readJsonBody(c.req.raw, spec.schema, config.raw.max_body_bytes)) as Record<string, unknown> & { model: string };
    const resolved = resolveModel(config, c.get('key').tenant, body.model, spec.modelType);
    const candidates = planCandidates(config, resolved.models, clientLocation(c.req.raw, config.raw));

    const result = await execute({
      config,
      env: c.env,
      endpoint: kind,
      body,
      candidates,
      requestId: c.get('requestId'),
      clientSignal: c.req.raw.signal,
      deadline: Date.now() + config.raw.timeouts.total_ms,
    });

    const h = result.response.headers;
    if (result.served) {
      h.set('x-router-region', result.served.backend.region);
      h.set('x-router-backend', result.served.backend.id);
    }
    h.set('x-router-tier', resolved.tier ?? 'none');
    h.set('x-router-attempts', String(result.attempts));
    return result.response;
  };
}
