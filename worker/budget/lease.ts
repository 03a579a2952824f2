// This isolate's side of the budgets: leased slices of each tenant's headroom, spent locally.
//
// - A request reserves its worst case (estimate.ts) from the lease this isolate holds for its
//   budget: synchronous, no I/O. Only when the lease cannot cover it does the request wait for
//   one sync with the tenant's TenantQuota object, which grows the lease by at least that much or
//   refuses: 429 insufficient_quota when settled usage leaves no room for it below the hard limit;
//   429 budget_reserved with Retry-After when it would fit but requests in flight (and other
//   isolates' unspent slices) hold the room; soft limit under "block": 429 budget_exceeded.
//   Syncs of one budget run one at a time, in order; a grant is taken by the request that asked
//   for it before anyone else can see it.
// - With per_feature a request counts against two budgets, the tenant's and its feature's: it
//   reserves in both (the tenant's first) and settles both, so the tenant's limits hold whatever
//   feature names a client sends.
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
import { background, errorMessage, GIVE_UP_MS, type WaitUntil } from '../isolate/background';
import { registerIsolateState } from '../isolate/registry';
import type { CompiledConfig } from '../config/compiled';
import type { ModelConfig } from '../config/schema';
import type { Usage } from '../openai/usage';
import type { EndpointKind } from '../openai/schemas';
import { budgetReservedError, budgetUnavailable, hardLimitError, softLimitError } from './errors';
import { cheapestTier, costOf, worstCase, type WorstCase } from './estimate';
import { adminBudgetExists, resetAdminBudgets } from './runtime';
import { adminBudgetSettings, budgetScopes, checkFeatureAllowed, quotaStub, tenantBudget, type TenantBudgetConfig } from './settings';

type Env = Record<string, unknown>;
/** Tokens and nano-dollars; Infinity where no limit counts that unit. */
interface Amount {
  tokens: number;
  nano: number;
}

/** A sync holding a budget's turn longer than this is presumed lost (its request was cut short): the isolate kit's one give-up time. */
const TURN_GIVE_UP_MS = GIVE_UP_MS;
/** A report that fails is tried again this many times (backing off) from the same waitUntil; then it waits for the next one. */
const REPORT_RETRIES = 5;
/** Tries for one admission whose lease keeps being lost (revoked by a limit change). */
const MAX_ROUNDS = 4;
/** Debits per sync call; more go in the next one. */
const MAX_DEBITS_PER_SYNC = 500;
/** Background syncs of one budget start at most this often. */
const REFRESH_GAP_MS = 100;
/** A request's expected lifetime on a budget before this isolate has seen one end there (Retry-After's estimate). */
const FIRST_LIFETIME_MS = 1_000;
/** Weight of the latest request in the running mean of lifetimes. */
const LIFETIME_WEIGHT = 0.2;

interface Lease {
  id: string;
  /** The object has seen it (later syncs no longer ask to create it). */
  created: boolean;
  /** Free part: what requests may still reserve. */
  avail: Amount;
  /** Local clock: no new reservation after this. */
  useUntil: number;
  inflight: number;
  /** Requests in flight on it: hold id → local clock of admission. */
  since: Map<number, number>;
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
  /**
   * The object's last refusal: free is the pool's headroom past every lease, headroom the hard
   * limit's over settled usage alone; retryAt (reserved) when enough is expected back.
   */
  denied: { at: number; kind: 'soft' | 'hard' | 'reserved'; limit: LimitName; free: Amount; headroom: Amount; retryAt: number | null } | null;
  flushArmedAt: number | null;
  /** A flush at once was armed because report_max_batch debits piled up. */
  batchArmed: boolean;
  lastFlushAt: number;
  refreshingSince: number | null;
  lastRefreshAt: number;
  /** The last worst case reserved: a typical request, for the object's lease sizing. */
  hint: Amount;
  /** Running mean of how long this budget's requests live here (ms, admission to settle or release); null before one ended. */
  lifetime: number | null;
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
      lifetime: null,
    };
    entries.set(scope.key, e);
  }
  e.cfg = cfg;
  return e;
}

/**
 * The request's budget, or null when its tenant has none (or budgets are off): then nothing
 * else of this module runs for it. Throws 400 for an x-router-feature the tenant does not allow
 * (its `features` list) or, when budgets are per feature, a malformed one. A tenant without a
 * budget table in the config may have one an admin created (runtime.ts): its first request on
 * this isolate gets a handle that learns which when first awaited.
 */
export function budgetFor(config: CompiledConfig, tenantId: string, featureHeader: string | undefined, env: Env, ctx: WaitUntil): BudgetHandle | null {
  checkFeatureAllowed(config, tenantId, featureHeader);
  const cfg = tenantBudget(config, tenantId);
  if (cfg) return new BudgetHandle(config, entriesFor(cfg, featureHeader), env, ctx);
  const admin = adminBudgetSettings(config, tenantId);
  if (!admin) return null;
  const exists = adminBudgetExists(tenantId, env, ctx, admin.refreshMs);
  if (exists === false) return null;
  if (exists === true) return new BudgetHandle(config, entriesFor(admin, featureHeader), env, ctx);
  return new BudgetHandle(
    config,
    exists.then((yes) => (yes ? entriesFor(admin, featureHeader) : null)),
    env,
    ctx,
  );
}

/** The entries a request counts against: the tenant's, then (per_feature) its feature's. */
function entriesFor(cfg: TenantBudgetConfig, featureHeader: string | undefined): Entry[] {
  return budgetScopes(cfg, featureHeader).map((scope) => entryFor(scope, cfg));
}

/** One request's handle on its budgets: the tenant's, and with per_feature its feature's, nested. */
export class BudgetHandle {
  /** null: it turned out to have no budget (a tenant without one learnt of on first use). */
  private entries: Entry[] | null = null;
  private pending: Promise<void> | null = null;

  constructor(
    private readonly config: CompiledConfig,
    entries: Entry[] | Promise<Entry[] | null>,
    private readonly env: Env,
    private readonly ctx: WaitUntil,
  ) {
    if (Array.isArray(entries)) {
      this.entries = entries;
    } else {
      this.pending = entries.then((found) => {
        this.entries = found;
        this.pending = null;
      });
      this.pending.catch(() => {}); // surfaces in check()/admit(); never unhandled
    }
  }

  /** The most specific budget's key (the feature's with per_feature). */
  get key(): string {
    const e = this.entries;
    return e && e.length ? e[e.length - 1]!.key : '';
  }

  /**
   * The soft limit, before routing: throws 429 budget_exceeded under "block"; says whether to
   * downgrade under "downgrade". From memory, unless this isolate has no current copy of a
   * budget (first request, new period): then one sync first.
   */
  async check(): Promise<{ downgrade: boolean }> {
    const entries = await this.resolved();
    if (!entries) return { downgrade: false };
    await Promise.all(entries.map((e) => this.currentView(e)));
    let downgrade = false;
    for (const e of entries) {
      const soft = softLimitReached(e);
      if (!soft) continue;
      if (e.view!.policy === 'block') throw softLimitError(e.key, soft, this.warning());
      downgrade = true;
    }
    return { downgrade };
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
    const entries = await this.resolved();
    if (!entries) return new Reservation(this.config, [], { tokens: 0, nano: 0 }, this.env, this.ctx);
    const unique = [...new Set(models)];
    const cfg = entries[0]!.cfg;
    const worst = worstCase(this.config, endpoint, body, unique, { defaultMaxTokens: cfg.defaultMaxTokens, nonTextPartTokens: cfg.nonTextPartTokens });
    const reservation = await this.reserve(worst);
    if (worst.maxTokens !== null) body.max_tokens = worst.maxTokens;
    return reservation;
  }

  /**
   * Reserves the request's worst case in each of its budgets (the tenant's first), from this
   * isolate's leases; asks a budget's object only when its lease cannot cover it. Throws 429
   * (insufficient_quota, budget_reserved or budget_exceeded) or 503 (budget_unavailable: the
   * object could not be reached when it had to be), having given back what it took.
   */
  async reserve(worst: WorstCase): Promise<Reservation> {
    const need: Amount = { tokens: worst.tokens, nano: worst.nano };
    const entries = (await this.resolved()) ?? [];
    const holds: Hold[] = [];
    try {
      for (const e of entries) holds.push(await this.reserveIn(e, need));
    } catch (err) {
      for (const h of holds) endHold(h, null, this.env, this.ctx, false); // never ran: not a lifetime
      throw err;
    }
    return new Reservation(this.config, holds, need, this.env, this.ctx);
  }

  /**
   * x-router-budget-warning: each limit at or above warning_ratio, e.g. "monthly_tokens=83%"
   * (with per_feature, the higher share of the tenant's and the feature's).
   */
  warning(): string | null {
    const shares = new Map<LimitName, number>();
    for (const e of this.entries ?? []) {
      const view = e.view;
      if (!view) continue;
      for (const l of view.limits) {
        const share = shareOf(e, l.name, l.limit, l.used);
        if (share >= view.warning_ratio) shares.set(l.name, Math.max(shares.get(l.name) ?? 0, share));
      }
    }
    if (shares.size === 0) return null;
    return [...shares]
      .sort((a, b) => b[1] - a[1])
      .map(([name, share]) => `${name}=${Number.isFinite(share) ? Math.floor(share * 100) : 100}%`)
      .join(', ');
  }

  // ---------------------------------------------------------------- internals

  private async resolved(): Promise<Entry[] | null> {
    if (this.pending) await this.pending;
    return this.entries;
  }

  /** A current copy of the budget: one sync first when there is none or its period ended. */
  private async currentView(e: Entry): Promise<void> {
    const now = Date.now();
    if (!e.view || now >= e.staleAt) {
      const reply = await withTurn(e, async () => {
        if (e.view && Date.now() < e.staleAt) return true; // another request just did it
        return (await send(this.env, e, currentLease(e, Date.now(), this.env, this.ctx), {})) !== null;
      });
      if (!reply || !e.view) throw budgetUnavailable();
    } else if (now - e.viewAt >= e.cfg.refreshMs) {
      this.refresh(e, now);
    }
  }

  /** Reserves `need` in one budget: from the lease if it can, else after one sync (in turn). */
  private async reserveIn(e: Entry, need: Amount): Promise<Hold> {
    e.hint = need;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const taken = this.take(e, need, Date.now());
      if (taken) return taken;
      this.refuseIfKnown(e, need, Date.now());
      const got = await withTurn(e, async () => {
        const now = Date.now();
        const again = this.take(e, need, now);
        if (again) return again;
        this.refuseIfKnown(e, need, now);
        const lease = currentLease(e, now, this.env, this.ctx);
        const lacking = { tokens: lack(need.tokens, lease.avail.tokens), nano: lack(need.nano, lease.avail.nano) };
        const reply = await send(this.env, e, lease, { need: lacking, worst: need });
        if (!reply) throw budgetUnavailable();
        if (reply.denied) throw this.refusal(e, need, Date.now());
        // Nothing ran since the grant was applied: it is this request's (even if the lease was
        // retired meanwhile, as the last request on it ended).
        return this.takeFrom(e, lease, need, Date.now());
      });
      if (got) return got;
    }
    throw budgetUnavailable();
  }

  /** The 429 for the refusal the budget's object gave last (e.denied), for a request needing `need`. */
  private refusal(e: Entry, need: Amount, now: number) {
    const d = e.denied!;
    if (d.kind === 'soft') return softLimitError(e.key, d.limit, this.warning());
    if (d.kind === 'reserved') return budgetReservedError(e.key, d.limit, this.warning(), Math.max(0, (d.retryAt ?? now) - now));
    const unit = unitOf(d.limit);
    return hardLimitError(e.key, d.limit, this.warning(), { left: settledHeadroom(e, unit), need: need[unit] });
  }

  /**
   * Refuses without a hop when the object said lately that its headroom cannot cover this: hard
   * when settled usage (this isolate's unreported part included) leaves no room for it, reserved
   * (with the time the object gave) when leases hold the rest. Otherwise the object decides.
   */
  private refuseIfKnown(e: Entry, need: Amount, now: number): void {
    const d = e.denied;
    if (!d || now - d.at >= e.cfg.refreshMs || now < d.at) return;
    const lease = usable(e.current, now);
    const avail = lease?.avail ?? { tokens: 0, nano: 0 };
    if (need.tokens <= avail.tokens + d.free.tokens && need.nano <= avail.nano + d.free.nano) return;
    if (d.kind === 'soft') throw this.refusal(e, need, now);
    for (const unit of ['tokens', 'nano'] as const) {
      if (need[unit] > settledHeadroom(e, unit)) {
        const limit = unitOf(d.limit) === unit ? d.limit : (e.view?.limits.find((l) => unitOf(l.name) === unit)?.name ?? d.limit);
        throw hardLimitError(e.key, limit, this.warning(), { left: settledHeadroom(e, unit), need: need[unit] });
      }
    }
    if (d.kind === 'reserved' && d.retryAt !== null && d.retryAt > now) throw this.refusal(e, need, now);
  }

  /** Takes `need` from the current lease if it can cover it (retiring a lease past its use-by). */
  private take(e: Entry, need: Amount, now: number): Hold | null {
    const lease = e.current;
    if (!lease) return null;
    if (lease.retired || now >= lease.useUntil) {
      retire(e, lease, this.env, this.ctx);
      return null;
    }
    return this.takeFrom(e, lease, need, now);
  }

  private takeFrom(e: Entry, lease: Lease, need: Amount, now: number): Hold | null {
    if (lease.gone || now >= lease.useUntil || lease.avail.tokens < need.tokens || lease.avail.nano < need.nano) return null;
    lease.avail.tokens -= need.tokens;
    lease.avail.nano -= need.nano;
    lease.inflight++;
    const hold: Hold = { e, lease, id: ++holdIds, at: now, worst: need, done: false };
    lease.since.set(hold.id, now);
    this.renewSoon(e, lease, now);
    return hold;
  }

  /** Renews in the background: a lease nearing its use-by or running low, a view older than refresh_ms. */
  private renewSoon(e: Entry, lease: Lease, now: number): void {
    const ttl = e.cfg.settings.lease_ttl_ms;
    const low = !lease.tight && (lease.avail.tokens < 2 * e.hint.tokens || lease.avail.nano < 2 * e.hint.nano);
    if (lease.useUntil - now < ttl / 3 || low || now - e.viewAt >= e.cfg.refreshMs) this.refresh(e, now);
  }

  /** One background sync (renewal, top-up, fresh view), unless one is running. */
  private refresh(e: Entry, now: number): void {
    if (e.refreshingSince !== null && now - e.refreshingSince < TURN_GIVE_UP_MS) return;
    if (now - e.lastRefreshAt < REFRESH_GAP_MS && now >= e.lastRefreshAt) return;
    e.lastRefreshAt = now;
    const mine = (e.refreshingSince = now);
    const run = withTurn(e, async () => {
      await send(this.env, e, currentLease(e, Date.now(), this.env, this.ctx), {});
    })
      .catch((err) => console.warn(`budget ${e.key}: refresh failed: ${errorMessage(err)}`))
      .finally(() => {
        if (e.refreshingSince === mine) e.refreshingSince = null;
      });
    background(this.ctx, run, 'budget');
  }
}

/** One request's reservation in one budget. */
interface Hold {
  e: Entry;
  lease: Lease;
  id: number;
  /** Local clock of admission: how long requests on this budget live (Entry.lifetime). */
  at: number;
  worst: Amount;
  done: boolean;
}

let holdIds = 0;

/** One admitted request's hold on its leases (one per budget it counts against): settle it with the real usage, or release it. */
export class Reservation {
  /** The debit's id: unique per admitted request (x-request-id is the client's and may repeat). */
  readonly id = `dbt_${crypto.randomUUID().replaceAll('-', '')}`;
  private done = false;

  constructor(
    private readonly config: CompiledConfig,
    private readonly holds: readonly Hold[],
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
    if (this.holds.length === 0) return;
    const usage = s.usage;
    const actual: Amount = usage
      ? { tokens: usage.prompt_tokens + usage.completion_tokens, nano: costOf(this.config, s.candidate.model.id, usage) }
      : { ...this.worst };
    if (actual.tokens > this.worst.tokens || actual.nano > this.worst.nano) {
      console.warn(JSON.stringify({ msg: 'budget: usage above its reservation', budget: this.holds.map((h) => h.e.key), reserved: this.worst, actual }));
    }
    for (const h of this.holds) endHold(h, { id: this.id, ...actual }, this.env, this.ctx);
  };

  /** The request failed (or was never sent): everything goes back, nothing is debited. */
  release(): void {
    if (this.done) return;
    this.done = true;
    for (const h of this.holds) endHold(h, null, this.env, this.ctx);
  }

}

/** Ends one hold: the reservation goes back to its lease, the real usage (if any) becomes a debit. `ran`: counts in the lifetime mean. */
function endHold(h: Hold, debit: Debit | null, env: Env, ctx: WaitUntil, ran = true): void {
  if (h.done) return;
  h.done = true;
  const { lease, e } = h;
  const now = Date.now();
  const actual = debit ?? { tokens: 0, nano: 0 };
  lease.inflight--;
  lease.since.delete(h.id);
  lease.avail.tokens += h.worst.tokens - actual.tokens;
  lease.avail.nano += h.worst.nano - actual.nano;
  if (ran) {
    const lived = Math.max(0, now - h.at);
    e.lifetime = e.lifetime === null ? lived : e.lifetime + LIFETIME_WEIGHT * (lived - e.lifetime);
  }
  if (debit && (debit.tokens > 0 || debit.nano > 0)) {
    lease.debits.push({ id: debit.id, tokens: debit.tokens, nano: debit.nano });
    e.unacked.tokens += debit.tokens;
    e.unacked.nano += debit.nano;
    armFlush(env, e, ctx);
  }
  // A tight or lost lease goes back as soon as its last request ends.
  if (lease.inflight === 0 && (lease.tight || lease.gone || lease.retired)) retire(e, lease, env, ctx);
}

/** The lease to grow: the current one, or a new one. */
function currentLease(e: Entry, now: number, env: Env, ctx: WaitUntil): Lease {
  const lease = usable(e.current, now);
  if (lease) return lease;
  if (e.current) retire(e, e.current, env, ctx);
  const fresh: Lease = {
    id: `ls_${crypto.randomUUID().replaceAll('-', '')}`,
    created: false,
    avail: { tokens: 0, nano: 0 },
    useUntil: 0,
    inflight: 0,
    since: new Map(),
    debits: [],
    retired: false,
    gone: false,
    tight: false,
  };
  e.current = fresh;
  e.leases.add(fresh);
  return fresh;
}

/**
 * ms until the lease's requests in flight are expected to have ended: each started at its
 * admission and is expected to live as long as this budget's requests have lately lived on this
 * isolate (Entry.lifetime; FIRST_LIFETIME_MS before any has ended). 0 when none is in flight.
 */
function settleIn(e: Entry, lease: Lease, now: number): number {
  const expected = e.lifetime ?? FIRST_LIFETIME_MS;
  let end = now;
  for (const at of lease.since.values()) end = Math.max(end, at + expected);
  return Math.round(end - now);
}

/** What settled usage leaves below the hard limit, by the object's last word less this isolate's unreported usage. */
function settledHeadroom(e: Entry, unit: 'tokens' | 'nano'): number {
  const h = e.denied?.headroom[unit] ?? Number.POSITIVE_INFINITY;
  return Math.max(0, h - Math.max(0, e.unacked[unit]));
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
async function send(env: Env, e: Entry, lease: Lease, opts: { need?: Amount; worst?: Amount; close?: boolean }): Promise<SyncReply | null> {
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
    settle_in_ms: settleIn(e, lease, Date.now()),
    ...(opts.need ? { need: finiteOrZero(opts.need) } : {}),
    ...(opts.worst ? { worst: finiteOrZero(opts.worst) } : {}),
    ...(opts.close ? { close: true } : {}),
    ...(reportOnly ? { report_only: true } : {}),
  };
  let reply: SyncReply;
  try {
    reply = await quotaStub(env, e.key).sync(msg);
  } catch (err) {
    // Not counted, or counted without our hearing of it: either way the debits go again (ids dedupe).
    lease.debits.unshift(...debits);
    console.warn(`budget ${e.key}: sync failed: ${errorMessage(err)}`);
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
    const unlimited = (v: number | null | undefined) => v ?? Number.POSITIVE_INFINITY;
    e.denied = {
      at: now,
      kind: reply.denied.kind,
      limit: reply.denied.limit,
      // A soft refusal holds whatever the request needs.
      free: reply.denied.kind === 'soft' ? { tokens: 0, nano: 0 } : { tokens: unlimited(reply.free.tokens), nano: unlimited(reply.free.nano) },
      // An object without `headroom` (older code) refused as hard: count its `free` as the headroom.
      headroom: reply.headroom
        ? { tokens: unlimited(reply.headroom.tokens), nano: unlimited(reply.headroom.nano) }
        : { tokens: unlimited(reply.free.tokens), nano: unlimited(reply.free.nano) },
      retryAt: reply.denied.kind === 'reserved' ? now + Math.max(0, reply.denied.retry_after_ms) : null,
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
    .catch((err) => console.warn(`budget ${e.key}: report failed: ${errorMessage(err)}`));
  background(ctx, run, 'budget');
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

/** For tests: forget every budget copy and lease, as a fresh isolate would (also through resetIsolate()). */
export function resetBudgetView(): void {
  entries = new Map();
  resetAdminBudgets();
}
registerIsolateState('budget', resetBudgetView);

// ------------------------------------------------------------------ helpers

const lack = (need: number, avail: number) => (Number.isFinite(avail) ? Math.max(0, need - avail) : 0);
const finiteOrZero = (a: Amount): Amount => ({ tokens: Number.isFinite(a.tokens) ? a.tokens : 0, nano: Number.isFinite(a.nano) ? a.nano : 0 });

