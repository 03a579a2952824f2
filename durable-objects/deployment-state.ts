import { DurableObject } from 'cloudflare:workers';
import type { DeploymentVersion } from '../worker/config/deployments';
import type {
  Arm,
  DeploymentDef,
  DeploymentRefusal,
  DeploymentView,
  FeedbackReport,
  Gate,
  GateSummary,
  HistoryEntry,
  OutcomeReport,
  RolloutMode,
  RolloutState,
  RolloutView,
  SplitSnapshot,
  StartRollout,
  VersionView,
} from '../worker/protocol/deployments';
import { abTest, compareArms, summarize, type ArmSample, type Comparison, type FeedbackSample } from '../worker/protocol/rules/rollout-stats';
import { sendSignedWebhook, webhookSecret } from '../worker/protocol/rules/signed-webhook';

// One deployment's run-time state (idFromName(deployment name)): versions added at run time, the
// stable version and the previous one (the blue-green rollback target), rollouts and A/B tests,
// gate results, and the history of every change (who, when, why). Isolates keep a copy of the
// split (snapshot()) and report each rollout request's outcome in batches (report()); the alarm
// compares the arms while a rollout runs and advances, promotes or rolls it back on its own.
//
// Samples are kept per request (SQLite rows) for the running rollout only: the comparison needs
// exact p95s over one step's window, and a step's window is small (thousands of rows). They are
// deleted when the rollout ends; its final numbers stay with the rollout.

const HISTORY_LIMIT = 200;
const RECENT_ROLLOUTS = 20;
/** Samples kept per arm and step at most (the newest): bounds the object's work per evaluation. */
const MAX_SAMPLES_PER_ARM = 20_000;
/** Tries of a rollback alert per webhook (1 s, then 2 s apart). */
const ANNOUNCE_ATTEMPTS = 3;

interface RolloutRow extends Record<string, SqlStorageValue> {
  id: string;
  mode: string;
  stable: string;
  candidate: string;
  state: string;
  step: number;
  steps: string;
  share: number;
  step_started_at: number;
  started_at: number;
  ended_at: number | null;
  reason: string | null;
  forced: number;
  policy: string;
  final: string | null;
}

/** What a rollout runs with: its steps and the deployment's policy when it started (overridable at start). */
interface RolloutPolicy {
  dwell_seconds: number;
  min_requests: number;
  metric: string;
}

export class DeploymentState extends DurableObject<Record<string, unknown>> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Record<string, unknown>) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS versions (name TEXT PRIMARY KEY, spec TEXT NOT NULL, created_at INTEGER NOT NULL, actor TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS history (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
        version TEXT, rollout TEXT, reason TEXT, detail TEXT);
      CREATE TABLE IF NOT EXISTS rollouts (id TEXT PRIMARY KEY, mode TEXT NOT NULL, stable TEXT NOT NULL, candidate TEXT NOT NULL, state TEXT NOT NULL,
        step INTEGER NOT NULL, steps TEXT NOT NULL, share REAL NOT NULL, step_started_at INTEGER NOT NULL, started_at INTEGER NOT NULL,
        ended_at INTEGER, reason TEXT, forced INTEGER NOT NULL, policy TEXT NOT NULL, final TEXT);
      CREATE TABLE IF NOT EXISTS gates (id INTEGER PRIMARY KEY AUTOINCREMENT, version TEXT NOT NULL, passed INTEGER NOT NULL, at INTEGER NOT NULL,
        actor TEXT NOT NULL, forced INTEGER NOT NULL, summary TEXT NOT NULL, stable TEXT, golden TEXT);
      CREATE TABLE IF NOT EXISTS samples (request_id TEXT PRIMARY KEY, rollout TEXT NOT NULL, step INTEGER NOT NULL, arm TEXT NOT NULL, at INTEGER NOT NULL,
        error INTEGER NOT NULL, latency REAL NOT NULL, ttft REAL, truncated INTEGER NOT NULL, refused INTEGER NOT NULL, output_tokens INTEGER);
      CREATE INDEX IF NOT EXISTS samples_window ON samples (rollout, step, arm, at);
      CREATE TABLE IF NOT EXISTS feedback (request_id TEXT NOT NULL, metric TEXT NOT NULL, rollout TEXT NOT NULL, arm TEXT NOT NULL, at INTEGER NOT NULL,
        score REAL NOT NULL, PRIMARY KEY (request_id, metric));`);
  }

  // ---- the isolates' side ----

  /** The split the isolates assign requests by. */
  snapshot(def: DeploymentDef): SplitSnapshot {
    this.remember(def);
    const r = this.activeRollout();
    const serving = this.serving(def);
    return {
      epoch: this.epoch(),
      serving,
      runtimeVersions: Object.fromEntries(this.runtimeVersions().map((v) => [v.name, v.spec])),
      rollout: r && r.mode !== 'blue-green' && r.share > 0 ? { id: r.id, mode: r.mode as RolloutMode, stable: r.stable, candidate: r.candidate, share: r.share } : null,
    };
  }

  /** A batch of finished requests of the running rollout; answers the split (the reporter's copy is refreshed by it). */
  async report(def: DeploymentDef, batch: OutcomeReport[]): Promise<SplitSnapshot> {
    this.remember(def);
    const r = this.activeRollout();
    if (r) {
      const insert = `INSERT OR IGNORE INTO samples (request_id, rollout, step, arm, at, error, latency, ttft, truncated, refused, output_tokens) VALUES (?,?,?,?,?,?,?,?,?,?,?)`;
      for (const o of batch) {
        if (o.rolloutId !== r.id || (o.arm !== 'stable' && o.arm !== 'candidate')) continue; // a report from before a change
        const s = o.sample;
        this.sql.exec(insert, o.requestId, r.id, r.step, o.arm, o.at, s.error ? 1 : 0, s.latencyMs, s.ttftMs, s.truncated ? 1 : 0, s.refused ? 1 : 0, s.outputTokens);
      }
      // A rollback waits for no alarm: news that trips it is acted on as it arrives (evaluate is cheap when nothing is due).
      await this.evaluate(def, Date.now(), false);
    }
    return this.snapshot(def);
  }

  /**
   * Feedback (POST /v1/feedback) on a request of this deployment. It counts for the running rollout
   * when the request was one of its arms: its sample says which, else (its outcome not reported
   * yet) the version it ran on and its time do. A second one for the same request and metric
   * replaces the first. Answers whether it counted.
   */
  feedback(def: DeploymentDef, f: FeedbackReport): { counted: boolean } {
    this.remember(def);
    const r = this.activeRollout();
    if (!r || r.mode === 'blue-green') return { counted: false };
    const sample = this.sql.exec<{ rollout: string; arm: string }>('SELECT rollout, arm FROM samples WHERE request_id = ?', f.requestId).toArray()[0];
    let arm: Arm | null = sample && sample.rollout === r.id ? (sample.arm as Arm) : null;
    if (!arm && f.at >= r.started_at) arm = f.version === r.candidate ? 'candidate' : f.version === r.stable ? 'stable' : null;
    if (!arm) return { counted: false };
    this.sql.exec('INSERT OR REPLACE INTO feedback (request_id, metric, rollout, arm, at, score) VALUES (?,?,?,?,?,?)', f.requestId, f.metric ?? '', r.id, arm, Date.now(), f.score);
    return { counted: true };
  }

  // ---- the operators' side ----

  describe(def: DeploymentDef): DeploymentView {
    this.remember(def);
    const gates = this.latestGates();
    const versions: VersionView[] = [
      ...Object.entries(def.config.versions).map(([name, v]) => ({ ...v, name, source: 'config' as const, gate: gates.get(name) ?? null })),
      ...this.runtimeVersions()
        .filter((v) => !def.config.versions[v.name])
        .map((v) => ({ ...v.spec, name: v.name, source: 'runtime' as const, gate: gates.get(v.name) ?? null })),
    ];
    const active = this.activeRollout();
    return {
      name: def.name,
      description: def.config.description ?? null,
      serving: this.serving(def),
      previous: this.meta('previous'),
      sticky: def.config.sticky,
      gate: def.config.gate,
      versions,
      rollout: active ? this.view(def, active) : null,
      rollouts: this.sql
        .exec<RolloutRow>('SELECT * FROM rollouts ORDER BY started_at DESC LIMIT ?', RECENT_ROLLOUTS)
        .toArray()
        .map((r) => this.view(def, r)),
      history: this.sql
        .exec('SELECT * FROM history ORDER BY seq DESC LIMIT ?', HISTORY_LIMIT)
        .toArray()
        .map((h) => ({
          at: Number(h.at),
          actor: String(h.actor),
          action: String(h.action),
          version: h.version === null ? null : String(h.version),
          rollout: h.rollout === null ? null : String(h.rollout),
          reason: h.reason === null ? null : String(h.reason),
          detail: h.detail === null ? null : (JSON.parse(String(h.detail)) as Record<string, unknown>),
        })),
    };
  }

  /** Adds a version at run time (the Worker checked its model against the config). */
  addVersion(def: DeploymentDef, name: string, spec: DeploymentVersion, actor: string, reason: string | null): VersionView | DeploymentRefusal {
    this.remember(def);
    if (def.config.versions[name] || this.runtimeVersions().some((v) => v.name === name)) {
      return refusal(409, 'version_exists', `Version "${name}" of deployment "${def.name}" already exists; versions are immutable, add a new one.`);
    }
    this.sql.exec('INSERT INTO versions (name, spec, created_at, actor) VALUES (?,?,?,?)', name, JSON.stringify(spec), Date.now(), actor);
    this.log(actor, 'version_added', name, null, reason, { model: spec.model, prompt_version: spec.prompt?.version ?? null });
    this.bump();
    return { ...spec, name, source: 'runtime', gate: null };
  }

  recordGate(def: DeploymentDef, g: { version: string; passed: boolean; summary: GateSummary; stable: GateSummary | null; golden: string | null }, actor: string): Gate | DeploymentRefusal {
    this.remember(def);
    if (!this.versionExists(def, g.version)) return refusal(404, 'version_not_found', `Deployment "${def.name}" has no version "${g.version}".`);
    const at = Date.now();
    const id = this.sql
      .exec<{ id: number }>(
        'INSERT INTO gates (version, passed, at, actor, forced, summary, stable, golden) VALUES (?,?,?,?,0,?,?,?) RETURNING id',
        g.version,
        g.passed ? 1 : 0,
        at,
        actor,
        JSON.stringify(g.summary),
        g.stable ? JSON.stringify(g.stable) : null,
        g.golden,
      )
      .one().id;
    this.log(actor, g.passed ? 'gate_passed' : 'gate_failed', g.version, null, null, { cases: g.summary.cases, mean_similarity: g.summary.mean_similarity, golden: g.golden });
    return { id, version: g.version, passed: g.passed, at, actor, forced: false, summary: g.summary, stable: g.stable, golden: g.golden };
  }

  async startRollout(def: DeploymentDef, input: StartRollout, actor: string): Promise<RolloutView | DeploymentRefusal> {
    this.remember(def);
    const serving = this.serving(def);
    if (!this.versionExists(def, input.version)) return refusal(404, 'version_not_found', `Deployment "${def.name}" has no version "${input.version}".`);
    if (input.version === serving) return refusal(409, 'already_serving', `Version "${input.version}" is already the one serving "${def.name}".`);
    const active = this.activeRollout();
    if (active) return refusal(409, 'rollout_in_progress', `Rollout ${active.id} (${active.candidate}, ${active.state}) is still in progress on "${def.name}": promote or roll it back first.`);
    const gate = this.gateCheck(def, input.version, input.force, input.reason);
    if (gate) return gate;

    const now = Date.now();
    const id = `ro_${now.toString(36)}${crypto.randomUUID().slice(0, 8)}`;
    const cfg = def.config;
    const steps = input.mode === 'canary' ? (input.steps ?? cfg.rollout.steps) : input.mode === 'ab' ? [input.share ?? cfg.ab.share] : [100];
    const policy: RolloutPolicy = {
      dwell_seconds: input.dwell_seconds ?? cfg.rollout.dwell_seconds,
      min_requests: input.min_requests ?? cfg.rollout.min_requests,
      metric: input.metric ?? cfg.ab.metric,
    };
    const forced = input.force === true && !this.hasPassingGate(input.version) && cfg.gate.required;
    this.sql.exec(
      `INSERT INTO rollouts (id, mode, stable, candidate, state, step, steps, share, step_started_at, started_at, ended_at, reason, forced, policy, final)
       VALUES (?,?,?,?,?,0,?,?,?,?,NULL,?,?,?,NULL)`,
      id,
      input.mode,
      serving,
      input.version,
      'running',
      JSON.stringify(steps),
      steps[0]!,
      now,
      now,
      input.reason ?? null,
      forced ? 1 : 0,
      JSON.stringify(policy),
    );
    this.log(actor, `rollout_started`, input.version, id, input.reason ?? null, { mode: input.mode, stable: serving, steps, forced });
    if (input.mode === 'blue-green') {
      // An instant full switch: the old version stays as the one-call rollback target.
      this.finish(this.rollout(id)!, 'promoted', actor, input.reason ?? 'blue-green switch', now);
    } else {
      this.bump();
      await this.ctx.storage.setAlarm(now + def.config.rollout.evaluate_interval_ms);
    }
    return this.view(def, this.rollout(id)!);
  }

  rolloutView(def: DeploymentDef, id: string): RolloutView | DeploymentRefusal {
    this.remember(def);
    const r = this.rollout(id);
    return r ? this.view(def, r) : refusal(404, 'rollout_not_found', `Deployment "${def.name}" has no rollout "${id}".`);
  }

  async act(def: DeploymentDef, id: string, action: 'promote' | 'pause' | 'resume' | 'rollback', actor: string, reason: string | null, force: boolean): Promise<RolloutView | DeploymentRefusal> {
    this.remember(def);
    const r = this.rollout(id);
    if (!r) return refusal(404, 'rollout_not_found', `Deployment "${def.name}" has no rollout "${id}".`);
    const now = Date.now();
    const live = r.state === 'running' || r.state === 'paused';
    if (action === 'rollback') {
      if (live) this.finish(r, 'rolled_back', actor, reason ?? 'rolled back by an operator', now);
      else if (r.state === 'promoted' && this.serving(def) === r.candidate) {
        // The one-call rollback of a promotion (blue-green or canary): the version before it serves again.
        this.setServing(r.stable);
        this.meta('previous', r.candidate);
        this.sql.exec("UPDATE rollouts SET state = 'rolled_back', ended_at = ?, reason = ? WHERE id = ?", now, reason ?? 'rolled back by an operator', r.id);
        this.log(actor, 'rolled_back', r.stable, r.id, reason, { from: r.candidate, to: r.stable });
        this.bump();
      } else return refusal(409, 'rollout_not_live', `Rollout ${id} is ${r.state}; only a running or paused rollout, or the promotion now serving, can be rolled back.`);
    } else if (action === 'promote') {
      if (!live) return refusal(409, 'rollout_not_live', `Rollout ${id} is ${r.state}.`);
      const gate = this.gateCheck(def, r.candidate, force, reason ?? undefined);
      if (gate) return gate;
      const forced = def.config.gate.required && !this.hasPassingGate(r.candidate);
      this.finish(r, 'promoted', actor, reason ?? 'promoted by an operator', now, forced);
    } else if (action === 'pause') {
      if (r.state !== 'running') return refusal(409, 'rollout_not_running', `Rollout ${id} is ${r.state}.`);
      this.sql.exec("UPDATE rollouts SET state = 'paused' WHERE id = ?", id);
      this.log(actor, 'rollout_paused', r.candidate, id, reason, { share: r.share });
    } else {
      if (r.state !== 'paused') return refusal(409, 'rollout_not_paused', `Rollout ${id} is ${r.state}.`);
      this.sql.exec("UPDATE rollouts SET state = 'running', step_started_at = ? WHERE id = ?", now, id);
      this.log(actor, 'rollout_resumed', r.candidate, id, reason, { share: r.share });
      await this.ctx.storage.setAlarm(now + def.config.rollout.evaluate_interval_ms);
    }
    return this.view(def, this.rollout(id)!);
  }

  override async alarm(): Promise<void> {
    const stored = this.meta('def');
    if (!stored) return;
    const def = JSON.parse(stored) as DeploymentDef;
    await this.evaluate(def, Date.now(), true);
    if (this.activeRollout()) await this.ctx.storage.setAlarm(Date.now() + def.config.rollout.evaluate_interval_ms);
  }

  // ---- rollout rules ----

  /**
   * Compares the arms of the running rollout (canary: the current step's window; A/B: the whole
   * test) and acts: a candidate worse on any signal is rolled back at once (paused or not); a
   * canary step that has had its dwell time and its requests, and is healthy, moves on (the last
   * step promotes). `scheduled`: the alarm's run (a report's run acts only on news that trips it
   * or a due step, and never more often than evaluate_interval_ms).
   */
  private async evaluate(def: DeploymentDef, now: number, scheduled: boolean): Promise<void> {
    const r = this.activeRollout();
    if (!r || r.mode === 'blue-green') return;
    const last = Number(this.meta('evaluated_at') ?? 0);
    if (!scheduled && now - last < Math.min(1_000, def.config.rollout.evaluate_interval_ms)) return;
    this.meta('evaluated_at', String(now));
    // Storage stays bounded however long a step or an A/B test runs: only the newest samples per arm are read anyway.
    for (const arm of ['stable', 'candidate']) {
      this.sql.exec(
        'DELETE FROM samples WHERE rollout = ? AND arm = ? AND at < (SELECT at FROM samples WHERE rollout = ? AND arm = ? ORDER BY at DESC LIMIT 1 OFFSET ?)',
        r.id, arm, r.id, arm, MAX_SAMPLES_PER_ARM,
      );
    }
    const { comparison } = this.compare(def, r);
    if (comparison.verdict === 'rollback') {
      this.finish(r, 'rolled_back', 'router', `automatic rollback: ${comparison.reasons.join('; ')}`, now);
      // Not awaited: a report's reply (the isolate's new split) must not wait for a webhook; the object stays up while it is sent.
      this.ctx.waitUntil(this.announce(def, r, comparison));
      return;
    }
    if (r.mode !== 'canary' || r.state !== 'running') return;
    const policy = JSON.parse(r.policy) as RolloutPolicy;
    const arms = this.arms(r);
    const dwellOver = now - r.step_started_at >= policy.dwell_seconds * 1000;
    if (!dwellOver || arms.candidate.requests < policy.min_requests || comparison.verdict !== 'healthy') return;
    const steps = JSON.parse(r.steps) as number[];
    const next = r.step + 1;
    if (next >= steps.length || steps[next]! >= 100) {
      this.finish(r, 'promoted', 'router', `every step healthy (last ${r.share}%)`, now);
      return;
    }
    this.sql.exec('UPDATE rollouts SET step = ?, share = ?, step_started_at = ? WHERE id = ?', next, steps[next]!, now, r.id);
    this.sql.exec('DELETE FROM samples WHERE rollout = ? AND step < ?', r.id, next);
    this.log('router', 'rollout_advanced', r.candidate, r.id, null, { from: r.share, to: steps[next]!, stable: arms.stable, candidate: arms.candidate });
    this.bump();
  }

  /** Ends a live rollout: promoted (the candidate serves, the stable one is kept as `previous`) or rolled back. */
  private finish(r: RolloutRow, state: Extract<RolloutState, 'promoted' | 'rolled_back'>, actor: string, reason: string, now: number, forced = false): void {
    const def = JSON.parse(this.meta('def')!) as DeploymentDef;
    const final = r.mode === 'blue-green' ? null : { ...this.compare(def, r), arms: this.arms(r) };
    this.sql.exec('UPDATE rollouts SET state = ?, ended_at = ?, reason = ?, share = ?, final = ? WHERE id = ?', state, now, reason, state === 'promoted' ? 100 : 0, final ? JSON.stringify(final) : null, r.id);
    if (state === 'promoted') {
      this.meta('previous', this.serving(def));
      this.setServing(r.candidate);
    }
    this.sql.exec('DELETE FROM samples WHERE rollout = ?', r.id);
    this.sql.exec('DELETE FROM feedback WHERE rollout = ?', r.id);
    this.log(actor, state, r.candidate, r.id, reason, {
      ...(final ? { comparison: final.comparison, stable: final.arms.stable, candidate: final.arms.candidate } : { stable: r.stable }),
      ...(forced ? { forced: true } : {}),
    });
    this.bump();
  }

  private compare(def: DeploymentDef, r: RolloutRow): { comparison: Comparison } {
    const arms = this.arms(r);
    const p = def.config.rollout;
    let comparison = compareArms(arms.stable, arms.candidate, p.thresholds, { minSamples: p.min_samples, confidence: p.confidence });
    comparison = withLatencyFloor(comparison, p.thresholds.latency_floor_ms);
    if (r.mode === 'ab') {
      // An A/B test measures quality differences; only errors and latency are guardrails that stop it.
      const checks = comparison.checks.filter((c) => c.signal === 'error_rate' || c.signal === 'p95_latency' || c.signal === 'p95_ttft');
      const bad = checks.filter((c) => c.worse && c.significant);
      comparison = { ...comparison, checks, verdict: comparison.verdict === 'insufficient' ? 'insufficient' : bad.length ? 'rollback' : 'healthy', reasons: comparison.reasons.filter((s) => /error|latency|ttft/i.test(s)) };
    }
    return { comparison };
  }

  /** The arms over the current window: the current step (canary), the whole test (A/B). */
  private arms(r: RolloutRow) {
    const one = (arm: Arm) => {
      const rows = this.sql
        .exec(
          `SELECT error, latency, ttft, truncated, refused, output_tokens FROM samples WHERE rollout = ? AND arm = ?${r.mode === 'ab' ? '' : ' AND step = ?'} ORDER BY at DESC LIMIT ?`,
          ...(r.mode === 'ab' ? [r.id, arm, MAX_SAMPLES_PER_ARM] : [r.id, arm, r.step, MAX_SAMPLES_PER_ARM]),
        )
        .toArray();
      const samples: ArmSample[] = rows.map((s) => ({
        error: s.error === 1,
        latencyMs: Number(s.latency),
        ttftMs: s.ttft === null ? null : Number(s.ttft),
        truncated: s.truncated === 1,
        refused: s.refused === 1,
        outputTokens: s.output_tokens === null ? null : Number(s.output_tokens),
      }));
      const feedback: FeedbackSample[] = this.sql
        .exec('SELECT score, metric FROM feedback WHERE rollout = ? AND arm = ?', r.id, arm)
        .toArray()
        .map((f) => (f.metric === '' ? { score: Number(f.score) } : { score: Number(f.score), metric: String(f.metric) }));
      return summarize(samples, feedback);
    };
    return { stable: one('stable'), candidate: one('candidate') };
  }

  private view(def: DeploymentDef, r: RolloutRow): RolloutView {
    const live = r.state === 'running' || r.state === 'paused';
    const final = r.final ? (JSON.parse(r.final) as { comparison: Comparison; arms: RolloutView['arms'] }) : null;
    const arms = live ? this.arms(r) : (final?.arms ?? { stable: summarize([], []), candidate: summarize([], []) });
    const comparison = live && r.mode !== 'blue-green' ? this.compare(def, r).comparison : (final?.comparison ?? null);
    const policy = JSON.parse(r.policy) as RolloutPolicy;
    const steps = JSON.parse(r.steps) as number[];
    const ab = r.mode === 'ab' ? abTest(arms.stable, arms.candidate, { metric: policy.metric, alpha: def.config.ab.alpha, test: def.config.ab.test }) : null;
    const next =
      r.mode === 'canary' && live
        ? {
            share: r.step + 1 < steps.length ? steps[r.step + 1]! : 100,
            wait_seconds: Math.max(0, Math.ceil((r.step_started_at + policy.dwell_seconds * 1000 - Date.now()) / 1000)),
            requests_needed: Math.max(0, policy.min_requests - arms.candidate.requests),
          }
        : null;
    return {
      id: r.id,
      deployment: def.name,
      mode: r.mode as RolloutMode,
      stable: r.stable,
      candidate: r.candidate,
      state: r.state as RolloutState,
      step: r.step,
      steps,
      share: r.share,
      step_started_at: r.step_started_at,
      started_at: r.started_at,
      ended_at: r.ended_at,
      reason: r.reason,
      forced: r.forced === 1,
      arms,
      comparison,
      ab,
      next,
    };
  }

  /** Signed webhooks to the [alerts] targets: a rollback is news the operators hear at once. */
  private async announce(def: DeploymentDef, r: RolloutRow, comparison: Comparison): Promise<void> {
    const body = JSON.stringify({
      type: 'rollout.rolled_back',
      deployment: def.name,
      rollout: r.id,
      stable: r.stable,
      candidate: r.candidate,
      share: r.share,
      reasons: comparison.reasons,
      checks: comparison.checks,
      sent_at: new Date().toISOString(),
    });
    await Promise.all(
      def.alerts.webhooks.map(async (w) => {
        // A few quick retries with the same delivery id (receivers dedupe on it); the rollback itself never waits for them.
        for (let attempt = 1; attempt <= ANNOUNCE_ATTEMPTS; attempt++) {
          try {
            await sendSignedWebhook({
              url: w.url,
              event: 'rollout.rolled_back',
              deliveryId: `${r.id}:rolled_back`,
              body,
              secret: webhookSecret(this.env, w.secret),
              attempt,
              userAgent: 'edge-router-rollouts',
              timeoutMs: def.alerts.timeout_ms,
            });
            return;
          } catch (e) {
            if (attempt === ANNOUNCE_ATTEMPTS) console.error(JSON.stringify({ msg: 'rollout: rollback alert not delivered', deployment: def.name, rollout: r.id, url: w.url, attempts: attempt, error: String(e) }));
            else await new Promise((done) => setTimeout(done, 1_000 * 2 ** (attempt - 1)));
          }
        }
      }),
    );
  }

  // ---- storage helpers ----

  private gateCheck(def: DeploymentDef, version: string, force: boolean | undefined, reason: string | undefined): DeploymentRefusal | null {
    if (!def.config.gate.required || this.hasPassingGate(version)) return null;
    if (!force) return refusal(409, 'gate_required', `Version "${version}" has no passing regression gate result (npm run regress); pass force with a reason to override.`);
    if (!reason || !reason.trim()) return refusal(400, 'reason_required', 'force overrides the regression gate only with a reason (kept in the history).');
    return null;
  }

  private hasPassingGate(version: string): boolean {
    const g = this.sql.exec<{ passed: number }>('SELECT passed FROM gates WHERE version = ? ORDER BY id DESC LIMIT 1', version).toArray()[0];
    return g?.passed === 1;
  }

  private latestGates(): Map<string, Gate> {
    const out = new Map<string, Gate>();
    for (const g of this.sql.exec('SELECT * FROM gates ORDER BY id').toArray()) {
      out.set(String(g.version), {
        id: Number(g.id),
        version: String(g.version),
        passed: g.passed === 1,
        at: Number(g.at),
        actor: String(g.actor),
        forced: g.forced === 1,
        summary: JSON.parse(String(g.summary)) as GateSummary,
        stable: g.stable === null ? null : (JSON.parse(String(g.stable)) as GateSummary),
        golden: g.golden === null ? null : String(g.golden),
      });
    }
    return out;
  }

  private versionExists(def: DeploymentDef, name: string): boolean {
    return def.config.versions[name] !== undefined || this.runtimeVersions().some((v) => v.name === name);
  }

  private runtimeVersions(): { name: string; spec: DeploymentVersion }[] {
    return this.sql
      .exec('SELECT name, spec FROM versions ORDER BY created_at')
      .toArray()
      .map((v) => ({ name: String(v.name), spec: JSON.parse(String(v.spec)) as DeploymentVersion }));
  }

  private activeRollout(): RolloutRow | null {
    return this.sql.exec<RolloutRow>("SELECT * FROM rollouts WHERE state IN ('running', 'paused') ORDER BY started_at DESC LIMIT 1").toArray()[0] ?? null;
  }

  private rollout(id: string): RolloutRow | null {
    return this.sql.exec<RolloutRow>('SELECT * FROM rollouts WHERE id = ?', id).toArray()[0] ?? null;
  }

  /** The stable version: the run-time one if set and still known, else the TOML `serving`. */
  private serving(def: DeploymentDef): string {
    const s = this.meta('serving');
    return s !== null && this.versionExists(def, s) ? s : def.config.serving;
  }

  private setServing(version: string): void {
    this.meta('serving', version);
  }

  private epoch(): number {
    return Number(this.meta('epoch') ?? 0);
  }

  private bump(): void {
    this.meta('epoch', String(this.epoch() + 1));
  }

  /** Keeps the latest definition for the alarm (written only when it changed). */
  private remember(def: DeploymentDef): void {
    const json = JSON.stringify(def);
    if (this.meta('def') !== json) this.meta('def', json);
  }

  private meta(k: string): string | null;
  private meta(k: string, v: string): void;
  private meta(k: string, v?: string): string | null | void {
    if (v === undefined) return this.sql.exec<{ v: string }>('SELECT v FROM meta WHERE k = ?', k).toArray()[0]?.v ?? null;
    this.sql.exec('INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)', k, v);
  }

  private log(actor: string, action: string, version: string | null, rollout: string | null, reason: string | null, detail: Record<string, unknown> | null): void {
    this.sql.exec(
      'INSERT INTO history (at, actor, action, version, rollout, reason, detail) VALUES (?,?,?,?,?,?,?)',
      Date.now(),
      actor,
      action,
      version,
      rollout,
      reason,
      detail ? JSON.stringify(detail) : null,
    );
    this.sql.exec('DELETE FROM history WHERE seq <= (SELECT max(seq) FROM history) - 1000');
  }
}

/** A p95 that is worse by less than the floor (in ms) is not worse: jitter on fast answers is no regression. */
function withLatencyFloor(c: Comparison, floorMs: number): Comparison {
  if (c.verdict !== 'rollback') return c;
  const checks = c.checks.map((k) =>
    (k.signal === 'p95_latency' || k.signal === 'p95_ttft') && k.worse && k.candidate !== null && k.stable !== null && k.candidate - k.stable < floorMs ? { ...k, worse: false } : k,
  );
  const bad = checks.filter((k) => k.worse && k.significant);
  const dropped = new Set(checks.filter((k, i) => c.checks[i]!.worse && !k.worse).map((k) => k.signal));
  return { verdict: bad.length ? 'rollback' : 'healthy', checks, reasons: c.reasons.filter((r) => ![...dropped].some((sig) => r.includes(sig.replace('_', ' ')) || r.includes(sig))) };
}

function refusal(status: 400 | 404 | 409, code: string, message: string): DeploymentRefusal {
  return { refused: { status, code, message } };
}

export type { HistoryEntry };
