/**
 * Replicate's deployments API on loopback, after its HTTP API reference:
 *   GET   /v1/deployments/{owner}/{name} → { owner, name, current_release: { number, model, version,
 *         created_at, created_by, configuration: { hardware, min_instances, max_instances } } }
 *   PATCH /v1/deployments/{owner}/{name} with a JSON body of any of hardware, version,
 *         min_instances, max_instances → the deployment with a new release (number + 1).
 * `Authorization: Bearer <token>`; errors as problem JSON `{ "title", "detail", "status" }`.
 */
import { json, listen, mediaType, type FakeServer } from './http';

export interface FakeReplicateDeployment {
  min_instances: number;
  max_instances: number;
  release: number;
}

export interface FakeReplicate extends FakeServer {
  token: string;
  deployments: Map<string, FakeReplicateDeployment>;
  calls: { method: string; path: string; body: unknown }[];
}

export async function startFakeReplicate(token = 'r8_test_token'): Promise<FakeReplicate> {
  const state = { token, deployments: new Map<string, FakeReplicateDeployment>(), calls: [] as { method: string; path: string; body: unknown }[] };
  const problem = (res: Parameters<typeof json>[0], status: number, title: string, detail: string) => json(res, status, { title, detail, status }, 'application/problem+json');

  const server = await listen((req, body, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    let parsed: unknown = undefined;
    try {
      parsed = body ? JSON.parse(body) : undefined;
    } catch {
      return problem(res, 400, 'Bad request', 'Invalid JSON');
    }
    state.calls.push({ method: req.method ?? 'GET', path: url.pathname, body: parsed });
    if (req.headers.authorization !== `Bearer ${state.token}`) return problem(res, 401, 'Unauthenticated', 'You did not pass a valid authentication token');
    const m = /^\/v1\/deployments\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (!m) return problem(res, 404, 'Not found', 'Not found.');
    const key = `${m[1]}/${m[2]}`;
    const d = state.deployments.get(key);
    if (!d) return problem(res, 404, 'Not found', 'Not found.');
    if (req.method === 'GET') return json(res, 200, deploymentBody(key, d));
    if (req.method === 'PATCH') {
      if (mediaType(req) !== 'application/json') return problem(res, 415, 'Unsupported media type', 'Expected application/json');
      const b = (parsed ?? {}) as Record<string, unknown>;
      const allowed = ['hardware', 'version', 'min_instances', 'max_instances'];
      const unknown = Object.keys(b).filter((k) => !allowed.includes(k));
      if (unknown.length) return problem(res, 400, 'Bad request', `Unknown fields: ${unknown.join(', ')}`);
      const min = b.min_instances ?? d.min_instances;
      const max = b.max_instances ?? d.max_instances;
      if (!Number.isInteger(min) || (min as number) < 0) return problem(res, 400, 'Bad request', 'min_instances must be an integer >= 0');
      if (!Number.isInteger(max) || (max as number) < 1) return problem(res, 400, 'Bad request', 'max_instances must be an integer >= 1');
      if ((min as number) > (max as number)) return problem(res, 400, 'Bad request', 'min_instances must be less than or equal to max_instances');
      d.min_instances = min as number;
      d.max_instances = max as number;
      d.release += 1;
      return json(res, 200, deploymentBody(key, d));
    }
    return problem(res, 405, 'Method not allowed', 'Method not allowed');
  });
  return Object.assign(state, server);
}

function deploymentBody(key: string, d: FakeReplicateDeployment) {
  const [owner, name] = key.split('/');
  return {
    owner,
    name,
    current_release: {
      number: d.release,
      model: `${owner}/llama-3.1-8b`,
      version: '5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa',
      created_at: '2026-01-01T00:00:00.000Z',
      created_by: { type: 'organization', username: owner, name: owner, github_url: null },
      configuration: { hardware: 'gpu-a100-large', min_instances: d.min_instances, max_instances: d.max_instances },
    },
  };
}
