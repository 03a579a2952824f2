import type { Context, MiddlewareHandler } from 'hono';
import { backendStates } from '../protocol/backends-api';
import { secretsEqual } from '../auth/hash';
import type { CompiledConfig } from '../config/compiled';
import type { AppEnv, Env } from '../env';
import { errors } from '../http/errors';
import { breakerSettings } from '../routing/breaker-view';
import type { BreakerState } from '../protocol/breaker';
import { lifecycleSettings } from '../protocol/rules/lifecycle-rules';
import { EXPOSITION_CONTENT_TYPE, renderExposition, type Family, type Sample } from '../telemetry/exposition';
import { STATE_METRICS as S } from '../telemetry/metric-catalog';
import { readSnapshots } from '../telemetry/metrics';
import { requestFamilies } from '../telemetry/scrape';
import { batchQueueFamilies } from '../batch/queue-report';
import { asyncQueueFamilies } from '../async/queue-report';

// GET /metrics (README "Metrics"): the aggregators' service-wide counters and histograms, plus
// gauges read at scrape time from the objects that own them (breakers, backend lifecycles).

const BREAKER_STATES: readonly BreakerState[] = ['closed', 'open', 'half-open'];

function bearer(header: string | undefined): string | null {
  return header?.match(/^Bearer\s+(\S+)\s*$/i)?.[1] ?? null;
}

/** The admin token, or the scrape token in the secret [metrics].token_secret names; both compared in constant time. */
export const requireMetricsToken: MiddlewareHandler<AppEnv> = async (c, next) => {
  const token = bearer(c.req.header('authorization'));
  const secretName = c.get('config').raw.metrics.token_secret;
  const scrapeToken = secretName ? c.env[secretName] : undefined;
  const accepted = [c.env.ADMIN_TOKEN, scrapeToken].filter((t): t is string => typeof t === 'string' && t.length > 0);
  if (accepted.length === 0) throw errors.unauthorized('/metrics is disabled: neither ADMIN_TOKEN nor the [metrics].token_secret secret is set.', 'metrics_disabled');
  // Every candidate is compared (no early exit), so timing says nothing about which one matched.
  const matches = token ? await Promise.all(accepted.map((t) => secretsEqual(token, t))) : [];
  if (!matches.includes(true)) throw errors.unauthorized('Missing or incorrect metrics token.', 'invalid_metrics_token');
  await next();
};

export async function metricsRoute(c: Context<AppEnv>): Promise<Response> {
  const config = c.get('config');
  let snapshots;
  try {
    snapshots = await readSnapshots(c.env, config);
  } catch (e) {
    // Without the counters a partial answer would look like series vanishing: fail the scrape (up = 0).
    console.error(JSON.stringify({ msg: 'metrics aggregator unreachable', error: String(e) }));
    throw errors.unavailable('The metrics aggregator is unreachable; retry shortly.', 'metrics_unavailable');
  }
  const sourceErrors: Sample[] = [];
  const [breakers, backends, batch, asyncQ] = await Promise.all([
    breakerFamilies(c.env, config).catch((e) => failed('breakers', e, sourceErrors)),
    backendFamilies(c.env, config).catch((e) => failed('backend_lifecycle', e, sourceErrors)),
    batchQueueFamilies(c.env, config).catch((e) => failed('batch_queue', e, sourceErrors)),
    asyncQueueFamilies(c.env, config).catch((e) => failed('async_queue', e, sourceErrors)),
  ]);
  const families = [...requestFamilies(snapshots), ...breakers, ...backends, ...batch, ...asyncQ, { def: S.scrapeErrors, samples: sourceErrors }];
  return new Response(renderExposition(families), { headers: { 'content-type': EXPOSITION_CONTENT_TYPE, 'cache-control': 'no-store' } });
}

function failed(source: string, e: unknown, into: Sample[]): Family[] {
  console.warn(JSON.stringify({ msg: 'metrics source unreadable', source, error: String(e) }));
  into.push({ values: [source], value: 1 });
  return [];
}

/** One RPC per configured backend, in parallel: the breaker's state and trips. */
async function breakerFamilies(env: Env, config: CompiledConfig): Promise<Family[]> {
  const ids = config.raw.backends.map((b) => b.id);
  const details = await Promise.all(ids.map((id) => env.BREAKERS.get(env.BREAKERS.idFromName(id)).details({ backend: id, settings: breakerSettings(config, id) })));
  const state: Sample[] = [];
  const trips: Sample[] = [];
  details.forEach((d, i) => {
    const id = ids[i]!;
    for (const s of BREAKER_STATES) state.push({ values: [id, s], value: d.state === s ? 1 : 0 });
    trips.push({ values: [id], value: d.trips });
  });
  return [
    { def: S.breaker, samples: state },
    { def: S.breakerTrips, samples: trips },
  ];
}

/** One RPC per configured backend, in parallel: its lifecycle (warm / cold / waking / unknown). */
async function backendFamilies(env: Env, config: CompiledConfig): Promise<Family[]> {
  const backends = config.raw.backends;
  const statuses = await Promise.all(
    backends.map((b) => env.BACKEND_LIFECYCLE.get(env.BACKEND_LIFECYCLE.idFromName(b.id)).status({ backend: b.id, settings: lifecycleSettings(config, b.id) })),
  );
  const state: Sample[] = [];
  const inFlight: Sample[] = [];
  statuses.forEach((st, i) => {
    const b = backends[i]!;
    for (const s of backendStates) state.push({ values: [b.id, b.region, s], value: st.state === s ? 1 : 0 });
    inFlight.push({ values: [b.id], value: st.in_flight });
  });
  return [
    { def: S.backend, samples: state },
    { def: S.backendInFlight, samples: inFlight },
  ];
}
