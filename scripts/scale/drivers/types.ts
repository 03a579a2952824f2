import type { BackendStatus } from '../../../worker/protocol/backends-api';
import type { ScalingConfig } from '../../../worker/config/scaling';

/** One backend as a driver sees it: its id, its [scaling] policy and what the router reports. */
export interface ScaleTarget {
  id: string;
  /** The backend's url from the config (the sim driver finds /sim/state there). */
  url?: string;
  scaling: ScalingConfig;
  status: BackendStatus | undefined;
}

export interface CurrentScale {
  /**
   * The replica count these scripts control and the policy compares with its target: the
   * Deployment's spec.replicas (or KEDA's pinned count) on Kubernetes; the autoscaler's minimum
   * (warm floor) on Modal and Replicate, which scale above it by themselves. null: unknown.
   */
  replicas: number | null;
  /** Replicas serving now, when the driver can see them (null: it cannot). Drives `ready` events. */
  ready: number | null;
  /** Another autoscaler that owns the workload and is steered instead of overridden, e.g. "keda". */
  managedBy?: string;
  /** One line for the table, e.g. "keda: paused at 0". */
  note?: string;
}

export interface ScaleResult {
  /** False when the backend was already there and nothing was written. */
  changed: boolean;
  /** What was done, for the table, e.g. "PATCH deployments/vllm/scale replicas=0". */
  detail: string;
}

export interface ScaleDriver {
  readonly name: ScalingConfig['driver'];
  current(target: ScaleTarget): Promise<CurrentScale>;
  scale(target: ScaleTarget, replicas: number): Promise<ScaleResult>;
}

/** A driver failure with a message an operator can act on (what, where, why). */
export class DriverError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'DriverError';
  }
}

export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
