import type { Context } from 'hono';
import type { AppEnv } from '../env';
import { errors } from '../http/errors';
import { objectCall } from '../http/object-call';
import { requestStore } from '../async/store';
import type { JobView } from '../protocol/async-jobs';

/** GET /v1/async/{id}: the caller's tenant's job only; another tenant's id is the same 404 as an unknown one. */
export async function asyncJobRoute(c: Context<AppEnv>): Promise<Response> {
  const id = c.req.param('id') ?? '';
  const notFound = () => errors.notFound(`No async job "${id.slice(0, 64)}".`, 'async_job_not_found', 'id');
  if (!/^async_[0-9a-f]{32}$/.test(id)) throw notFound();
  const store = requestStore(c.env, c.get('key').tenant);
  const job = (await objectCall('async job store', 'async_unavailable')(() => store.getJob(id, Date.now()))) as JobView | null;
  if (!job) throw notFound();
  return c.json(job, 200, job.status === 'completed' || job.status === 'failed' ? {} : { 'retry-after': '1' });
}
