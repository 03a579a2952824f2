import type { DeploymentConfig, DeploymentVersion } from '../config/deployments';
import type { AbResult, ArmSample, ArmSummary, Comparison } from './rules/rollout-stats';

// The wire contract of DeploymentState (durable-objects/deployment-state.ts): one object per
// deployment (idFromName(name)). Every call carries the deployment's TOML definition, so the
// object always works with the operator's current policy (and its alarm with the last one seen).

export type Arm = 'stable' | 'candidate';
export type RolloutMode = 'canary' | 'blue-green' | 'ab';
export type RolloutState = 'running' | 'paused' | 'promoted' | 'rolled_back' | 'stopped';

export interface DeploymentDef {
  name: string;
  config: DeploymentConfig;
  /** Where an automatic rollback is announced: the [alerts] webhooks (secret names, read from the env). */
  alerts: { webhooks: { url: string; secret?: string | undefined }[]; timeout_ms: number };
}

/** What an isolate keeps of a deployment: enough to assign every request without a hop. */
export interface SplitSnapshot {
  /** Bumped by every change; the isolate replaces its copy with a newer one only. */
  epoch: number;
  /** The stable version. */
  serving: string;
  /** Versions added at run time (the TOML ones are in the config). */
  runtimeVersions: Record<string, DeploymentVersion>;
  /** A rollout or A/B test that sends a share of traffic to a candidate; null when none does. */
  rollout: { id: string; mode: RolloutMode; stable: string; candidate: string; share: number } | null;
}

/** One finished request of a rollout's arm, reported in batches by the isolates. */
export interface OutcomeReport {
  rolloutId: string;
  arm: Arm;
  requestId: string;
  at: number;
  sample: ArmSample;
}

/** Feedback on a request that ran on a deployment version (the usage record says which, and when). */
export interface FeedbackReport {
  requestId: string;
  version: string;
  /** When the request arrived (epoch ms). */
  at: number;
  score: number;
  /** A custom metric's name; absent for the default score. */
  metric?: string | undefined;
}

export interface GateSummary {
  cases: number;
  mean_similarity: number;
  [metric: string]: unknown;
}

export interface Gate {
  id: number;
  version: string;
  passed: boolean;
  at: number;
  actor: string;
  forced: boolean;
  summary: GateSummary;
  stable: GateSummary | null;
  golden: string | null;
}

export interface HistoryEntry {
  at: number;
  actor: string;
  action: string;
  version: string | null;
  rollout: string | null;
  reason: string | null;
  detail: Record<string, unknown> | null;
}

export interface RolloutView {
  id: string;
  deployment: string;
  mode: RolloutMode;
  stable: string;
  candidate: string;
  state: RolloutState;
  /** Index into steps (canary); 0 otherwise. */
  step: number;
  steps: number[];
  /** The candidate's share now (percent). */
  share: number;
  step_started_at: number;
  started_at: number;
  ended_at: number | null;
  reason: string | null;
  forced: boolean;
  /** The arms over the current step's window (the whole test for A/B). */
  arms: { stable: ArmSummary; candidate: ArmSummary };
  comparison: Comparison | null;
  ab: AbResult | null;
  /** Canary: what the next step still waits for. */
  next: { share: number; wait_seconds: number; requests_needed: number } | null;
}

export interface VersionView extends DeploymentVersion {
  name: string;
  source: 'config' | 'runtime';
  gate: Gate | null;
}

export interface DeploymentView {
  name: string;
  description: string | null;
  serving: string;
  previous: string | null;
  sticky: 'user' | 'key';
  /** The regression gate's thresholds ([deployments.<name>.gate]), which `npm run regress` applies. */
  gate: DeploymentConfig['gate'];
  versions: VersionView[];
  rollout: RolloutView | null;
  rollouts: RolloutView[];
  history: HistoryEntry[];
}

export interface StartRollout {
  version: string;
  mode: RolloutMode;
  steps?: number[] | undefined;
  dwell_seconds?: number | undefined;
  min_requests?: number | undefined;
  share?: number | undefined;
  metric?: string | undefined;
  force?: boolean | undefined;
  reason?: string | undefined;
}

/** A refusal the admin route turns into its OpenAI-style error. */
export interface DeploymentRefusal {
  refused: { status: 400 | 404 | 409; code: string; message: string };
}
export const isRefusal = <T>(x: T | DeploymentRefusal): x is DeploymentRefusal => typeof x === 'object' && x !== null && 'refused' in x;
