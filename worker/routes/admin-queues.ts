import { Hono } from 'hono';
import { batchQueueReport } from '../batch/queue-report';
import { asyncQueueReport } from '../async/queue-report';
import type { AppEnv } from '../env';
import { objectCall } from '../http/object-call';

/**
 * GET /admin/queues (README "Batch and async"): the batch queue's depth, oldest age, retries, dead
 * letters (worker/batch/queue-report.ts), then the async queue's (worker/async/queue-report.ts) when
 * the ASYNC_JOBS binding is there.
 */
export const adminQueues = new Hono<AppEnv>();

const rpc = objectCall('batch service', 'batches_unavailable');
const asyncRpc = objectCall('async job store', 'async_unavailable');

adminQueues.get('/', async (c) => {
  const config = c.get('config');
  const [report, asyncReport] = await Promise.all([
    rpc(() => batchQueueReport(c.env, config)),
    c.env.ASYNC_JOBS ? asyncRpc(() => asyncQueueReport(c.env, config)) : null,
  ]);
  const data: object[] = [{ object: 'queue', ...report }];
  if (asyncReport) data.push({ object: 'queue', ...asyncReport });
  return c.json({ object: 'list', data });
});
