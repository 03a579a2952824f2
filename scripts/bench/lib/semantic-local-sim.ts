/**
 * What `[cache.semantic].lookup = "local"` costs in hit rate against "remote" (one call to the
 * index per lookup), on the labelled pairs (test/fixtures/semantic-pairs.json), with the Worker's
 * own copy (worker/cache/semantic/local-copy.ts) and a model of everything around it:
 *
 * - `isolates` isolates share one tenant's index; every request lands on one of them at random;
 * - each pair's `a` arrives at a uniform time in [0, duration] and is stored (in the object, and at
 *   once in the copy of the isolate that served it); its `b` arrives an exponential gap later
 *   (mean `meanGapS`) and is looked up: "remote" asks the object, "local" the isolate's copy;
 * - other traffic: each isolate serves `perIsolateRps` more lookups of the tenant on a semantic
 *   tier (Poisson) that match nothing: they only start refreshes;
 * - a request refreshes its isolate's copy when the last refresh is `refreshS` old: the object's
 *   entries stored or used since the copy's cursor, most recent first, up to `refreshEntries`; the
 *   refresh lands after the request that started it (it runs in the background), as does what a
 *   local miss learns from the object's answer; a miss asks the object only while the copy is
 *   behind (local-index.ts: cold, or holding fewer entries than the object at its last refresh).
 *
 * Simplifications: a `b` that misses is not stored (in either mode), the refresh and the learned
 * entry land before the isolate's next request (no RTT), and copies never fill their byte bound
 * (the fixture is small).
 */
import { LocalSemanticCopy } from '../../../worker/cache/semantic/local-copy';
import type { SemanticHotEntry } from '../../../worker/protocol/semantic-index';
import { side, type PromptPair, type Side } from './semantic-pairs';
import { unitPrng as mulberry32 } from '../../../regional/sim/hash';

export interface TrafficOptions {
  isolates: number;
  perIsolateRps: number;
  refreshS: number;
  meanGapS: number;
  durationS: number;
  seed: number;
  threshold: number;
  embed: (text: string) => Float32Array | null;
  topK?: number;
  refreshEntries?: number;
}

export interface ModeResult {
  shouldHit: number;
  correctHits: number;
  wrongHits: number;
}

export interface TrafficResult {
  remote: ModeResult;
  local: ModeResult;
  /** b lookups "remote" answered correctly and "local" missed. */
  lostHits: number;
}

type Event = { t: number; iso: number } & ({ kind: 'a' | 'b'; pair: number } | { kind: 'other' });

export function simulateTraffic(pairs: PromptPair[], o: TrafficOptions): TrafficResult {
  const rand = mulberry32(o.seed);
  const topK = o.topK ?? 3;
  const refreshEntries = o.refreshEntries ?? 200;
  const sides = pairs.map((p) => ({ a: side(p.a, p.a_context, o.embed), b: side(p.b, p.b_context, o.embed) }));
  const events: Event[] = [];
  let end = 0;
  pairs.forEach((_, i) => {
    const ta = rand() * o.durationS;
    const tb = ta - Math.log(1 - rand()) * o.meanGapS;
    end = Math.max(end, tb);
    events.push({ t: ta, iso: Math.floor(rand() * o.isolates), kind: 'a', pair: i }, { t: tb, iso: Math.floor(rand() * o.isolates), kind: 'b', pair: i });
  });
  for (let iso = 0; iso < o.isolates; iso++) {
    for (let t = -Math.log(1 - rand()) / o.perIsolateRps; t < end; t += -Math.log(1 - rand()) / o.perIsolateRps) events.push({ t, iso, kind: 'other' });
  }
  events.sort((x, y) => x.t - y.t);

  const object = new LocalSemanticCopy(Number.MAX_SAFE_INTEGER);
  const seqOf = new Map<string, number>();
  const entryOf = new Map<string, SemanticHotEntry>();
  let seq = 0;
  const copies = Array.from({ length: o.isolates }, () => ({ copy: new LocalSemanticCopy(4 * 1024 * 1024), cursor: 0, refreshedAt: -Infinity, behind: true }));
  const remote: ModeResult = { shouldHit: 0, correctHits: 0, wrongHits: 0 };
  const local: ModeResult = { shouldHit: 0, correctHits: 0, wrongHits: 0 };
  let lostHits = 0;

  const entry = (s: Side, t: number): SemanticHotEntry => ({ id: `${s.scope}\n${s.text}`, scope: s.scope, vector: s.vector!, text: s.text, depth: s.depth, answer: s.text, storedAt: t, expiresAt: Infinity });
  const lookupIn = (copy: LocalSemanticCopy, s: Side, t: number) => copy.lookup({ tenantId: 't', scope: s.scope, vector: s.vector!, text: s.text, depth: s.depth, threshold: o.threshold, topK, now: t });
  const score = (r: ModeResult, p: PromptPair, own: Side | null, matched: Pick<SemanticHotEntry, 'scope' | 'text'> | null) => {
    if (!matched) return;
    if (p.label === 'hit' && own && matched.scope === own.scope && matched.text === own.text) r.correctHits++;
    else r.wrongHits++;
  };

  for (const e of events) {
    const c = copies[e.iso]!;
    const due = e.t - c.refreshedAt >= o.refreshS;
    if (due) c.refreshedAt = e.t;
    if (e.kind === 'a') {
      const a = sides[e.pair]!.a;
      if (a?.vector) {
        const en = entry(a, e.t);
        object.put('t', en, e.t);
        entryOf.set(en.id, en);
        seqOf.set(en.id, ++seq);
        c.copy.put('t', en, e.t);
      }
    } else if (e.kind === 'b') {
      const p = pairs[e.pair]!;
      const { a, b } = sides[e.pair]!;
      if (p.label === 'hit') {
        remote.shouldHit++;
        local.shouldHit++;
      }
      if (b?.vector) {
        const r = lookupIn(object, b, e.t)?.entry ?? null;
        const l = lookupIn(c.copy, b, e.t)?.entry ?? null;
        score(remote, p, a, r);
        score(local, p, a, l);
        if (r && !l && p.label === 'hit' && a && r.text === a.text && r.scope === a.scope) lostHits++;
        if (r) seqOf.set(r.id, ++seq); // a use at the object
        if (!l && r && c.behind) c.copy.put('t', entryOf.get(r.id)!, e.t); // what the background lookup learns
      }
    }
    if (due) {
      // The refresh this request started, landing after it: most recent first, up to refreshEntries.
      const changed = [...seqOf].filter(([, s]) => s > c.cursor).sort((x, y) => y[1] - x[1]).slice(0, refreshEntries);
      for (let i = changed.length - 1; i >= 0; i--) c.copy.put('t', entryOf.get(changed[i]![0])!, e.t);
      c.cursor = seq;
      c.behind = c.copy.size('t') < object.size('t');
    }
  }
  return { remote, local, lostHits };
}

