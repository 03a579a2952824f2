import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { deploymentVersionSchema } from '../config/deployments';
import { deploymentDef, stub } from '../deployments/view';
import type { AppEnv } from '../env';
import { readJsonBody } from '../http/body';
import { errors, RouterError } from '../http/errors';
import { objectCall } from '../http/object-call';
import { isRefusal, type DeploymentRefusal, type DeploymentView, type Gate } from '../protocol/deployments';

/**
 * /admin/deployments: versions, rollouts, A/B tests, gate results and history of each deployment
 * (README "Rollouts and quality"). Changes are made in the deployment's object; isolates see them
 * within [rollout].refresh_ms. `x-router-actor` names who acts (kept in the history).
 */
export const adminDeployments = new Hono<AppEnv>();

const BODY_LIMIT = 64 * 1024;
const objectRpc = objectCall('deployment service', 'deployment_unavailable');
// The RPC stub's inferred types do not survive union returns; the object's methods are typed at their source.
const rpc = <T>(call: () => unknown): Promise<T> => objectRpc(() => call() as Promise<T>);
const versionName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, 'must be letters, digits, ".", "_", ":" or "-"').max(64);
const reason = z.string().trim().min(1).max(1_000);

const addVersionSchema = deploymentVersionSchema.extend({ name: versionName, reason: reason.optional() }).strict();
const gateNumbers = z.looseObject({ cases: z.number().int().nonnegative(), mean_similarity: z.number().min(0).max(1) });
const gateSchema = z.strictObject({
  version: versionName,
  passed: z.boolean(),
  summary: gateNumbers,
  stable: gateNumbers.nullish(),
  golden: z.string().max(512).nullish(),
});
const startSchema = z.strictObject({
  version: versionName,
  mode: z.enum(['canary', 'blue-green', 'ab']).default('canary'),
  steps: z
    .array(z.number().gt(0).max(100))
    .min(1)
    .max(20)
    .refine((s) => s.every((v, i) => i === 0 || v > s[i - 1]!), 'must increase')
    .refine((s) => s[s.length - 1] === 100, 'must end at 100')
    .optional(),
  dwell_seconds: z.number().int().min(0).max(604_800).optional(),
  min_requests: z.number().int().min(0).max(10_000_000).optional(),
  share: z.number().gt(0).lt(100).optional(),
  metric: versionName.optional(),
  force: z.boolean().optional(),
  reason: reason.optional(),
});
const actionSchema = z.strictObject({ reason: reason.optional(), force: z.boolean().optional() });

function target(c: Context<AppEnv>) {
  const config = c.get('config');
  const name = c.req.param('name') ?? '';
  if (!Object.hasOwn(config.raw.deployments, name)) throw errors.notFound(`No deployment "${name}" in the router config.`, 'deployment_not_found', 'name');
  const ns = c.env.DEPLOYMENTS;
  if (!ns) throw errors.unavailable('Deployments need the DEPLOYMENTS Durable Object binding (wrangler.toml).', 'deployment_unavailable');
  return { config, name, def: deploymentDef(config, name), obj: stub(ns, name) };
}

const actor = (c: Context<AppEnv>) => (c.req.header('x-router-actor') ?? 'admin').replace(/[^\w.@:-]/g, '').slice(0, 64) || 'admin';

function answer<T>(c: Context<AppEnv>, out: T | DeploymentRefusal, status: 200 | 201 = 200): Response {
  if (isRefusal(out)) throw new RouterError(out.refused.status, out.refused.message, out.refused.code);
  return c.json(out as object, status);
}

adminDeployments.get('/', async (c) => {
  const config = c.get('config');
  const ns = c.env.DEPLOYMENTS;
  const data = await Promise.all(
    Object.keys(config.raw.deployments).map(async (name) => {
      const d = ns ? await rpc<DeploymentView>(() => stub(ns, name).describe(deploymentDef(config, name))) : null;
      return { name, serving: d?.serving ?? config.raw.deployments[name]!.serving, versions: d ? d.versions.map((v) => v.name) : Object.keys(config.raw.deployments[name]!.versions), rollout: d?.rollout ?? null };
    }),
  );
  return c.json({ object: 'list', data });
});

adminDeployments.get('/:name', async (c) => {
  const { obj, def } = target(c);
  return c.json(await rpc<DeploymentView>(() => obj.describe(def)));
});

adminDeployments.post('/:name/versions', async (c) => {
  const { config, obj, def } = target(c);
  const body = await readJsonBody(c.req.raw, addVersionSchema, BODY_LIMIT);
  if (!config.modelsByName.has(body.model)) throw errors.badRequest(`Unknown model "${body.model}": a version names a model id or alias of [[models]].`, 'model', 'model_not_found');
  const { name, reason: why, ...spec } = body;
  return answer(c, await rpc(() => obj.addVersion(def, name, spec, actor(c), why ?? null)), 201);
});

adminDeployments.post('/:name/gates', async (c) => {
  const { obj, def } = target(c);
  const body = await readJsonBody(c.req.raw, gateSchema, BODY_LIMIT);
  const gate = await rpc<Gate | DeploymentRefusal>(() => obj.recordGate(def, { version: body.version, passed: body.passed, summary: body.summary, stable: body.stable ?? null, golden: body.golden ?? null }, actor(c)));
  return answer(c, isRefusal(gate) ? gate : { gate }, 201);
});

adminDeployments.post('/:name/rollouts', async (c) => {
  const { obj, def } = target(c);
  const body = await readJsonBody(c.req.raw, startSchema, BODY_LIMIT);
  return answer(c, await rpc(() => obj.startRollout(def, body, actor(c))), 201);
});

adminDeployments.get('/:name/rollouts/:id', async (c) => {
  const { obj, def } = target(c);
  return answer(c, await rpc(() => obj.rolloutView(def, c.req.param('id'))));
});

for (const action of ['promote', 'pause', 'resume', 'rollback'] as const) {
  adminDeployments.post(`/:name/rollouts/:id/${action}`, async (c) => {
    const { obj, def } = target(c);
    // The body is optional: `POST …/promote` with none is a promotion without a reason.
    const body = c.req.raw.body !== null && c.req.header('content-length') !== '0' ? await readJsonBody(c.req.raw, actionSchema, BODY_LIMIT) : {};
    return answer(c, await rpc(() => obj.act(def, c.req.param('id'), action, actor(c), body.reason ?? null, body.force === true)));
  });
}
