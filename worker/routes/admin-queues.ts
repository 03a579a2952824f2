import { Hono } from 'hono';
import { batchQueueReport } from '../batch/queue-report';
import type { AppEnv } from '../env';
import { objectCall } from '../http/object-call';

/** GET /admin/queues (README "Batch and async"): the batch queue's depth, oldest age, retries, dead letters (worker/batch/queue-report.ts). */
export const adminQueues = new Hono<AppEnv>();

const rpc = objectCall('batch service', 'batches_unavailable');

adminQueues.get('/', async (c) => {
  const report = await rpc(() => batchQueueReport(c.env, c.get('config')));
  return c.json({ object: 'list', data: [{ object: 'queue', ...report }] });
});
