import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import type { AppEnv } from './env';
import { errors, RouterError } from './http/errors';
import { requireAdminToken, requireApiKey } from './middleware/auth';
import { requireConfig } from './middleware/config';
import { rateLimitRefusalHeaders } from './middleware/rate-limit-headers';
import { routerHeaderDefaults } from './middleware/router-headers';
import { adminAlerts } from './routes/admin-alerts';
import { adminBackends } from './routes/admin-backends';
import { adminBreakers } from './routes/admin-breakers';
import { adminBudgets } from './routes/admin-budgets';
import { adminKeyLimits } from './routes/admin-key-limits';
import { adminKeys } from './routes/admin-keys';
import { adminUsage } from './routes/admin-usage';
import { adminDeployments } from './routes/admin-deployments';
import { dashboard } from './routes/dashboard';
import { health } from './routes/health';
import { inferenceRoute } from './pipeline/inference';
import { listModels, retrieveModel } from './routes/models';
import { responsesRoute } from './routes/responses';
import { anthropicMessagesRoute } from './routes/anthropic-messages';
import { anthropicErrors } from './anthropic/errors';
import { metricsRoute, requireMetricsToken } from './routes/metrics';
import { feedbackRoute } from './routes/feedback';
import { files } from './routes/files';
import { batches } from './routes/batches';
import { adminQueues } from './routes/admin-queues';
import { idempotency } from './idempotency/middleware';
import { respondAsync } from './async/respond-async';
import { asyncJobRoute } from './routes/async';

export const app = new Hono<AppEnv>();

app.use(requestId({ headerName: 'x-request-id', limitLength: 128, generator: () => `req_${crypto.randomUUID().replaceAll('-', '')}` }));
app.use(requireConfig);

app.route('/', health);
// Prometheus scrape: the admin token or the metrics token (README "Metrics").
app.get('/metrics', requireMetricsToken, metricsRoute);

app.use('/admin/*', requireAdminToken);
app.route('/admin/keys', adminKeys);
app.route('/admin/keys', adminKeyLimits);
app.route('/admin/breakers', adminBreakers);
app.route('/admin/backends', adminBackends);
app.route('/admin/tenants', adminBudgets);
app.route('/admin/usage', adminUsage);
app.route('/admin/alerts', adminAlerts);
app.route('/admin/deployments', adminDeployments);
app.route('/admin/queues', adminQueues);

// The operator's page; it reads the /admin/* APIs above with a session cookie (worker/dashboard/).
app.route('/dashboard', dashboard);

// Anthropic's format on /v1/messages: registered first so it also reshapes the errors of the /v1 middleware below.
app.use('/v1/messages', anthropicErrors);
app.use('/v1/*', routerHeaderDefaults, rateLimitRefusalHeaders, requireApiKey);
// Idempotency-Key on every POST under /v1, then Prefer: respond-async on the inference endpoints (README "Idempotency", "Async requests").
app.use('/v1/*', idempotency);
app.use('/v1/chat/completions', respondAsync('chat'));
app.use('/v1/completions', respondAsync('completions'));
app.use('/v1/embeddings', respondAsync('embeddings'));
app.use('/v1/responses', respondAsync('responses'));
app.get('/v1/async/:id', asyncJobRoute);
app.get('/v1/models', listModels);
app.get('/v1/models/:id{.+}', retrieveModel);
// Inference: one request pipeline (worker/pipeline/), which also writes the usage record.
app.post('/v1/chat/completions', inferenceRoute('chat'));
app.post('/v1/completions', inferenceRoute('completions'));
app.post('/v1/embeddings', inferenceRoute('embeddings'));
// Other formats, run through the same pipeline as chat completions (usage records say endpoint "chat").
app.post('/v1/responses', responsesRoute);
app.post('/v1/messages', anthropicMessagesRoute);
// Feedback on an answered request of the caller's tenant (worker/quality/feedback.ts).
app.post('/v1/feedback', feedbackRoute);
// The Files and Batches APIs (README "Batch and async"); batch lines run through the same pipeline from the queue.
app.route('/v1/files', files);
app.route('/v1/batches', batches);

app.notFound((c) => errors.notFound(`Unknown route: ${c.req.method} ${new URL(c.req.url).pathname}`, 'unknown_route').toResponse());

app.onError((err, c) => {
  const error = err instanceof RouterError ? err : new RouterError(500, 'Internal router error.', 'internal_error');
  if (!(err instanceof RouterError)) console.error(JSON.stringify({ msg: 'unhandled error', request_id: c.get('requestId'), error: String(err) }));
  const res = error.toResponse();
  const id = c.get('requestId');
  if (id) res.headers.set('x-request-id', id);
  return res;
});
