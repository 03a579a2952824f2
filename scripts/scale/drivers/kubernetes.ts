/**
 * Kubernetes driver: a vLLM or trtllm-serve Deployment, scaled through its `scale` subresource
 * (RBAC: get on deployments, patch on deployments/scale, list/patch on scaledobjects.keda.sh).
 *
 * When a KEDA ScaledObject targets the Deployment, patching spec.replicas would be undone by
 * KEDA's HPA within a polling interval, so the driver steers KEDA instead, with its documented
 * pause annotations on the ScaledObject:
 *   - park: `autoscaling.keda.sh/paused-replicas: "0"` (KEDA scales to 0 and stops autoscaling);
 *   - scale to N > 0: when the ScaledObject's minReplicaCount ≥ N, remove the pause annotations and
 *     let KEDA autoscale; otherwise (a wake-up with minReplicaCount 0, which KEDA alone would not
 *     serve) pin `paused-replicas: "N"`.
 *
 * @kubernetes/client-node 1.x sends PATCH as application/json-patch+json (the first type the
 * generated client lists) unless told otherwise; our bodies are merge patches, so every PATCH
 * sets Content-Type explicitly (setHeaderOptions). 2.x needs Node 22 (undici 8), hence 1.x.
 */
import { ApiException, AppsV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { z } from 'zod';
import type { CurrentScale, ScaleDriver, ScaleResult, ScaleTarget } from './types';
import { DriverError, errorMessage } from './types';

export const KEDA_PAUSED_REPLICAS = 'autoscaling.keda.sh/paused-replicas';
export const KEDA_PAUSED = 'autoscaling.keda.sh/paused';
const KEDA = { group: 'keda.sh', version: 'v1alpha1', plural: 'scaledobjects' } as const;

/** The parts of a ScaledObject this driver reads (custom objects come back untyped). */
const scaledObjectSchema = z.object({
  metadata: z.object({ name: z.string(), annotations: z.record(z.string(), z.string()).optional() }),
  spec: z.object({
    scaleTargetRef: z.object({ name: z.string(), kind: z.string().optional(), apiVersion: z.string().optional() }),
    minReplicaCount: z.number().int().nonnegative().optional(),
  }),
});
type ScaledObject = z.infer<typeof scaledObjectSchema>;
const scaledObjectListSchema = z.object({ items: z.array(z.unknown()) });

export interface KubernetesDriverOptions {
  /** The KubeConfig for a context (undefined: the current one). Default: ~/.kube/config, KUBECONFIG or in-cluster. */
  kubeConfig?: (context: string | undefined) => KubeConfig;
}

interface Clients {
  apps: AppsV1Api;
  custom: CustomObjectsApi;
  server: string;
}

interface Inspection {
  specReplicas: number;
  readyReplicas: number;
  scaledObject: ScaledObject | undefined;
}

export function defaultKubeConfig(context: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  if (context) {
    if (!kc.getContextObject(context)) throw new DriverError(`kubeconfig has no context "${context}"`);
    kc.setCurrentContext(context);
  }
  return kc;
}

export function kubernetesDriver(options: KubernetesDriverOptions = {}): ScaleDriver {
  const load = options.kubeConfig ?? defaultKubeConfig;
  const byContext = new Map<string, Clients>();

  function clients(context: string | undefined): Clients {
    const key = context ?? '';
    let c = byContext.get(key);
    if (!c) {
      const kc = load(context);
      c = { apps: kc.makeApiClient(AppsV1Api), custom: kc.makeApiClient(CustomObjectsApi), server: kc.getCurrentCluster()?.server ?? '(no cluster)' };
      byContext.set(key, c);
    }
    return c;
  }

  async function inspect(t: ScaleTarget): Promise<{ k: Kube; c: Clients; seen: Inspection }> {
    const k = kubeTarget(t);
    const c = clients(k.context);
    const dep = await call(c, `get ${k.ref}`, () => c.apps.readNamespacedDeployment({ name: k.deployment, namespace: k.namespace }));
    const scaledObject = await findScaledObject(c, k);
    return {
      k,
      c,
      seen: {
        // The API server defaults spec.replicas to 1; an absent field only comes from a hand-made object.
        specReplicas: dep.spec?.replicas ?? 1,
        readyReplicas: dep.status?.readyReplicas ?? 0,
        scaledObject,
      },
    };
  }

  return {
    name: 'kubernetes',

    async current(t): Promise<CurrentScale> {
      const { seen } = await inspect(t);
      const so = seen.scaledObject;
      if (!so) return { replicas: seen.specReplicas, ready: seen.readyReplicas };
      const pinned = pausedReplicas(so);
      const paused = so.metadata.annotations?.[KEDA_PAUSED] === 'true';
      return {
        replicas: pinned ?? seen.specReplicas,
        ready: seen.readyReplicas,
        managedBy: 'keda',
        note: `keda ${so.metadata.name}: ${pinned !== undefined ? `paused at ${pinned}` : paused ? 'paused' : 'autoscaling'}`,
      };
    },

    async scale(t, replicas): Promise<ScaleResult> {
      const { k, c, seen } = await inspect(t);
      const so = seen.scaledObject;
      if (!so) {
        if (seen.specReplicas === replicas) return { changed: false, detail: `${k.ref} already at ${replicas}` };
        await call(c, `scale ${k.ref} to ${replicas}`, () =>
          c.apps.patchNamespacedDeploymentScale(
            { name: k.deployment, namespace: k.namespace, body: { spec: { replicas } } },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          ),
        );
        return { changed: true, detail: `PATCH ${k.ref}/scale replicas=${replicas}` };
      }

      const annotations = so.metadata.annotations ?? {};
      const pinned = pausedReplicas(so);
      let patch: Record<string, string | null>;
      let detail: string;
      if (replicas > 0 && (so.spec.minReplicaCount ?? 0) >= replicas) {
        if (pinned === undefined && annotations[KEDA_PAUSED] === undefined) return { changed: false, detail: `keda ${so.metadata.name} already autoscaling` };
        patch = { [KEDA_PAUSED_REPLICAS]: null, [KEDA_PAUSED]: null };
        detail = `keda ${so.metadata.name}: pause annotations removed (minReplicaCount ${so.spec.minReplicaCount})`;
      } else {
        if (pinned === replicas) return { changed: false, detail: `keda ${so.metadata.name} already paused at ${replicas}` };
        patch = { [KEDA_PAUSED_REPLICAS]: String(replicas) };
        detail = `keda ${so.metadata.name}: ${KEDA_PAUSED_REPLICAS}=${replicas}`;
      }
      await call(c, `annotate ScaledObject ${k.namespace}/${so.metadata.name}`, () =>
        c.custom.patchNamespacedCustomObject(
          { ...KEDA, namespace: k.namespace, name: so.metadata.name, body: { metadata: { annotations: patch } } },
          // CRDs accept JSON patch and merge patch, not strategic merge patch.
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        ),
      );
      return { changed: true, detail };
    },
  };
}

interface Kube {
  namespace: string;
  deployment: string;
  context: string | undefined;
  /** "deployment ns/name" for messages. */
  ref: string;
}

function kubeTarget(t: ScaleTarget): Kube {
  const k = t.scaling.kubernetes;
  if (!k) throw new DriverError('driver "kubernetes" needs a [scaling.kubernetes] table');
  return { namespace: k.namespace, deployment: k.deployment, context: k.context, ref: `deployment ${k.namespace}/${k.deployment}` };
}

/** The ScaledObject whose scaleTargetRef is this Deployment, if KEDA is installed and one exists. */
async function findScaledObject(c: Clients, k: Kube): Promise<ScaledObject | undefined> {
  let list: unknown;
  try {
    list = await c.custom.listNamespacedCustomObject({ ...KEDA, namespace: k.namespace });
  } catch (e) {
    // 404: the keda.sh CRD is not installed, so nothing else autoscales this Deployment through KEDA.
    if (e instanceof ApiException && e.code === 404) return undefined;
    throw k8sError(c, `list ScaledObjects in ${k.namespace} (to see whether KEDA owns ${k.ref})`, e);
  }
  const items = scaledObjectListSchema.safeParse(list);
  if (!items.success) throw new DriverError(`list ScaledObjects in ${k.namespace}: unexpected answer from the API server`);
  for (const item of items.data.items) {
    const so = scaledObjectSchema.safeParse(item);
    if (!so.success) continue;
    const ref = so.data.spec.scaleTargetRef;
    const isDeployment = (ref.kind ?? 'Deployment') === 'Deployment' && (ref.apiVersion ?? 'apps/v1').startsWith('apps/');
    if (isDeployment && ref.name === k.deployment) return so.data;
  }
  return undefined;
}

function pausedReplicas(so: ScaledObject): number | undefined {
  const v = so.metadata.annotations?.[KEDA_PAUSED_REPLICAS];
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  return Number(v.trim());
}

async function call<T>(c: Clients, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw k8sError(c, what, e);
  }
}

function k8sError(c: Clients, what: string, e: unknown): DriverError {
  if (e instanceof DriverError) return e;
  if (e instanceof ApiException) {
    const message = statusMessage(e.body);
    const hint =
      e.code === 401 ? ' (credentials rejected: check the kubeconfig user)'
      : e.code === 403 ? ' (forbidden: see README "Scale to zero" for the RBAC rules)'
      : e.code === 404 ? ' (not found: check namespace and name in [scaling.kubernetes])'
      : '';
    return new DriverError(`kubernetes: ${what}: HTTP ${e.code}${message ? `: ${message}` : ''}${hint}`, e);
  }
  return new DriverError(`kubernetes: ${what}: cannot reach the API server at ${c.server}: ${errorMessage(e)}`, e);
}

/** The `message` of the API server's Status object (the client hands it over as text or parsed). */
function statusMessage(body: unknown): string {
  let value = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch {
      return body.slice(0, 200);
    }
  }
  if (typeof value === 'object' && value !== null && 'message' in value && typeof value.message === 'string') return value.message;
  return '';
}
