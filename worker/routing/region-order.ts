import type { CompiledConfig } from '../config/compiled';
import type { Region } from '../config/schema';
import { distanceKm, type ClientLocation } from './geo';

/**
 * The regions a request may use, best first: the nearest one (great-circle distance from the
 * client) among those that `canServe`, then its explicit `failover` list, then the rest by
 * distance. Without a location, config order. Residency (`allowed` set) removes regions
 * outright: they appear nowhere in the chain, fallbacks included.
 */
export function orderRegions(
  config: CompiledConfig,
  location: ClientLocation | null,
  canServe: (region: Region) => boolean,
  allowed?: readonly string[],
): Region[] {
  let regions = config.raw.regions as Region[];
  if (allowed) regions = regions.filter((r) => allowed.includes(r.id));
  const byDistance = location
    ? regions
        .map((r, i) => ({ r, i, d: distanceKm(location, r) }))
        .sort((a, b) => a.d - b.d || a.i - b.i)
        .map((x) => x.r)
    : regions;
  const primary = byDistance.find(canServe) ?? byDistance[0];
  if (!primary) return [];
  const out: Region[] = [primary];
  for (const id of primary.failover) {
    const r = byDistance.find((x) => x.id === id);
    if (r && !out.includes(r)) out.push(r);
  }
  for (const r of byDistance) if (!out.includes(r)) out.push(r);
  return out;
}
