import type { Context } from 'hono';
import type { AppEnv } from '../env';
import { readJsonBody } from '../http/body';
import { errors } from '../http/errors';
import { announceFeedback, feedbackBodySchema, feedbackView, storeFeedback } from '../quality/feedback';

/**
 * POST /v1/feedback (README "Feedback"), with the client's API key: a score on one of its
 * tenant's requests. Only the caller's tenant's ledger is searched, so another tenant's request
 * id answers the same 404 as one that never existed. 201 when stored, 200 when it replaced
 * earlier feedback on the same request and metric.
 */
export async function feedbackRoute(c: Context<AppEnv>): Promise<Response> {
  const config = c.get('config');
  const key = c.get('key');
  const body = await readJsonBody(c.req.raw, feedbackBodySchema, config.raw.max_body_bytes);
  const u = config.raw.usage;
  if (!u.enabled || !u.ledger || !c.env.USAGE_LEDGER) {
    throw errors.unavailable('Feedback needs the usage ledger ([usage] enabled and ledger = true), which is off on this router.', 'feedback_unavailable');
  }
  const now = Date.now();
  let result;
  try {
    result = await storeFeedback(c.env, config, key.tenant, key.id ?? null, body, now);
  } catch (e) {
    console.error(JSON.stringify({ msg: 'feedback: ledger call failed', error: String(e) }));
    throw errors.unavailable('The usage ledger could not be reached; try again.', 'feedback_unavailable');
  }
  if (result.status === 'not_found') {
    throw errors.notFound(`No request '${body.request_id}' was found for this API key's tenant (a request's record is written within seconds of its answer).`, 'request_not_found', 'request_id');
  }
  if (result.status === 'ambiguous') {
    throw errors.conflict(`'${body.request_id}' is the client request id of ${result.matches} requests; send the router's id (x-router-request-id) instead.`, 'ambiguous_request_id', 'request_id');
  }
  const replaced = result.status === 'replaced';
  announceFeedback(c.env, c.executionCtx, config, {
    tenant: key.tenant,
    request_id: result.record.request_id,
    score: result.feedback.score,
    metric: result.feedback.metric,
    replaced,
    at: now,
    record: result.record,
  });
  return c.json(feedbackView(result.feedback, result.record, replaced), replaced ? 200 : 201);
}
