import type { SemanticIndex } from '../../env';
import type { CompiledConfig } from '../../config/compiled';
import { upstashVector, upstashVectorSettings } from '../upstash-vector';
import { upstashHealth } from '../upstash-health';
import { embedderFor } from './embedder';
import { DurableObjectSemanticIndex, FallbackSemanticIndex, UpstashVectorSemanticIndex, type SemanticIndexStore } from './index-store';
import { localSemanticCopy } from './local-copy';
import { LocalFirstSemanticIndex } from './local-index';

const built = new WeakMap<CompiledConfig, Map<string, SemanticIndexStore | null>>();
const warned = new Set<string>();

/**
 * The semantic index for this config: Upstash Vector (falling back to the Durable Object index)
 * when [upstash].vector_url and its token are set and [cache.semantic].index allows it, else the
 * per-tenant Durable Object index. Built once per config (and token) in the isolate. A missing
 * token secret or binding is logged once; null means no semantic cache at all (no binding and no
 * Upstash), which is a miss, never an error.
 */
export function semanticIndexFor(config: CompiledConfig, env: Record<string, unknown>, opts: { upstashVector?: boolean } = {}): SemanticIndexStore | null {
  const { cache, upstash } = config.raw;
  // upstashVector false: a tenant whose allowed regions exclude the Vector index (residency.ts) keeps to the Durable Object index.
  const { settings, missingSecret } = cache.semantic.index === 'durable-object' || opts.upstashVector === false ? { settings: null, missingSecret: undefined } : upstashVectorSettings(upstash, env);
  const ns = env.SEMANTIC_INDEX as DurableObjectNamespace<SemanticIndex> | undefined;
  const id = `${settings?.token ?? ''}\n${ns ? 'do' : ''}`;
  let indexes = built.get(config);
  if (!indexes) built.set(config, (indexes = new Map()));
  if (indexes.has(id)) return indexes.get(id)!;

  const embedded = ns ? new DurableObjectSemanticIndex(ns, embedderFor(config, env).id, cache.semantic.max_entries_per_tenant) : null;
  if (!ns) warnOnce('the SEMANTIC_INDEX Durable Object binding is missing: the embedded semantic index is off');
  let index: SemanticIndexStore | null = embedded;
  if (settings && upstash) {
    const primary = new UpstashVectorSemanticIndex(upstashVector(settings), upstash.key_prefix);
    index = embedded ? new FallbackSemanticIndex(primary, embedded, { url: settings.url, retryAfterMs: upstash.retry_after_ms, health: upstashHealth }) : primary;
  } else if (missingSecret) {
    warnOnce(`upstash.vector_url is set but the secret ${missingSecret} is not: the semantic cache uses the Durable Object index`);
  }
  // lookup = "local": the Durable Object index is read from the isolate's copy (local-index.ts).
  // Upstash Vector stays remote: it embeds with its own model, which the Worker cannot run.
  const { lookup, local_bytes, refresh_ms, refresh_entries } = cache.semantic;
  if (index === embedded && embedded && lookup === 'local' && local_bytes > 0) {
    index = new LocalFirstSemanticIndex(embedded, localSemanticCopy, { maxBytes: local_bytes, refreshMs: refresh_ms, refreshEntries: refresh_entries });
  }
  indexes.set(id, index);
  return index;
}

function warnOnce(msg: string) {
  if (warned.has(msg)) return;
  warned.add(msg);
  console.warn(JSON.stringify({ msg, component: 'semantic-cache' }));
}
