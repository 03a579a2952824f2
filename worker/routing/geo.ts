import type { RouterConfig } from '../config/schema';

export interface ClientLocation {
  latitude: number;
  longitude: number;
  country?: string;
  source: 'cf' | 'debug-header';
}

/**
 * Where the client is: request.cf in production; in dev (config `debug_geo_header`), the
 * `x-router-debug-geo: <lat>,<lon>[,<country>]` header, since a local request.cf has none.
 */
export function clientLocation(request: Request, config: RouterConfig): ClientLocation | null {
  if (config.debug_geo_header) {
    const header = request.headers.get('x-router-debug-geo');
    if (header) {
      const [lat, lon, country] = header.split(',').map((s) => s.trim());
      const latitude = Number(lat);
      const longitude = Number(lon);
      if (validCoordinates(latitude, longitude)) return { latitude, longitude, country: country || undefined, source: 'debug-header' };
    }
  }
  const cf = (request as { cf?: IncomingRequestCfProperties }).cf;
  if (cf?.latitude !== undefined && cf.longitude !== undefined) {
    const latitude = Number(cf.latitude);
    const longitude = Number(cf.longitude);
    if (validCoordinates(latitude, longitude)) return { latitude, longitude, country: cf.country ?? undefined, source: 'cf' };
  }
  return null;
}

function validCoordinates(lat: number, lon: number): boolean {
  return Number.isFinite(lat) && Number.isFinite(lon) && Math.abs(lat) <= 90 && Math.abs(lon) <= 180;
}

const EARTH_RADIUS_KM = 6371;
const rad = (deg: number) => (deg * Math.PI) / 180;

/** Great-circle distance (haversine) in kilometres. */
export function distanceKm(a: { latitude: number; longitude: number }, b: { latitude: number; longitude: number }): number {
  const dLat = rad(b.latitude - a.latitude);
  const dLon = rad(b.longitude - a.longitude);
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(rad(a.latitude)) * Math.cos(rad(b.latitude)) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)));
}
