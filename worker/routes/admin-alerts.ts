import { Hono } from 'hono';
import { RUNBOOKS, runbookForAlert, runbookUrl } from '../alerts/runbooks';
import type { AppEnv } from '../env';
import { objectCall } from '../http/object-call';

/**
 * GET /admin/alerts: the alerts in force (the AlertState object's view after the last scheduled
 * run), oldest first, each with its runbook; and the list of runbooks (the dashboard links both).
 */
export const adminAlerts = new Hono<AppEnv>();

const rpc = objectCall('alert service', 'alerts_unavailable');
const iso = (ms: number) => new Date(ms).toISOString();

adminAlerts.get('/', async (c) => {
  const base = c.get('config').raw.alerts.runbook_base_url;
  const active = await rpc(() => c.env.ALERTS.get(c.env.ALERTS.idFromName('global')).active());
  return c.json({
    object: 'list',
    data: active.map((a) => ({
      object: 'alert',
      ...a.alert,
      started_at: iso(a.started_at),
      last_seen: iso(a.last_seen),
      runbook_url: runbookUrl(base, runbookForAlert(a.alert.id)),
    })),
    runbooks: Object.entries(RUNBOOKS).map(([slug, title]) => ({ slug, title, url: runbookUrl(base, slug as keyof typeof RUNBOOKS) })),
  });
});
