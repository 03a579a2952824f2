import type { RoutingConfig } from '../../config/schema';
import { leastLoaded } from './least-loaded';
import { prefixAffinity } from './prefix-affinity';
import { roundRobin } from './round-robin';
import type { ReplicaPolicy } from './types';

export const replicaPolicies: Record<RoutingConfig['policy'], ReplicaPolicy> = {
  'prefix-affinity': prefixAffinity,
  'least-loaded': leastLoaded,
  'round-robin': roundRobin,
};

export type { ReplicaContext, ReplicaOrder, ReplicaPolicy } from './types';
