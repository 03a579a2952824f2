import type { CompiledConfig } from '../config/compiled';
import type { Env } from '../env';
import type { JobView } from '../protocol/async-jobs';
import { sendSignedWebhook, webhookSecret } from '../protocol/rules/signed-webhook';

export const ASYNC_JOB_EVENT = 'async.job.completed';

/**
 * The job's webhook (README "Async requests"): only to a target configured for the tenant
 * ([async].webhooks.<tenant>.<name>), signed with that target's own secret (worker/protocol/rules/
 * signed-webhook.ts). The body is the job as GET /v1/async/{id} answers it. A few attempts with a
 * short backoff; a target that keeps failing is logged, and the job stays readable by polling.
 */
export async function deliverJobWebhook(env: Env, config: CompiledConfig, tenant: string, name: string, job: JobView): Promise<boolean> {
  const cfg = config.raw.async;
  const target = webhookTarget(cfg.webhooks, tenant, name);
  if (!target) return false;
  let secret: string | null;
  try {
    secret = webhookSecret(env as unknown as Record<string, unknown>, target.secret);
  } catch (e) {
    console.error(JSON.stringify({ msg: 'async webhook: secret missing, not sent', tenant, webhook: name, error: String(e) }));
    return false;
  }
  const body = JSON.stringify(job);
  for (let attempt = 1; attempt <= cfg.webhook_attempts; attempt++) {
    try {
      await sendSignedWebhook({ url: target.url, event: ASYNC_JOB_EVENT, deliveryId: job.id, body, secret, attempt, userAgent: 'edge-router-async/1', timeoutMs: cfg.webhook_timeout_ms });
      return true;
    } catch (e) {
      console.error(JSON.stringify({ msg: 'async webhook: attempt failed', tenant, webhook: name, attempt, error: String(e) }));
      if (attempt < cfg.webhook_attempts) await new Promise((r) => setTimeout(r, 250 * 2 ** (attempt - 1)));
    }
  }
  return false;
}

/** The target configured for tenant and name; own keys only ("__proto__" and friends are no target). */
export function webhookTarget(webhooks: CompiledConfig['raw']['async']['webhooks'], tenant: string, name: string) {
  const byName = Object.hasOwn(webhooks, tenant) ? webhooks[tenant] : undefined;
  return byName && Object.hasOwn(byName, name) ? byName[name] : undefined;
}
