// The wire contract of BackendMetrics (durable-objects/backend-metrics.ts): the load snapshot
// isolates read (worker/routing/load-snapshot.ts) and the scrape targets tests configure.

import type { BackendConfig } from '../config/schema';
import type { BackendLoad } from './rules/metrics-parse';

/** A backend whose scrape failed: why, and when. */
export interface BackendLoadError {
  error: string;
  scrapedAt: number;
}

export type BackendLoadEntry = BackendLoad | BackendLoadError;

/** Every backend's load as last scraped; `takenAt` is when the scrape round finished (epoch ms). */
export interface LoadSnapshot {
  takenAt: number;
  backends: Record<string, BackendLoadEntry>;
}

/** One backend to scrape: GET `metrics_url` (default `${url}/metrics`), with `secret` in `auth_header` when there is one. */
export interface ScrapeTarget {
  id: string;
  url: string;
  metrics_url?: string;
  kind: BackendConfig['kind'];
  /** Default `authorization` (sent as `Bearer <secret>`); any other header gets the bare secret. */
  auth_header?: string;
  secret?: string;
}

/**
 * Replaces the targets the router config (env.ROUTER) would give. For tests and tools only:
 * a Durable Object's env is fixed per deployment, so a test points its own instance at its own
 * simulators with `configure()`; production never calls it. Kept in the object's SQLite (so it
 * survives a restart), secrets included: test keys only.
 */
export interface ScrapeOverride {
  backends: ScrapeTarget[];
  scrape_interval_ms?: number;
}
