import { secretsEqual } from '../auth/hash';
import type { PromptTemplate } from '../config/deployments';
import { errors } from '../http/errors';
import type { EndpointKind } from '../openai/schemas';
import type { InferenceRequest } from '../pipeline/types';
import { hash32, unit } from '../routing/hash';
import { splitOf } from './view';

/** The deployment version a request runs on (README "Rollouts and quality"). */
export interface DeploymentAssignment {
  /** The deployment: the client-facing `model` name. */
  name: string;
  version: string;
  /** Which side of a running rollout or A/B test the request is on; 'stable' when none runs. */
  arm: 'stable' | 'candidate';
  /** The running rollout, when any. */
  rolloutId: string | null;
}

/** Admin-only: runs the request on a named version (the regression gate), with x-router-admin-token. */
export const PIN_HEADER = 'x-router-deployment-version';
export const PIN_TOKEN_HEADER = 'x-router-admin-token';

/**
 * When the request's `model` names a deployment: picks its version (the stable one, or the
 * candidate of a running rollout for the share of users whose sticky hash falls under it), applies
 * the version's prompt template to the body and points `model` at the version's model. The
 * tenant must be allowed the deployment's name; the version's model then needs no allow-list
 * entry of its own (the operator chose it). No hop: the split is the isolate's copy (view.ts).
 */
export async function assignDeployment(r: InferenceRequest, headers: Headers): Promise<void> {
  const name = r.body.model;
  // Own keys only: a client's "model": "__proto__" names no deployment.
  const cfg = Object.hasOwn(r.config.raw.deployments, name) ? r.config.raw.deployments[name] : undefined;
  if (!cfg) return;
  const tenant = r.config.raw.tenants[r.tenantId];
  if (tenant && !tenant.models.includes('*') && !tenant.models.includes(name)) throw errors.forbidden(`Your key may not use model "${name}".`, 'model_not_allowed', 'model');
  const split = await splitOf(r.env, r.ctx, r.config, name);
  const versions = { ...split.runtimeVersions, ...cfg.versions };
  const pinned = headers.get(PIN_HEADER);
  let assignment: DeploymentAssignment;
  if (pinned !== null) {
    const token = headers.get(PIN_TOKEN_HEADER);
    const admin = typeof r.env.ADMIN_TOKEN === 'string' && r.env.ADMIN_TOKEN !== '' && token !== null && (await secretsEqual(token, r.env.ADMIN_TOKEN));
    if (!admin) throw errors.forbidden(`${PIN_HEADER} needs the admin token in ${PIN_TOKEN_HEADER}.`, 'deployment_pin_forbidden');
    if (!Object.hasOwn(versions, pinned)) throw errors.notFound(`Deployment "${name}" has no version "${pinned}".`, 'deployment_version_not_found', 'model');
    assignment = { name, version: pinned, arm: pinned === split.rollout?.candidate ? 'candidate' : 'stable', rolloutId: null };
  } else if (split.rollout) {
    const ro = split.rollout;
    const who = cfg.sticky === 'user' ? (r.user ?? r.key.id ?? null) : (r.key.id ?? null);
    const point = (who === null ? Math.random() : unit(hash32(`${name}\u0000${ro.id}\u0000${who}`))) * 100;
    const candidate = point < ro.share;
    assignment = { name, version: candidate ? ro.candidate : ro.stable, arm: candidate ? 'candidate' : 'stable', rolloutId: ro.id };
  } else {
    assignment = { name, version: split.serving, arm: 'stable', rolloutId: null };
  }
  let spec = Object.hasOwn(versions, assignment.version) ? versions[assignment.version] : undefined;
  if (!spec) {
    // A version the config no longer has (removed from the TOML): the configured stable one serves.
    assignment = { name, version: cfg.serving, arm: 'stable', rolloutId: null };
    spec = cfg.versions[cfg.serving]!;
  }
  if (!r.config.modelsByName.has(spec.model)) throw errors.unavailable(`Deployment "${name}" version "${assignment.version}" names model "${spec.model}", which this router no longer has.`, 'deployment_misconfigured');
  if (spec.prompt) applyTemplate(r.kind, r.body, spec.prompt);
  r.body.model = spec.model;
  r.deployment = assignment;
}

/**
 * A prompt template on a request: its system message goes first (chat); temperature and top_p
 * apply when the client sent none; max_tokens is a cap (set when the client sent none).
 */
export function applyTemplate(kind: EndpointKind, body: Record<string, unknown>, t: PromptTemplate): void {
  if (kind === 'embeddings') return;
  if (t.system !== undefined && kind === 'chat' && Array.isArray(body.messages)) body.messages = [{ role: 'system', content: t.system }, ...body.messages];
  if (t.temperature !== undefined && (body.temperature === undefined || body.temperature === null)) body.temperature = t.temperature;
  if (t.top_p !== undefined && (body.top_p === undefined || body.top_p === null)) body.top_p = t.top_p;
  if (t.max_tokens !== undefined) {
    const field = kind === 'chat' && typeof body.max_completion_tokens === 'number' ? 'max_completion_tokens' : 'max_tokens';
    const asked = body[field];
    body[field] = typeof asked === 'number' ? Math.min(asked, t.max_tokens) : t.max_tokens;
  }
}
