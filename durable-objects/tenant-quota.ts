import { DurableObject } from 'cloudflare:workers';
import { sendSignedWebhook, webhookSecret } from '../worker/protocol/rules/signed-webhook';
import { ALERT_EVENT, type Base, LIMIT_NAMES, type LimitName, type SoftLimitPolicy, type BudgetState, NANO_PER_USD, type QuotaSettings, type BudgetOverrides, type Amount, type MaybeAmount, type Debit, type SyncRequest, type SyncReply, type BudgetView, type AlertRecord, type BudgetDetails, type Denial } from '../worker/protocol/quota';

// One budget per tenant (or per tenant and feature): `QUOTAS.idFromName("<tenant>")` or
// `"<tenant>/<feature>"`. It is the authority on usage; edge isolates (worker/budget/lease.ts)
// lease slices of the headroom from it and spend them locally, so a request rarely waits on it.
//
// The guarantee: every token (and nano-dollar) an isolate admits a request for was leased first,
// and the object never leases beyond the hard limit (limit × hard_limit_ratio) minus what is used
// and what is already leased out. Usage can therefore never pass the hard limit, however many
// isolates admit requests at once, as long as a request's usage stays within its reservation
// (worker/budget/estimate.ts reserves an upper bound).
//
// - sync(): an isolate's one call. It carries the isolate's debits (settled requests, idempotent by
//   debit id), what a waiting request needs beyond the lease's free part, or a close (the unspent
//   rest goes back). The answer: what was added to the lease, a refusal, and the budget's state.
//   Three refusals: soft (the limit is reached under policy "block"); hard (settled usage leaves no
//   room for the request's worst case: waiting cannot help); reserved (settled usage leaves room,
//   but leases hold it: requests in flight and isolates' unspent slices), with the time until enough
//   of it is expected back (see expectedBack()).
// - Leases expire: an isolate admits on one for lease_ttl_ms (renewed while busy); its unspent part
//   is held lease_hold_ms longer (the longest a request admitted on it can run) and then returns.
// - Periods are UTC months and days; a new one starts with its usage, alerts and overage approval
//   reset. Alerts (webhooks, HMAC-signed) fire once per threshold per period, retried on an alarm.
//
// Every RPC method is synchronous (SQLite in a Durable Object is), so calls never interleave. Each
// takes an optional `now` (epoch ms) so tests can drive the period clock; the router never passes it.

const DEFAULT_SETTINGS: QuotaSettings = {
  limits: { monthly_tokens: null, monthly_usd: null, daily_tokens: null, daily_usd: null },
  soft_limit_policy: 'block',
  hard_limit_ratio: 1.2,
  warning_ratio: 0.8,
  alert_thresholds: [0.7, 0.9, 1],
  alert_webhook_url: null,
  alert_webhook_secret: null,
  alert_retry_base_ms: 1_000,
  alert_retry_max_ms: 300_000,
  alert_max_attempts: 10,
  lease_fraction: 0.1,
  lease_ttl_ms: 10_000,
  lease_hold_ms: 360_000,
};

/**
 * A hard refusal once usage is past the limit keeps the state hard_limited this long (usage alone
 * rarely lands exactly on the hard limit). Reservations never count: the state is settled usage.
 */
const HARD_STATE_MS = 60_000;
/**
 * Debit ids are kept this long for idempotency: a report is retried within seconds, or with the
 * isolate's next report. About 60 bytes per request: a million requests a day keep ~60 MB.
 */
const DEBIT_KEEP_MS = 86_400_000;
const PRUNE_EVERY_MS = 600_000;
const ALERTS_KEPT = 50;
const WEBHOOK_TIMEOUT_MS = 10_000;
const DELIVERIES_PER_ALARM = 20;

interface Usage {
  tokens: number;
  nano: number;
}

interface Core {
  tenant: string | null;
  feature: string | null;
  settings: QuotaSettings | null;
  overrides: BudgetOverrides;
  monthStart: number;
  dayStart: number;
  month: Usage;
  day: Usage;
  /** monthStart of the month an admin approved overage for (null: none). */
  overageFor: number | null;
  /** `<limit>@<threshold>` fired in the current periods. */
  alerts: string[];
  /** Effective limits the leases were granted under; a change revokes them. */
  limitsKey: string;
  limitsVersion: number;
  hardDeniedAt: number | null;
  version: number;
  updatedAt: number | null;
  /** An admin created this budget at run time (the config has none for the tenant). Absent in older rows: false. */
  adminCreated: boolean;
}

interface Lease {
  id: string;
  tokens: number | null;
  nano: number | null;
  useUntil: number;
  expiresAt: number;
  limitsVersion: number;
}

/** What the object knows of a lease beyond its row (memory only: after a restart, its expiry stands in). */
interface LeaseInfo {
  /** When its requests in flight are expected to have ended (the holder's estimate), or null if never told. */
  settleAt: number | null;
  /** Granted tight: its holder gives it back as soon as it is idle. */
  tight: boolean;
}

interface Dim {
  name: LimitName;
  unit: 'tokens' | 'nano';
  limit: number;
  hard: number;
  used: number;
}

type OutboxRow = Record<string, SqlStorageValue> & {
  id: string;
  url: string;
  secret: string | null;
  body: string;
  limit_name: string;
  threshold: number;
  attempts: number;
  next_at: number;
  status: string;
  created_at: number;
  last_error: string | null;
};

type LeaseRow = Record<string, SqlStorageValue> & {
  id: string;
  tokens: number | null;
  nano: number | null;
  use_until: number;
  expires_at: number;
  limits_version: number;
};

const initialCore = (): Core => ({
  tenant: null,
  feature: null,
  settings: null,
  overrides: {},
  monthStart: 0,
  dayStart: 0,
  month: { tokens: 0, nano: 0 },
  day: { tokens: 0, nano: 0 },
  overageFor: null,
  alerts: [],
  limitsKey: '',
  limitsVersion: 0,
  hardDeniedAt: null,
  version: 0,
  updatedAt: null,
  adminCreated: false,
});

export class TenantQuota extends DurableObject<Record<string, unknown>> {
  private readonly sql: SqlStorage;
  private core: Core = initialCore();
  private leases = new Map<string, Lease>();
  private leaseInfo = new Map<string, LeaseInfo>();
  private settingsJson = '';
  private lastPrune = 0;

  constructor(ctx: DurableObjectState, env: Record<string, unknown>) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec('CREATE TABLE IF NOT EXISTS state (k TEXT PRIMARY KEY, v TEXT NOT NULL)');
    this.sql.exec(`CREATE TABLE IF NOT EXISTS leases (
      id TEXT PRIMARY KEY, tokens INTEGER, nano INTEGER,
      use_until INTEGER NOT NULL, expires_at INTEGER NOT NULL, limits_version INTEGER NOT NULL
    )`);
    this.sql.exec('CREATE TABLE IF NOT EXISTS debits (id TEXT PRIMARY KEY, at INTEGER NOT NULL, tokens INTEGER NOT NULL, nano INTEGER NOT NULL)');
    this.sql.exec('CREATE INDEX IF NOT EXISTS debits_at ON debits (at)');
    this.sql.exec(`CREATE TABLE IF NOT EXISTS outbox (
      id TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT, body TEXT NOT NULL,
      limit_name TEXT NOT NULL, threshold REAL NOT NULL, attempts INTEGER NOT NULL, next_at INTEGER NOT NULL,
      status TEXT NOT NULL, created_at INTEGER NOT NULL, last_error TEXT
    )`);
    const row = this.sql.exec<{ v: string }>("SELECT v FROM state WHERE k = 'core'").toArray()[0];
    if (row) {
      try {
        this.core = { ...initialCore(), ...(JSON.parse(row.v) as Partial<Core>) };
        this.settingsJson = JSON.stringify(this.core.settings);
      } catch {
        // Unreadable: start afresh (usage is lost, which errs on the side of the tenant).
      }
    }
    for (const r of this.sql.exec<LeaseRow>('SELECT * FROM leases')) {
      this.leases.set(r.id, { id: r.id, tokens: r.tokens, nano: r.nano, useUntil: r.use_until, expiresAt: r.expires_at, limitsVersion: r.limits_version });
    }
  }

  // ------------------------------------------------------------------ RPC

  /** An isolate's report and lease request in one: debits first, then the lease (grow, renew or close). */
  sync(req: SyncRequest): SyncReply {
    const now = this.begin(req);
    const s = this.settings();
    if (typeof req.lease !== 'string' || req.lease.length === 0 || req.lease.length > 100) throw new TypeError('sync: lease must be an id of 1-100 characters');
    let lease = this.leases.get(req.lease) ?? null;
    if (lease && lease.limitsVersion !== this.core.limitsVersion) {
      this.dropLease(lease.id);
      lease = null;
    }
    this.applyDebits(req.debits, lease, now);
    if (lease) this.noteSettle(lease.id, req.settle_in_ms, now);
    let reply: Omit<SyncReply, 'view'>;
    if (!lease && (!req.create || req.close)) {
      reply = this.reply({ lost: !req.close, granted: zero(), denied: null, lease_ms: 0, tight: false });
    } else if (req.close) {
      this.dropLease(lease!.id);
      reply = this.reply({ lost: false, granted: zero(), denied: null, lease_ms: 0, tight: false });
    } else if (req.report_only && lease) {
      this.writeLease(lease);
      reply = this.reply({ lost: false, report_only: true, granted: zero(), denied: null, lease_ms: Math.max(0, lease.useUntil - now), tight: false });
    } else {
      if (!lease) {
        const dims = this.dims();
        lease = {
          id: req.lease,
          tokens: dims.some((d) => d.unit === 'tokens') ? 0 : null,
          nano: dims.some((d) => d.unit === 'nano') ? 0 : null,
          useUntil: now,
          expiresAt: now,
          limitsVersion: this.core.limitsVersion,
        };
        this.leases.set(lease.id, lease);
        this.noteSettle(lease.id, req.settle_in_ms, now);
      }
      const { granted, denied, tight } = this.grant(lease, req.need, req.hint, req.worst, now);
      lease.useUntil = now + s.lease_ttl_ms;
      lease.expiresAt = lease.useUntil + s.lease_hold_ms;
      this.leaseInfo.get(lease.id)!.tight = tight;
      this.writeLease(lease);
      reply = this.reply({ lost: false, granted, denied, lease_ms: s.lease_ttl_ms, tight });
    }
    this.checkAlerts(now);
    this.prune(now);
    this.save(now);
    return { ...reply, view: this.view(now) };
  }

  /** The budget in full (admin). */
  details(req: Base = {}): BudgetDetails {
    const now = this.begin(req);
    this.save(now);
    return this.describe(now);
  }

  /**
   * Admin changes to limits and policy (null removes a limit); a change of limits revokes outstanding
   * leases. `create`: the budget is made through the admin API (the config has none for the tenant).
   */
  update(req: Base & { patch: BudgetOverrides; create?: boolean }): BudgetDetails {
    this.begin(req);
    if (req.create === true) this.core.adminCreated = true;
    const o = { ...this.core.overrides };
    for (const name of LIMIT_NAMES) {
      if (!(name in req.patch)) continue;
      const v = req.patch[name];
      if (v === null || (typeof v === 'number' && Number.isFinite(v) && v >= 0)) o[name] = v;
    }
    if (req.patch.soft_limit_policy === 'block' || req.patch.soft_limit_policy === 'downgrade') o.soft_limit_policy = req.patch.soft_limit_policy;
    this.core.overrides = o;
    this.core.version++;
    const now = this.begin(req); // re-evaluates the limits (revoking leases if they changed)
    this.checkAlerts(now);
    this.save(now);
    return this.describe(now);
  }

  /** Forgets the admin changes: the TOML's limits and policy apply again. `remove`: a budget an admin created is gone. */
  clearOverrides(req: Base & { remove?: boolean } = {}): BudgetDetails {
    this.begin(req);
    this.core.overrides = {};
    if (req.remove === true) this.core.adminCreated = false;
    this.core.version++;
    const now = this.begin(req);
    this.checkAlerts(now);
    this.save(now);
    return this.describe(now);
  }

  /** Lifts the soft limit for the rest of this month (the hard limit still holds). */
  approveOverage(req: Base = {}): BudgetDetails {
    const now = this.begin(req);
    this.core.overageFor = this.core.monthStart;
    this.core.version++;
    this.save(now);
    return this.describe(now);
  }

  /** Whether an admin created this budget at run time: how isolates learn of budgets the config does not name. Reads only. */
  runtimeBudget(): { created: boolean } {
    return { created: this.core.adminCreated === true };
  }

  /** Delivers due alert webhooks; failures are retried with backoff, up to alert_max_attempts. */
  override async alarm(): Promise<void> {
    const rows = this.sql
      .exec<OutboxRow>("SELECT * FROM outbox WHERE status = 'pending' AND next_at <= ? ORDER BY next_at LIMIT ?", Date.now(), DELIVERIES_PER_ALARM)
      .toArray();
    for (const row of rows) await this.deliver(row);
    this.scheduleAlarm();
  }

  // ------------------------------------------------------------------ internals

  /** Takes the caller's scope and settings, then lets time pass: new periods, expired leases, changed limits. */
  private begin(req: Base): number {
    const now = typeof req.now === 'number' && Number.isFinite(req.now) ? req.now : Date.now();
    const c = this.core;
    if (req.scope && typeof req.scope.tenant === 'string') {
      c.tenant = req.scope.tenant;
      c.feature = req.scope.feature ?? null;
    }
    if (req.settings && typeof req.settings === 'object') {
      const json = JSON.stringify(req.settings);
      if (json !== this.settingsJson) {
        c.settings = { ...DEFAULT_SETTINGS, ...req.settings, limits: { ...DEFAULT_SETTINGS.limits, ...req.settings.limits } };
        this.settingsJson = json;
        c.version++;
      }
    }
    const month = monthStartOf(now);
    const day = dayStartOf(now);
    if (c.monthStart === 0) {
      c.monthStart = month;
      c.dayStart = day;
    }
    if (month > c.monthStart) {
      c.monthStart = month;
      c.month = { tokens: 0, nano: 0 };
      c.overageFor = null;
      c.alerts = c.alerts.filter((k) => !k.startsWith('monthly_'));
      c.hardDeniedAt = null;
      c.version++;
    }
    if (day > c.dayStart) {
      c.dayStart = day;
      c.day = { tokens: 0, nano: 0 };
      c.alerts = c.alerts.filter((k) => !k.startsWith('daily_'));
      c.hardDeniedAt = null;
      c.version++;
    }
    for (const lease of this.leases.values()) if (lease.expiresAt <= now) this.dropLease(lease.id);
    const key = JSON.stringify({ limits: this.effectiveLimits(), ratio: this.settings().hard_limit_ratio });
    if (key !== c.limitsKey) {
      // Leases were sized for other limits (or none): revoke them all. Isolates learn on their next sync.
      if (c.limitsKey !== '') for (const id of [...this.leases.keys()]) this.dropLease(id);
      c.limitsKey = key;
      c.limitsVersion++;
      c.hardDeniedAt = null;
      c.version++;
    }
    return now;
  }

  private settings(): QuotaSettings {
    return this.core.settings ?? DEFAULT_SETTINGS;
  }

  private effectiveLimits(): Record<LimitName, number | null> {
    const s = this.settings();
    const o = this.core.overrides;
    const out = {} as Record<LimitName, number | null>;
    for (const name of LIMIT_NAMES) out[name] = name in o ? (o[name] ?? null) : s.limits[name];
    return out;
  }

  private policy(): SoftLimitPolicy {
    return this.core.overrides.soft_limit_policy ?? this.settings().soft_limit_policy;
  }

  private approved(): boolean {
    return this.core.overageFor === this.core.monthStart;
  }

  /** The limits in force, in counting units, with their usage. */
  private dims(): Dim[] {
    const limits = this.effectiveLimits();
    const ratio = this.settings().hard_limit_ratio;
    const dims: Dim[] = [];
    for (const name of LIMIT_NAMES) {
      const value = limits[name];
      if (value === null) continue;
      const unit = name.endsWith('_usd') ? 'nano' : 'tokens';
      const limit = unit === 'nano' ? Math.round(value * NANO_PER_USD) : value;
      const usage = name.startsWith('monthly_') ? this.core.month : this.core.day;
      // The epsilon keeps 2750 × 1.2 at 3300, not 3299.9999999999995.
      dims.push({ name, unit, limit, hard: Math.floor(limit * ratio + 1e-6), used: usage[unit] });
    }
    return dims;
  }

  private outstanding(): Amount {
    let tokens = 0;
    let nano = 0;
    for (const l of this.leases.values()) {
      tokens += l.tokens ?? 0;
      nano += l.nano ?? 0;
    }
    return { tokens, nano };
  }

  /**
   * Grows a lease: by at least `need` (or a refusal), and up to the sizing rule: a lease may hold
   * lease_fraction of the headroom to the next boundary (the limit while below it, else the hard
   * limit), minus what it already holds. Never beyond the hard limit's headroom.
   */
  private grant(lease: Lease, need: Amount | undefined, hint: Amount | undefined, worst: Amount | undefined, now: number): Pick<SyncReply, 'granted' | 'denied' | 'tight'> {
    const s = this.settings();
    const dims = this.dims();
    const approved = this.approved();
    const out = this.outstanding();
    if (this.policy() === 'block' && !approved) {
      const reached = dims.find((d) => d.used >= d.limit);
      if (reached) return { granted: zero(), denied: { kind: 'soft', limit: reached.name }, tight: true };
    }
    const denied = this.refusal(lease, need, worst, dims, out, now);
    if (denied) return { granted: zero(), denied, tight: true };
    const granted: MaybeAmount = { tokens: null, nano: null };
    let tight = false;
    for (const unit of ['tokens', 'nano'] as const) {
      const mine = lease[unit];
      if (mine === null) continue; // unlimited in this unit
      const wanted = wantedOf(need, unit);
      const typical = Math.max(0, hint?.[unit] ?? 0);
      let add = Number.POSITIVE_INFINITY;
      for (const d of dims) {
        if (d.unit !== unit) continue;
        const free = d.hard - d.used - out[unit];
        const beforeSoft = !approved && d.used < d.limit;
        const headroom = beforeSoft ? Math.max(0, d.limit - d.used - out[unit]) : Math.max(0, free);
        const size = Math.floor(headroom * s.lease_fraction);
        if (size < 2 * Math.max(typical, wanted)) tight = true;
        add = Math.min(add, Math.min(free, Math.max(wanted, size - mine)));
      }
      granted[unit] = Number.isFinite(add) ? Math.max(0, add) : 0;
    }
    if (granted.tokens !== null) lease.tokens = (lease.tokens ?? 0) + granted.tokens;
    if (granted.nano !== null) lease.nano = (lease.nano ?? 0) + granted.nano;
    return { granted, denied: null, tight };
  }

  /**
   * Whether `need` cannot be granted, and why. hard (insufficient_quota) when settled usage plus
   * the request's whole worst case passes the hard limit: no wait helps. reserved otherwise: leases
   * hold the rest, and retry_after_ms says when enough of it is expected back (the latest over the
   * limits that refuse). A hard refusal anywhere wins.
   */
  private refusal(lease: Lease, need: Amount | undefined, worst: Amount | undefined, dims: Dim[], out: Amount, now: number): Denial | null {
    let reserved: Denial | null = null;
    for (const d of dims) {
      if (lease[d.unit] === null) continue;
      const wanted = wantedOf(need, d.unit);
      const free = d.hard - d.used - out[d.unit];
      if (wanted <= free) continue;
      const whole = Math.max(wanted, wantedOf(worst, d.unit));
      if (d.used + whole > d.hard) {
        // Past the limit, refusals say the budget is spent (state hard_limited); below it, only that request is too big.
        if (d.used >= d.limit) this.core.hardDeniedAt = now;
        return { kind: 'hard', limit: d.name };
      }
      // What the requesting lease already holds beyond its requests in flight was counted by the isolate (need is what it lacks).
      const ownFree = Math.max(0, whole - wanted);
      const wait = this.expectedBack(d.unit, wanted - Math.max(0, free), lease.id, ownFree, now);
      if (!reserved || (reserved.kind === 'reserved' && wait > reserved.retry_after_ms)) reserved = { kind: 'reserved', limit: d.name, retry_after_ms: wait };
    }
    return reserved;
  }

  /**
   * ms until leases are expected to give back `short` more (in `unit`). Each lease's holding comes
   * back when its holder said its requests in flight end (settle_in_ms, the isolate's estimate
   * from its requests' start and the budget's typical request lifetime), for the asking lease
   * itself at once as they settle, for a tight lease (returned when idle) then too, for any other
   * at the later of that and its use-by (its unspent rest returns when the holder stops admitting
   * on it); a lease whose holder never said returns at its use-by, or past that at its expiry.
   * Never later than a lease's expiry, when its rest returns whatever its holder does.
   */
  private expectedBack(unit: 'tokens' | 'nano', short: number, own: string, ownFree: number, now: number): number {
    const backs: { at: number; amount: number }[] = [];
    for (const l of this.leases.values()) {
      const held = (l[unit] ?? 0) - (l.id === own ? ownFree : 0);
      if (held <= 0) continue;
      const info = this.leaseInfo.get(l.id);
      const settled = info?.settleAt == null ? null : Math.max(now, info.settleAt);
      let at: number;
      if (l.id === own) at = settled ?? now;
      else if (settled !== null) at = info!.tight ? settled : Math.max(settled, l.useUntil);
      else at = l.useUntil > now ? l.useUntil : l.expiresAt;
      backs.push({ at: Math.min(at, l.expiresAt), amount: held });
    }
    backs.sort((a, b) => a.at - b.at);
    let got = 0;
    let last = now;
    for (const b of backs) {
      got += b.amount;
      last = b.at;
      if (got >= short) break;
    }
    return Math.max(0, last - now);
  }

  /** Keeps a holder's estimate of when its requests in flight end (bounded by how long a lease may be held). */
  private noteSettle(id: string, settleInMs: number | undefined, now: number): void {
    let info = this.leaseInfo.get(id);
    if (!info) this.leaseInfo.set(id, (info = { settleAt: null, tight: false }));
    if (typeof settleInMs === 'number' && Number.isFinite(settleInMs)) info.settleAt = now + Math.min(Math.max(0, settleInMs), this.settings().lease_hold_ms);
  }

  /** Counts the debits not counted before (by id), in one statement however many there are. */
  private applyDebits(debits: Debit[] | undefined, lease: Lease | null, now: number): void {
    if (!Array.isArray(debits) || debits.length === 0) return;
    const clean = debits
      .filter((d) => d && typeof d.id === 'string' && d.id.length > 0 && d.id.length <= 200)
      .map((d) => ({ id: d.id, tokens: count(d.tokens), nano: count(d.nano) }));
    if (clean.length === 0) return;
    // RETURNING lists only the rows inserted: ids already there (a replayed report) are skipped.
    // (`WHERE true` settles SQLite's INSERT … SELECT … ON CONFLICT parsing ambiguity.)
    const added = this.sql
      .exec<{ tokens: number; nano: number }>(
        `INSERT INTO debits (id, at, tokens, nano)
         SELECT json_extract(value, '$.id'), ?, json_extract(value, '$.tokens'), json_extract(value, '$.nano') FROM json_each(?) WHERE true
         ON CONFLICT (id) DO NOTHING RETURNING tokens, nano`,
        now,
        JSON.stringify(clean),
      )
      .toArray();
    if (added.length === 0) return;
    let tokens = 0;
    let nano = 0;
    for (const r of added) {
      tokens += r.tokens;
      nano += r.nano;
    }
    const c = this.core;
    c.month.tokens += tokens;
    c.month.nano += nano;
    c.day.tokens += tokens;
    c.day.nano += nano;
    c.version++;
    if (lease) {
      if (lease.tokens !== null) lease.tokens = Math.max(0, lease.tokens - tokens);
      if (lease.nano !== null) lease.nano = Math.max(0, lease.nano - nano);
    }
  }

  private checkAlerts(now: number): void {
    const s = this.settings();
    const thresholds = [...s.alert_thresholds].sort((a, b) => a - b);
    for (const d of this.dims()) {
      if (d.limit <= 0) continue;
      for (const t of thresholds) {
        const key = `${d.name}@${t}`;
        if (d.used < t * d.limit || this.core.alerts.includes(key)) continue;
        this.core.alerts.push(key);
        this.core.version++;
        if (s.alert_webhook_url) this.enqueueAlert(d, t, now, s);
      }
    }
  }

  private enqueueAlert(d: Dim, threshold: number, now: number, s: QuotaSettings): void {
    const id = `evt_${crypto.randomUUID().replaceAll('-', '')}`;
    const usd = d.unit === 'nano';
    const periodStart = d.name.startsWith('monthly_') ? this.core.monthStart : this.core.dayStart;
    const body = JSON.stringify({
      id,
      type: ALERT_EVENT,
      created_at: iso(now),
      tenant: this.core.tenant,
      feature: this.core.feature,
      limit: d.name,
      threshold,
      limit_value: usd ? d.limit / NANO_PER_USD : d.limit,
      used: usd ? d.used / NANO_PER_USD : d.used,
      share: round4(d.used / d.limit),
      period: d.name.startsWith('monthly_') ? 'month' : 'day',
      period_start: iso(periodStart),
      soft_limit_policy: this.policy(),
      overage_approved: this.approved(),
      runbook_url: s.alert_runbook_url,
    });
    // Delivery runs on the real clock (tests may drive `now` years ahead for periods).
    this.sql.exec(
      "INSERT INTO outbox (id, url, secret, body, limit_name, threshold, attempts, next_at, status, created_at, last_error) VALUES (?, ?, ?, ?, ?, ?, 0, ?, 'pending', ?, NULL)",
      id,
      s.alert_webhook_url,
      s.alert_webhook_secret,
      body,
      d.name,
      threshold,
      Date.now(),
      now,
    );
    this.scheduleAlarm();
  }

  private async deliver(row: OutboxRow): Promise<void> {
    const s = this.settings();
    const attempt = row.attempts + 1;
    try {
      await sendSignedWebhook({
        url: row.url,
        event: ALERT_EVENT,
        deliveryId: row.id,
        body: row.body,
        secret: webhookSecret(this.env, row.secret),
        attempt,
        userAgent: 'edge-router-budget-alerts',
        timeoutMs: WEBHOOK_TIMEOUT_MS,
      });
      this.sql.exec("UPDATE outbox SET status = 'delivered', attempts = ?, last_error = NULL WHERE id = ?", attempt, row.id);
    } catch (e) {
      const error = clip(e instanceof Error ? e.message : String(e));
      if (attempt >= s.alert_max_attempts) {
        console.error(JSON.stringify({ msg: 'budget alert dropped', tenant: this.core.tenant, id: row.id, attempts: attempt, error }));
        this.sql.exec("UPDATE outbox SET status = 'failed', attempts = ?, last_error = ? WHERE id = ?", attempt, error, row.id);
      } else {
        const backoff = Math.min(s.alert_retry_max_ms, s.alert_retry_base_ms * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
        this.sql.exec('UPDATE outbox SET attempts = ?, next_at = ?, last_error = ? WHERE id = ?', attempt, Date.now() + Math.round(backoff), error, row.id);
      }
    }
    this.sql.exec("DELETE FROM outbox WHERE status != 'pending' AND id NOT IN (SELECT id FROM outbox ORDER BY created_at DESC LIMIT ?)", ALERTS_KEPT);
  }

  private scheduleAlarm(): void {
    const row = this.sql.exec<{ next: number | null }>("SELECT MIN(next_at) AS next FROM outbox WHERE status = 'pending'").one();
    if (row.next !== null) void this.ctx.storage.setAlarm(row.next).catch(() => {});
  }

  private dropLease(id: string): void {
    this.leases.delete(id);
    this.leaseInfo.delete(id);
    this.sql.exec('DELETE FROM leases WHERE id = ?', id);
  }

  private writeLease(l: Lease): void {
    this.sql.exec(
      'INSERT OR REPLACE INTO leases (id, tokens, nano, use_until, expires_at, limits_version) VALUES (?, ?, ?, ?, ?, ?)',
      l.id,
      l.tokens,
      l.nano,
      l.useUntil,
      l.expiresAt,
      l.limitsVersion,
    );
  }

  private prune(now: number): void {
    if (now - this.lastPrune < PRUNE_EVERY_MS && now >= this.lastPrune) return;
    this.lastPrune = now;
    this.sql.exec('DELETE FROM debits WHERE at < ?', now - DEBIT_KEEP_MS);
  }

  private save(now: number): void {
    this.core.updatedAt = now;
    this.sql.exec("INSERT OR REPLACE INTO state (k, v) VALUES ('core', ?)", JSON.stringify(this.core));
  }

  private reply(r: Omit<SyncReply, 'free' | 'headroom' | 'view'>): Omit<SyncReply, 'view'> {
    const out = this.outstanding();
    const free: MaybeAmount = { tokens: null, nano: null };
    const headroom: MaybeAmount = { tokens: null, nano: null };
    for (const d of this.dims()) {
      free[d.unit] = Math.min(free[d.unit] ?? Number.POSITIVE_INFINITY, Math.max(0, d.hard - d.used - out[d.unit]));
      headroom[d.unit] = Math.min(headroom[d.unit] ?? Number.POSITIVE_INFINITY, Math.max(0, d.hard - d.used));
    }
    return { ...r, free, headroom };
  }

  /** From settled usage only (reservations are not usage), and a hard refusal in the last HARD_STATE_MS. */
  private state(now: number, dims: Dim[]): BudgetState {
    const s = this.settings();
    let max = 0;
    for (const d of dims) max = Math.max(max, d.limit > 0 ? d.used / d.limit : Number.POSITIVE_INFINITY);
    const hardRecently = this.core.hardDeniedAt !== null && now - this.core.hardDeniedAt < HARD_STATE_MS && now >= this.core.hardDeniedAt;
    if (max >= s.hard_limit_ratio || hardRecently) return 'hard_limited';
    if (max >= 1) return this.approved() ? 'warning' : 'soft_limited';
    if (max >= s.warning_ratio) return 'warning';
    return 'ok';
  }

  private view(now: number): BudgetView {
    const s = this.settings();
    const dims = this.dims();
    const nextMonth = nextMonthStart(this.core.monthStart);
    const nextDay = this.core.dayStart + 86_400_000;
    const daily = dims.some((d) => d.name.startsWith('daily_'));
    return {
      version: this.core.version,
      rollover_in_ms: Math.max(0, (daily ? Math.min(nextDay, nextMonth) : nextMonth) - now),
      policy: this.policy(),
      overage_approved: this.approved(),
      warning_ratio: s.warning_ratio,
      hard_limit_ratio: s.hard_limit_ratio,
      limits: dims.map((d) => ({ name: d.name, limit: d.limit, used: d.used })),
      state: this.state(now, dims),
    };
  }

  /** When every lease holding something is expected back (expectedBack() for all of it), as an ISO time. */
  private reservedUntil(now: number): string | null {
    let tokens = 0;
    let nano = 0;
    for (const l of this.leases.values()) {
      tokens += l.tokens ?? 0;
      nano += l.nano ?? 0;
    }
    if (tokens <= 0 && nano <= 0) return null;
    const wait = Math.max(tokens > 0 ? this.expectedBack('tokens', tokens, '', 0, now) : 0, nano > 0 ? this.expectedBack('nano', nano, '', 0, now) : 0);
    return iso(now + wait);
  }

  private describe(now: number): BudgetDetails {
    const s = this.settings();
    const limits = this.effectiveLimits();
    const dims = this.dims();
    const out = this.outstanding();
    const usage: Partial<Record<LimitName, number>> = {};
    for (const d of dims) usage[d.name] = d.limit > 0 ? round4(d.used / d.limit) : d.used > 0 ? 1e9 : 0;
    const recent = this.sql
      .exec<OutboxRow>('SELECT * FROM outbox ORDER BY created_at DESC LIMIT 20')
      .toArray()
      .map((r) => ({
        id: r.id,
        limit: r.limit_name,
        threshold: r.threshold,
        status: r.status as AlertRecord['status'],
        attempts: r.attempts,
        created_at: iso(r.created_at),
        last_error: r.last_error,
      }));
    return {
      object: 'budget',
      tenant: this.core.tenant,
      feature: this.core.feature,
      ...limits,
      soft_limit_policy: this.policy(),
      overrides: { ...this.core.overrides },
      used_tokens: this.core.month.tokens,
      used_usd: this.core.month.nano / NANO_PER_USD,
      reserved_tokens: out.tokens,
      reserved_usd: out.nano / NANO_PER_USD,
      reserved_until: this.reservedUntil(now),
      created_by_admin: this.core.adminCreated === true,
      period_start: iso(this.core.monthStart),
      daily: { used_tokens: this.core.day.tokens, used_usd: this.core.day.nano / NANO_PER_USD, period_start: iso(this.core.dayStart) },
      state: this.state(now, dims),
      overage_approved: this.approved(),
      hard_limit_ratio: s.hard_limit_ratio,
      warning_ratio: s.warning_ratio,
      usage,
      alerts: { thresholds: [...s.alert_thresholds], fired: [...this.core.alerts], recent },
      leases: this.leases.size,
      updated_at: this.core.updatedAt === null ? null : iso(this.core.updatedAt),
    };
  }
}

export function monthStartOf(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

export function dayStartOf(ms: number): number {
  return ms - (((ms % 86_400_000) + 86_400_000) % 86_400_000);
}

function nextMonthStart(monthStart: number): number {
  const d = new Date(monthStart);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

const zero = (): MaybeAmount => ({ tokens: 0, nano: 0 });
/** A requested amount in one unit, whole and non-negative (anything else: 0). */
const wantedOf = (a: Amount | undefined, unit: 'tokens' | 'nano') => {
  const v = a?.[unit];
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.ceil(v) : 0;
};
const count = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.round(v) : 0);
const iso = (ms: number) => new Date(ms).toISOString();
const round4 = (x: number) => Math.round(x * 10_000) / 10_000;
const clip = (s: string) => (s.length > 200 ? `${s.slice(0, 200)}…` : s);
