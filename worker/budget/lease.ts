// This isolate's side of the budgets: leased slices of each tenant's headroom, spent locally.
//
// - A request reserves its worst case (estimate.ts) from the lease this isolate holds for its
//   budget: synchronous, no I/O. Only when the lease cannot cover it does the request wait for
//   one sync with the tenant's TenantQuota object, which grows the lease by at least that much or
//   refuses (hard limit: 429 insufficient_quota; soft limit under "block": 429 budget_exceeded).
//   Syncs of one budget run one at a time, in order; a grant is taken by the request that asked
//   for it before anyone else can see it.
// - When the request ends it settles: the reservation goes back to the lease and the real usage
//   becomes a debit (its id made here, unique per admitted request). A failed request releases
//   everything. Debits go to the object in batches (report_interval_ms / report_max_batch) from
//   waitUntil; a report that fails is sent again with the next one (the object ignores debit ids
//   it has counted), so nothing is lost or counted twice.
// - A lease is used for lease_ttl_ms and renewed in the background while busy; an expired one is
//   closed (its rest goes back) once its requests have ended. Near the limit the object hands out
//   leases about one request big ("tight"): each is closed as soon as it is idle, and requests
//   there pay the hop. That is the price of never overshooting; far from the limit most requests
//   make no remote call at all.
// - The budget's state (usage, limits, policy, approvals) comes back with every sync; the
//   warning header and the soft limit are decided from it plus this isolate's unreported usage.
//   A copy older than refresh_ms is refreshed in the background; one from a past period (UTC day
//   or month) is refreshed before the request goes on.

import type { BudgetView, Debit, LimitName, QuotaScope, SyncReply, SyncRequest } from '../protocol/quota';
import type { WaitUntil } from '../isolate/background';
import type { CompiledConfig } from '../config/compiled';
import type { ModelConfig } from '../config/schema';
import type { Usage } from '../openai/usage';
import { budgetUnavailable, hardLimitError, softLimitError } from './errors';
import type { EndpointKind } from '../openai/schemas';
import { cheapestTier, costOf, worstCase, type WorstCase } from './estimate';
import { budgetScope, quotaStub, tenantBudget, type TenantBudgetConfig } from './settings';

type Env = Record<string, unknown>;
/** Tokens and nano-dollars; Infinity where no limit counts that unit. */
interface Amount {
  tokens: number;
  nano: number;
}

/** A sync holding a budget's turn longer than this is presumed lost (its request was cut short). */
const TURN_GIVE_UP_MS = 10_000;
/** A report that fails is tried again this many times (backing off) from the same waitUntil; then it waits for the next one. */
const REPORT_RETRIES = 5;
/** Tries for one admission whose lease keeps being lost (revoked by a limit change). */
const MAX_ROUNDS = 4;
/** Debits per sync call; more go in the next one. */
const MAX_DEBITS_PER_SYNC = 500;
/** Background syncs of one budget start at most this often. */
const REFRESH_GAP_MS = 100;

interface Lease {
  id: string;
  /** The object has seen it (later syncs no longer ask to create it). */
  created: boolean;
  /** Free part: what requests may still reserve. */
  avail: Amount;
  /** Local clock: no new reservation after this. */
  useUntil: number;
  inflight: number;
  /** Settled, not yet reported. */
  debits: Debit[];
  /** No new reservations (expired, tight and idle, or lost); closed once idle. */
  retired: boolean;
  /** The object holds nothing for it any more (closed or lost): only debits are still sent. */
  gone: boolean;
  tight: boolean;
}

interface Waiter {
  resolve: () => void;
  timer: ReturnType<typeof setTimeout>;
}

interface Entry {
  key: string;
  scope: QuotaScope;
  cfg: TenantBudgetConfig;
  view: BudgetView | null;
  /** Local clock: when the view arrived, and when its period ends. */
  viewAt: number;
  staleAt: number;
  current: Lease | null;
  /** Every lease with something left to do: reservations in flight, debits, a close. */
  leases: Set<Lease>;
  /** Settled usage not yet acknowledged by the object (counted in the local view of usage). */
  unacked: Amount;
  busySince: number | null;
  waiters: Waiter[];
  /** The object's last refusal, with the headroom it reported. */
  denied: { at: number; kind: 'soft' | 'hard'; limit: LimitName; free: Amount } | null;
  flushArmedAt: number | null;
  /** A flush at once was armed because report_max_batch debits piled up. */
  batchArmed: boolean;
  lastFlushAt: number;
  refreshingSince: number | null;
  lastRefreshAt: number;
  /** The last worst case reserved: a typical request, for the object's lease sizing. */
  hint: Amount;
}

let entries = new Map<string, Entry>();

function entryFor(scope: QuotaScope & { key: string }, cfg: TenantBudgetConfig): Entry {
  let e = entries.get(scope.key);
  if (!e) {
    e = {
      key: scope.key,
      scope: { tenant: scope.tenant, feature: scope.feature },
      cfg,
      view: null,
      viewAt: 0,
      staleAt: 0,
      current: null,
      leases: new Set(),
      unacked: { tokens: 0, nano: 0 },
      busySince: null,
      waiters: [],
      denied: null,
      flushArmedAt: null,
      batchArmed: false,
      lastFlushAt: Number.NEGATIVE_INFINITY,
      refreshingSince: null,
      lastRefreshAt: Number.NEGATIVE_INFINITY,
      hint: { tokens: 0, nano: 0 },
    };
    entries.set(scope.key, e);
  }
  e.cfg = cfg;
  return e;
}

/**
 * The request's budget, or null when its tenant has none (or budgets are off): then nothing
 * else of this module runs for it. Throws 400 for a malformed x-router-feature when budgets are per feature.
 */
export function budgetFor(config: CompiledConfig, tenantId: string, featureHeader: string | undefined, env: Env, ctx: WaitUntil): BudgetHandle | null {
  const cfg = tenantBudget(config, tenantId);
  if (!cfg) return null;
  return new BudgetHandle(config, entryFor(budgetScope(cfg, featureHeader), cfg), env, ctx);
}

/** One request's handle on its budget. */
export class BudgetHandle {
  constructor(
    private readonly config: CompiledConfig,
    private readonly e: Entry,
    private readonly env: Env,
    private readonly ctx: WaitUntil,
  ) {}

  get key(): string {
    return this.e.key;
  }

  /**
   * The soft limit, before routing: throws 429 budget_exceeded under "block"; says whether to
   * downgrade under "downgrade". From memory, unless this isolate has no current copy of the
   * budget (first request, new period): then one sync first.
   */
  async check(): Promise<{ downgrade: boolean }> {
    const e = this.e;
    const now = Date.now();
    if (!e.view || now >= e.staleAt) {
      const reply = await this.withTurn(async () => {
        if (e.view && Date.now() < e.staleAt) return true; // another request just did it
        return (await this.send(this.currentLease(Date.now()), {})) !== null;
      });
      if (!reply || !e.view) throw budgetUnavailable();
    } else if (now - e.viewAt >= e.cfg.refreshMs) {
      this.refresh(now);
    }
    const soft = softLimitReached(e);
    if (soft && e.view!.policy === 'block') throw softLimitError(e.key, soft, this.warning());
    return { downgrade: soft !== null && e.view!.policy === 'downgrade' };
  }

  /**
   * The soft limit, for routing: throws 429 budget_exceeded under "block"; under "downgrade",
   * the tier to run the request in instead (the tenant's cheapest), or null to run it as asked.
   * Embeddings are never downgraded (they are in no tier).
   */
  async softLimit(tenantId: string, currentTier: string | null, endpoint: EndpointKind): Promise<string | null> {
    const { downgrade } = await this.check();
    if (!downgrade || endpoint === 'embeddings') return null;
    const tier = cheapestTier(this.config, tenantId, this.config.raw.tenants[tenantId]!);
    return tier !== null && tier !== currentTier ? tier : null;
  }

  /**
   * Reserves the worst case of a request about to go to one of `models`; when it has no output
   * limit, sets `body.max_tokens` to the one reserved for (so the backend cannot exceed it).
   */
  async admit(endpoint: EndpointKind, body: Record<string, unknown>, models: readonly ModelConfig[]): Promise<Reservation> {
    const unique = [...new Set(models)];
    const worst = worstCase(this.config, endpoint, body, unique, { defaultMaxTokens: this.e.cfg.defaultMaxTokens, nonTextPartTokens: this.e.cfg.nonTextPartTokens });
    const reservation = await this.reserve(worst);
    if (worst.maxTokens !== null) body.max_tokens = worst.maxTokens;
    return reservation;
  }

  /**
   * Reserves the request's worst case from this isolate's lease; asks the tenant's object only
   * when the lease cannot cover it. Throws 429 (insufficient_quota or budget_exceeded) or 503
   * (budget_unavailable: the object could not be reached when it had to be).
   */
  async reserve(worst: WorstCase): Promise<Reservation> {
    const e = this.e;
    const need: Amount = { tokens: worst.tokens, nano: worst.nano };
    e.hint = need;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const taken = this.take(need, Date.now());
      if (taken) return taken;
      this.refuseIfKnown(need, Date.now());
      const got = await this.withTurn(async () => {
        const now = Date.now();
        const again = this.take(need, now);
        if (again) return again;
        this.refuseIfKnown(need, now);
        const lease = this.currentLease(now);
        const reply = await this.send(lease, { need: { tokens: lack(need.tokens, lease.avail.tokens), nano: lack(need.nano, lease.avail.nano) } });
        if (!reply) throw budgetUnavailable();
        if (reply.denied) throw this.refusal(reply.denied.kind, reply.denied.limit);
        // Nothing ran since the grant was applied: it is this request's (even if the lease was
        // retired meanwhile, as the last request on it ended).
        return this.takeFrom(lease, need, Date.now());
      });
      if (got) return got;
    }
    throw budgetUnavailable();
  }

  /** x-router-budget-warning: each limit at or above warning_ratio, e.g. "monthly_tokens=83%". */
  warning(): string | null {
    const view = this.e.view;
    if (!view) return null;
    const parts: { text: string; share: number }[] = [];
    for (const l of view.limits) {
      const share = shareOf(this.e, l.name, l.limit, l.used);
      if (share >= view.warning_ratio) parts.push({ text: `${l.name}=${l.limit > 0 ? Math.floor(share * 100) : 100}%`, share });
    }
    return parts.length ? parts.sort((a, b) => b.share - a.share).map((p) => p.text).join(', ') : null;
  }

  // ---------------------------------------------------------------- internals

  private refusal(kind: 'soft' | 'hard', limit: LimitName | null) {
    return kind === 'soft' ? softLimitError(this.e.key, limit, this.warning()) : hardLimitError(this.e.key, limit, this.warning());
  }

  /** Refuses without a hop when the object said lately that its headroom cannot cover this. */
  private refuseIfKnown(need: Amount, now: number): void {
    const d = this.e.denied;
    if (!d || now - d.at >= this.e.cfg.refreshMs || now < d.at) return;
    const lease = usable(this.e.current, now);
    const avail = lease?.avail ?? { tokens: 0, nano: 0 };
    if (need.tokens > avail.tokens + d.free.tokens || need.nano > avail.nano + d.free.nano) throw this.refusal(d.kind, d.limit);
  }

  /** Takes `need` from the current lease if it can cover it (retiring a lease past its use-by). */
  private take(need: Amount, now: number): Reservation | null {
    const lease = this.e.current;
    if (!lease) return null;
    if (lease.retired || now >= lease.useUntil) {
      this.retire(lease);
      return null;
    }
    return this.takeFrom(lease, need, now);
  }

  private takeFrom(lease: Lease, need: Amount, now: number): Reservation | null {
    const e = this.e;
    if (lease.gone || now >= lease.useUntil || lease.avail.tokens < need.tokens || lease.avail.nano < need.nano) return null;
    lease.avail.tokens -= need.tokens;
    lease.avail.nano -= need.nano;
    lease.inflight++;
    const r = new Reservation(this.config, e, lease, need, this.env, this.ctx);
    this.renewSoon(lease, now);
    return r;
  }

  /** The lease to grow: the current one, or a new one. */
  private currentLease(now: number): Lease {
    const e = this.e;
    const lease = usable(e.current, now);
    if (lease) return lease;
    if (e.current) this.retire(e.current);
    const fresh: Lease = {
      id: `ls_${crypto.randomUUID().replaceAll('-', '')}`,
      created: false,
      avail: { tokens: 0, nano: 0 },
      useUntil: 0,
      inflight: 0,
      debits: [],
      retired: false,
      gone: false,
      tight: false,
    };
    e.current = fresh;
    e.leases.add(fresh);
    return fresh;
  }

  private retire(lease: Lease): void {
    retire(this.e, lease, this.env, this.ctx);
  }

  /** Renews in the background: a lease nearing its use-by or running low, a view older than refresh_ms. */
  private renewSoon(lease: Lease, now: number): void {
    const e = this.e;
    const ttl = e.cfg.settings.lease_ttl_ms;
    const low = !lease.tight && (lease.avail.tokens < 2 * e.hint.tokens || lease.avail.nano < 2 * e.hint.nano);
    if (lease.useUntil - now < ttl / 3 || low || now - e.viewAt >= e.cfg.refreshMs) this.refresh(now);
  }

  /** One background sync (renewal, top-up, fresh view), unless one is running. */
  private refresh(now: number): void {
    const e = this.e;
    if (e.refreshingSince !== null && now - e.refreshingSince < TURN_GIVE_UP_MS) return;
    if (now - e.lastRefreshAt < REFRESH_GAP_MS && now >= e.lastRefreshAt) return;
    e.lastRefreshAt = now;
    const mine = (e.refreshingSince = now);
    const run = this.withTurn(async () => {
      await this.send(this.currentLease(Date.now()), {});
    })
      .catch((err) => console.warn(`budget ${e.key}: refresh failed: ${message(err)}`))
      .finally(() => {
        if (e.refreshingSince === mine) e.refreshingSince = null;
      });
    background(this.ctx, run);
  }

  private send(lease: Lease, opts: { need?: Amount; close?: boolean }): Promise<SyncReply | null> {
    return send(this.env, this.e, lease, opts);
  }

  private withTurn<T>(fn: () => Promise<T>): Promise<T> {
    return withTurn(this.e, fn);
  }
}

/** One admitted request's hold on its lease: settle it with the real usage, or release it. */
export class Reservation {
  /** The debit's id: unique per admitted request (x-request-id is the client's and may repeat). */
  readonly id = `dbt_${crypto.randomUUID().replaceAll('-', '')}`;
  private done = false;

  constructor(
    private readonly config: CompiledConfig,
    private readonly e: Entry,
    private readonly lease: Lease,
    readonly worst: Amount,
    private readonly env: Env,
    private readonly ctx: WaitUntil,
  ) {}

  /**
   * The answer is complete (for a stream: it ended, or the client left). Debits the real usage;
   * an answer whose usage never came (a stream cut short) is charged its whole reservation.
   */
  readonly settle = (s: { usage: Usage | null; candidate: { model: { id: string } } }): void => {
    if (this.done) return;
    this.done = true;
    const usage = s.usage;
    const actual: Amount = usage
      ? { tokens: usage.prompt_tokens + usage.completion_tokens, nano: costOf(this.config, s.candidate.model.id, usage) }
      : { ...this.worst };
    const { lease, e } = this;
    lease.inflight--;
    lease.avail.tokens += this.worst.tokens - actual.tokens;
    lease.avail.nano += this.worst.nano - actual.nano;
    if (actual.tokens > this.worst.tokens || actual.nano > this.worst.nano) {
      console.warn(JSON.stringify({ msg: 'budget: usage above its reservation', budget: e.key, reserved: this.worst, actual }));
    }
    if (actual.tokens > 0 || actual.nano > 0) {
      lease.debits.push({ id: this.id, tokens: actual.tokens, nano: actual.nano });
      e.unacked.tokens += actual.tokens;
      e.unacked.nano += actual.nano;
      armFlush(this.env, e, this.ctx);
    }
    this.idle();
  };

  /** The request failed (or was never sent): everything goes back, nothing is debited. */
  release(): void {
    if (this.done) return;
    this.done = true;
    this.lease.inflight--;
    this.lease.avail.tokens += this.worst.tokens;
    this.lease.avail.nano += this.worst.nano;
    this.idle();
  }

  /**
   * After execute(): releases the reservation unless `streaming` (the upstream stream is being
   * relayed and settles when it ends). A completed non-streamed answer has settled already.
   */
  finish(streaming: boolean): void {
    if (!this.done && !streaming) this.release();
  }

  /** A tight or lost lease goes back as soon as its last request ends. */
  private idle(): void {
    const lease = this.lease;
    if (lease.inflight === 0 && (lease.tight || lease.gone || lease.retired)) retire(this.e, lease, this.env, this.ctx);
  }
}

// ------------------------------------------------------------------ syncs

function usable(lease: Lease | null, now: number): Lease | null {
  return lease && !lease.retired && now < lease.useUntil ? lease : null;
}

function retire(e: Entry, lease: Lease, env: Env, ctx: WaitUntil): void {
  if (!lease.retired) lease.retired = true;
  if (e.current === lease) e.current = null;
  if (lease.inflight === 0 && (!lease.gone || lease.debits.length > 0)) armFlush(env, e, ctx, true);
  cleanup(e, lease);
}

function cleanup(e: Entry, lease: Lease): void {
  if (lease.retired && lease.inflight === 0 && lease.debits.length === 0 && lease.gone) e.leases.delete(lease);
}

/** A sync with the tenant's object for one lease: its debits, and a need or a close. null when the call failed. */
async function send(env: Env, e: Entry, lease: Lease, opts: { need?: Amount; close?: boolean }): Promise<SyncReply | null> {
  const debits = lease.debits.splice(0, MAX_DEBITS_PER_SYNC);
  // A retired lease only reports (and closes): growing or renewing it would strand headroom.
  const reportOnly = lease.retired && !opts.close;
  const msg: SyncRequest = {
    scope: e.scope,
    settings: e.cfg.settings,
    lease: lease.id,
    create: !lease.created,
    debits,
    hint: finiteOrZero(e.hint),
    ...(opts.need ? { need: finiteOrZero(opts.need) } : {}),
    ...(opts.close ? { close: true } : {}),
    ...(reportOnly ? { report_only: true } : {}),
  };
  let reply: SyncReply;
  try {
    reply = await quotaStub(env, e.key).sync(msg);
  } catch (err) {
    // Not counted, or counted without our hearing of it: either way the debits go again (ids dedupe).
    lease.debits.unshift(...debits);
    console.warn(`budget ${e.key}: sync failed: ${message(err)}`);
    return null;
  }
  apply(e, lease, debits, reply, Date.now(), opts.close === true);
  return reply;
}

function apply(e: Entry, lease: Lease, sent: Debit[], reply: SyncReply, now: number, closing: boolean): void {
  e.view = reply.view;
  e.viewAt = now;
  e.staleAt = now + reply.view.rollover_in_ms;
  for (const d of sent) {
    e.unacked.tokens -= d.tokens;
    e.unacked.nano -= d.nano;
  }
  lease.created = true;
  if (reply.lost || closing) {
    lease.gone = true;
    lease.retired = true;
    lease.avail = { tokens: 0, nano: 0 };
    if (e.current === lease) e.current = null;
  } else if (!reply.report_only) {
    lease.avail.tokens = reply.granted.tokens === null ? Number.POSITIVE_INFINITY : lease.avail.tokens + reply.granted.tokens;
    lease.avail.nano = reply.granted.nano === null ? Number.POSITIVE_INFINITY : lease.avail.nano + reply.granted.nano;
    lease.useUntil = now + reply.lease_ms;
    lease.tight = reply.tight;
  }
  if (reply.denied) {
    e.denied = {
      at: now,
      kind: reply.denied.kind,
      limit: reply.denied.limit,
      // A soft refusal holds whatever the request needs.
      free:
        reply.denied.kind === 'soft'
          ? { tokens: 0, nano: 0 }
          : { tokens: reply.free.tokens ?? Number.POSITIVE_INFINITY, nano: reply.free.nano ?? Number.POSITIVE_INFINITY },
    };
  } else if (!reply.lost) {
    e.denied = null;
  }
  cleanup(e, lease);
}

/**
 * Makes sure the debits settled so far get reported: after report_interval_ms since the last
 * report (at once with report_max_batch of them, or `now`), in the calling request's waitUntil.
 * Every debit is covered: one settled after a flush took its batch arms a flush of its own.
 */
function armFlush(env: Env, e: Entry, ctx: WaitUntil, now = false, retry = 0): void {
  const t = Date.now();
  let pending = 0;
  for (const l of e.leases) pending += l.debits.length;
  const full = pending >= e.cfg.reportMaxBatch;
  if (e.flushArmedAt !== null && t - e.flushArmedAt < TURN_GIVE_UP_MS + e.cfg.reportIntervalMs) {
    // One is armed for later: a full batch goes now (once), the rest waits for it.
    if (!full || e.batchArmed) return;
    e.batchArmed = true;
  }
  e.flushArmedAt = t;
  const delay = now || full ? 0 : Math.max(0, e.lastFlushAt + e.cfg.reportIntervalMs - t);
  const run = new Promise<void>((resolve) => setTimeout(resolve, delay))
    .then(() => flush(env, e, ctx, retry))
    .catch((err) => console.warn(`budget ${e.key}: report failed: ${message(err)}`));
  background(ctx, run);
}

/** Reports every lease's debits and closes the idle retired ones, one sync at a time. */
async function flush(env: Env, e: Entry, ctx: WaitUntil, retry: number): Promise<void> {
  let failed = false;
  await withTurn(e, async () => {
    // From here on, newly settled debits arm a flush of their own.
    e.flushArmedAt = null;
    e.batchArmed = false;
    e.lastFlushAt = Date.now();
    for (const lease of [...e.leases]) {
      for (;;) {
        const close = lease.retired && !lease.gone && lease.inflight === 0;
        if (lease.debits.length === 0 && !close) break;
        const last = lease.debits.length <= MAX_DEBITS_PER_SYNC;
        const reply = await send(env, e, lease, { close: close && last });
        if (!reply) {
          failed = true;
          break;
        }
      }
      cleanup(e, lease);
    }
  });
  if (failed && retry < REPORT_RETRIES) {
    // The object could not be reached: back off and try again; past that, the next report takes them.
    await new Promise((r) => setTimeout(r, Math.max(100, e.cfg.reportIntervalMs) * 2 ** retry));
    armFlush(env, e, ctx, true, retry + 1);
  }
}

async function withTurn<T>(e: Entry, fn: () => Promise<T>): Promise<T> {
  if (e.busySince !== null && Date.now() - e.busySince < TURN_GIVE_UP_MS) {
    await new Promise<void>((resolve) => {
      const w: Waiter = {
        resolve,
        // The holder is presumed lost: go ahead (a second sync at once is slower, never wrong).
        timer: setTimeout(() => {
          const i = e.waiters.indexOf(w);
          if (i >= 0) e.waiters.splice(i, 1);
          resolve();
        }, TURN_GIVE_UP_MS),
      };
      e.waiters.push(w);
    });
  }
  const mine = (e.busySince = Date.now());
  try {
    return await fn();
  } finally {
    const next = e.waiters.shift();
    if (next) {
      clearTimeout(next.timer);
      e.busySince = Date.now(); // handed over: the next one runs without racing newcomers
      next.resolve();
    } else if (e.busySince === mine) {
      e.busySince = null;
    }
  }
}

// ------------------------------------------------------------------ the local view

function unitOf(name: LimitName): 'tokens' | 'nano' {
  return name.endsWith('_usd') ? 'nano' : 'tokens';
}

function shareOf(e: Entry, name: LimitName, limit: number, used: number): number {
  const total = used + Math.max(0, e.unacked[unitOf(name)]);
  return limit > 0 ? total / limit : Number.POSITIVE_INFINITY;
}

/** The first limit reached (usage ≥ 100%, this isolate's unreported usage included), unless overage is approved. */
function softLimitReached(e: Entry): LimitName | null {
  const view = e.view;
  if (!view || view.overage_approved) return null;
  for (const l of view.limits) if (shareOf(e, l.name, l.limit, l.used) >= 1) return l.name;
  return null;
}

/** After an admin change on this isolate: forget the copy (the next request syncs) and give the lease back. */
export function noteBudgetChanged(key: string, env: Env, ctx: WaitUntil): void {
  const e = entries.get(key);
  if (!e) return;
  e.view = null;
  e.denied = null;
  if (e.current) retire(e, e.current, env, ctx);
}

/** This isolate's copy of a budget, for tests and debugging. */
export function budgetView(key: string) {
  const e = entries.get(key);
  if (!e) return undefined;
  return {
    view: e.view,
    lease: e.current && { id: e.current.id, avail: { ...e.current.avail }, inflight: e.current.inflight, tight: e.current.tight },
    leases: e.leases.size,
    unacked: { ...e.unacked },
    pending: [...e.leases].reduce((n, l) => n + l.debits.length, 0),
  };
}

/** For tests: forget every budget copy and lease, as a fresh isolate would. */
export function resetBudgetView(): void {
  entries = new Map();
}

// ------------------------------------------------------------------ helpers

const lack = (need: number, avail: number) => (Number.isFinite(avail) ? Math.max(0, need - avail) : 0);
const finiteOrZero = (a: Amount): Amount => ({ tokens: Number.isFinite(a.tokens) ? a.tokens : 0, nano: Number.isFinite(a.nano) ? a.nano : 0 });

function background(ctx: WaitUntil, p: Promise<unknown>): void {
  try {
    ctx.waitUntil(p);
  } catch (err) {
    console.warn(`budget: waitUntil refused: ${message(err)}`);
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
