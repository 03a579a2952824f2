/** The deployment version a request runs on (README "Rollouts and quality"). */
export interface DeploymentAssignment {
  /** The deployment: the client-facing `model` name. */
  name: string;
  version: string;
  /** Which side of a running rollout or A/B test the request is on; 'stable' when none runs. */
  arm: 'stable' | 'candidate';
  /** The running rollout, when any. */
  rolloutId: string | null;
}
