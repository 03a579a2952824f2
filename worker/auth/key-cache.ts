import type { KeyRecord } from '../protocol/keys';
import type { Env } from '../env';
import { errors } from '../http/errors';
import { fromHex, hex, sha256 } from '../protocol/rules/hash';
import { registerIsolateState } from '../isolate/registry';

/**
 * The isolate's view of the key registry: SHA-256 of a key → its record.
 * Positive entries live 30 s (so a revocation reaches every edge within 30 s), negative
 * ones 5 s (so a stream of bad keys does not become a stream of Durable Object calls,
 * while a key created a moment ago still works almost at once).
 */
export const KEY_TTL_MS = 30_000;
export const MISS_TTL_MS = 5_000;
const MAX_ENTRIES = 10_000;

/** `digest`: the record's key hash as bytes, decoded once per entry for the constant-time compare. */
type Entry = { record: (KeyRecord & { hash: string }) | null; digest: Uint8Array | null; expires: number };
const entries = new Map<string, Entry>();
registerIsolateState('key-cache', () => entries.clear());

export async function authenticateKey(env: Env, key: string, now = Date.now()): Promise<KeyRecord | null> {
  const digest = await sha256(key);
  const hash = hex(digest);
  let entry = entries.get(hash);
  if (!entry || entry.expires <= now) {
    let record: (KeyRecord & { hash: string }) | null;
    try {
      record = await registry(env).lookup(hash);
    } catch (e) {
      // The registry is unreachable: say so (503) rather than fail as a bug would (500).
      console.error(JSON.stringify({ msg: 'key registry lookup failed', error: String(e) }));
      throw errors.unavailable('Cannot verify API keys right now; retry shortly.', 'key_registry_unavailable');
    }
    entry = { record, digest: record ? fromHex(record.hash) : null, expires: now + (record ? KEY_TTL_MS : MISS_TTL_MS) };
    if (entries.size >= MAX_ENTRIES) entries.delete(entries.keys().next().value!);
    entries.set(hash, entry);
  }
  const record = entry.record;
  // The map lookup is by hash, so timing reveals nothing about the key; compare anyway.
  if (!record || !entry.digest || entry.digest.length !== digest.length || !crypto.subtle.timingSafeEqual(entry.digest, digest)) return null;
  const { hash: _hash, ...rest } = record;
  return rest;
}

/** Drops a revoked key from this isolate at once (other isolates follow within KEY_TTL_MS). */
export function forgetKey(id: string): void {
  for (const [hash, entry] of entries) if (entry.record?.id === id) entries.delete(hash);
}

export function registry(env: Env) {
  return env.KEY_REGISTRY.get(env.KEY_REGISTRY.idFromName('global'));
}
