/**
 * The floor for "through a Worker": a Worker that only forwards each request to one origin, run
 * exactly like the router in the benches (Miniflare API, direct socket, same compat date/flags).
 * Router − floor is what the router's own code costs; floor − direct is workerd + one more hop.
 */
import { Miniflare } from 'miniflare';

const SCRIPT = `export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    return fetch(env.ORIGIN + url.pathname + url.search, request);
  },
};`;

export async function startBareProxy(origin: string, compat: { compatibilityDate?: string; compatibilityFlags?: string[] }) {
  const mf = new Miniflare({
    name: 'bare-proxy',
    modules: true,
    script: SCRIPT,
    compatibilityDate: compat.compatibilityDate,
    compatibilityFlags: compat.compatibilityFlags,
    bindings: { ORIGIN: origin.replace(/\/$/, '') },
    host: '127.0.0.1',
    port: 0,
    unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
    cf: { colo: 'LOCAL' },
  });
  await mf.ready;
  const url = (await mf.unsafeGetDirectURL()).origin;
  return { url, close: () => mf.dispose() };
}
