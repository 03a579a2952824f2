// The regional deployment assets (regional/kubernetes, regional/modal) against what the router
// relies on: served model names from wrangler.toml, prefix caching, /health readiness behind the
// Service, the load metrics /metrics must carry, API keys from Secrets only, GPU requests, and the
// KEDA ScaledObject the scale scripts steer. Also the README's "Standing up a region" TOML, which
// must compile against the real config schema and name the manifests' Deployment.
import { ScaledObject as KedaScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import { PodMonitor as PromPodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor';
import { Deployment as K8sDeployment } from 'kubernetes-models/apps/v1/Deployment';
import { ConfigMap as K8sConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { PersistentVolumeClaim as K8sPvc } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Secret as K8sSecret } from 'kubernetes-models/v1/Secret';
import { Service as K8sService } from 'kubernetes-models/v1/Service';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { compileConfig } from '../../worker/config/compiled';
import { backendKinds } from '../../worker/config/schema';

const ROOT = resolve(import.meta.dirname, '../..');
const K8S = join(ROOT, 'regional/kubernetes');
const MODAL_APP = join(ROOT, 'regional/modal/vllm_app.py');

// ------------------------------------------------------------------ types (what we read)

type Labels = Record<string, string>;
interface Meta {
  name: string;
  namespace?: string;
  labels?: Labels;
  annotations?: Labels;
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: Meta;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}
type PortRef = string | number;
interface Probe {
  httpGet?: { path?: string; port: PortRef };
  tcpSocket?: { port: PortRef };
  periodSeconds?: number;
  failureThreshold?: number;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string } };
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: { name?: string; containerPort: number }[];
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string }[];
}
interface Volume {
  name: string;
  emptyDir?: { medium?: string };
  persistentVolumeClaim?: { claimName: string };
  configMap?: { name: string; items?: { key: string; path: string }[] };
}
interface PodSpec {
  containers: Container[];
  volumes?: Volume[];
  nodeSelector?: Labels;
  affinity?: unknown;
  tolerations?: { key?: string; operator?: string; effect?: string }[];
}
interface Deployment extends K8sObject {
  spec: {
    replicas?: number;
    selector: { matchLabels: Labels };
    template: { metadata: { labels: Labels; annotations?: Labels }; spec: PodSpec };
  };
}
interface Service extends K8sObject {
  spec: { selector: Labels; ports: { name?: string; port: number; targetPort?: PortRef }[] };
}
interface ScaledObject extends K8sObject {
  spec: {
    scaleTargetRef: { name: string; kind?: string; apiVersion?: string };
    minReplicaCount?: number;
    maxReplicaCount?: number;
    triggers: { type: string; metadata: Record<string, string> }[];
  };
}
interface PodMonitor extends K8sObject {
  spec: { selector: { matchLabels: Labels }; podMetricsEndpoints: { port: string; path?: string }[] };
}
interface Kustomization {
  namespace?: string;
  resources?: string[];
  configMapGenerator?: { name: string; files?: string[] }[];
  images?: { name: string; newTag?: string; digest?: string }[];
}
interface RouterModel {
  id: string;
  served_name?: string;
  max_model_len?: number;
}

// ------------------------------------------------------------------ loading

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

/** Every document of a (multi-document) YAML file; fails on any parse error. */
function yamlDocs(path: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'));
  const list = Array.isArray(docs) ? docs : [docs];
  for (const d of list) {
    const errors = d.errors.map((e) => e.message);
    if (errors.length > 0) throw new Error(`${relative(ROOT, path)}: ${errors.join('; ')}`);
  }
  return list.map((d) => d.toJS() as unknown).filter((d) => d !== null && d !== undefined);
}

interface Bundle {
  name: string;
  dir: string;
  kustomization: Kustomization;
  /** Files listed under resources only as comments (`# - file.yaml`): optional, applied by uncommenting. */
  optional: string[];
  /** Objects from resources, optional files and configMapGenerator (as ConfigMaps with the files' contents). */
  objects: K8sObject[];
  /** Objects of the `*.example.yaml` files (never applied). */
  examples: K8sObject[];
}

function loadBundle(name: string): Bundle {
  const dir = join(K8S, name);
  const kustomizationText = readFileSync(join(dir, 'kustomization.yaml'), 'utf8');
  const kustomization = parseYaml(kustomizationText) as Kustomization;
  const optional = [...kustomizationText.matchAll(/^\s*#\s*-\s*(\S+\.ya?ml)\s*$/gm)].map((m) => m[1]!);
  const objects: K8sObject[] = [];
  for (const f of [...(kustomization.resources ?? []), ...optional]) {
    if (existsSync(join(dir, f))) objects.push(...(yamlDocs(join(dir, f)) as K8sObject[]));
  }
  for (const g of kustomization.configMapGenerator ?? []) {
    const data: Record<string, string> = {};
    for (const spec of g.files ?? []) {
      const [key, path] = spec.includes('=') ? (spec.split('=', 2) as [string, string]) : [basename(spec), spec];
      if (existsSync(join(dir, path))) data[key] = readFileSync(join(dir, path), 'utf8');
    }
    objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name }, data });
  }
  const examples = readdirSync(dir)
    .filter((f) => f.endsWith('.example.yaml'))
    .flatMap((f) => yamlDocs(join(dir, f)) as K8sObject[]);
  return { name, dir, kustomization, optional, objects, examples };
}

const BUNDLES = ['vllm', 'trtllm'].map(loadBundle);
const VLLM = BUNDLES[0]!;
const TRTLLM = BUNDLES[1]!;

const ofKind = <T extends K8sObject>(b: Bundle, kind: string): T[] => b.objects.filter((o) => o.kind === kind) as T[];
const deploymentsOf = (b: Bundle) => ofKind<Deployment>(b, 'Deployment');

const wrangler = parseToml(readFileSync(join(ROOT, 'wrangler.toml'), 'utf8')) as unknown as {
  vars: { ROUTER: { models: RouterModel[] } };
  env: { production: { vars: { ROUTER: Record<string, unknown> & { models: RouterModel[]; regions: unknown[]; backends: unknown[] } } } };
};
const MODELS = wrangler.vars.ROUTER.models;
/** The name the router sends upstream as `model` (worker/routing/execute.ts). */
const sentName = (m: RouterModel) => m.served_name ?? m.id;

// ------------------------------------------------------------------ helpers

const argv = (c: Container) => [...(c.command ?? []), ...(c.args ?? [])];

/** Values of a flag: `--f=v` → [v]; `--f a b` → [a, b] (up to the next flag); absent → undefined. */
function flag(args: string[], name: string): string[] | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith(`${name}=`)) return [a.slice(name.length + 1)];
    if (a === name) {
      const values: string[] = [];
      for (let j = i + 1; j < args.length && !args[j]!.startsWith('--'); j++) values.push(args[j]!);
      return values;
    }
  }
  return undefined;
}
const flagValue = (args: string[], name: string) => flag(args, name)?.[0];
const hasFlag = (args: string[], name: string) => flag(args, name) !== undefined;

/** The positional model argument of `vllm serve MODEL` / `trtllm-serve serve MODEL`. */
function servedModelArg(args: string[]): string | undefined {
  const i = args.indexOf('serve');
  const next = i === -1 ? undefined : args[i + 1];
  return next && !next.startsWith('--') ? next : undefined;
}

function containerPort(c: Container, ref: PortRef): number | undefined {
  if (typeof ref === 'number') return c.ports?.some((p) => p.containerPort === ref) ? ref : undefined;
  return c.ports?.find((p) => p.name === ref)?.containerPort;
}

const gpus = (c: Container) => Number(c.resources?.limits?.['nvidia.com/gpu'] ?? 0);
function engineOf(d: Deployment): Container {
  const withGpu = d.spec.template.spec.containers.filter((c) => gpus(c) > 0);
  expect(withGpu, `${d.metadata.name}: exactly one container requests GPUs`).toHaveLength(1);
  return withGpu[0]!;
}

const isSubset = (sub: Labels, of: Labels) => Object.entries(sub).every(([k, v]) => of[k] === v);

/** The Service whose selector picks the Deployment's pods. */
function serviceFor(b: Bundle, d: Deployment): Service {
  const matching = ofKind<Service>(b, 'Service').filter((s) => isSubset(s.spec.selector, d.spec.template.metadata.labels));
  expect(matching, `a Service selects the pods of ${d.metadata.name}`).toHaveLength(1);
  return matching[0]!;
}

/** A mounted file: [volume, path of the file inside the volume] for an absolute path in the container. */
function mountedFile(d: Deployment, c: Container, path: string): { volume: Volume; file: string } | undefined {
  for (const m of c.volumeMounts ?? []) {
    const root = m.mountPath.replace(/\/+$/, '');
    if (!path.startsWith(`${root}/`)) continue;
    const volume = d.spec.template.spec.volumes?.find((v) => v.name === m.name);
    if (volume) return { volume, file: path.slice(root.length + 1) };
  }
  return undefined;
}

function configMapText(b: Bundle, volume: Volume, file: string): string | undefined {
  if (!volume.configMap) return undefined;
  const cm = ofKind(b, 'ConfigMap').find((o) => o.metadata.name === volume.configMap!.name);
  const key = volume.configMap.items ? volume.configMap.items.find((i) => i.path === file)?.key : file;
  return key === undefined ? undefined : cm?.data?.[key];
}

const SECRET_NAME = /(KEY|TOKEN|SECRET|PASSWORD)/i;

// ------------------------------------------------------------------ every manifest

describe('regional/kubernetes: files', () => {
  const yamlFiles = walk(K8S).filter((f) => /\.ya?ml$/.test(f));

  it('every YAML file parses, every document of every one of them', () => {
    expect(yamlFiles.length).toBeGreaterThanOrEqual(10);
    for (const f of yamlFiles) {
      const docs = yamlDocs(f);
      expect(docs.length, relative(ROOT, f)).toBeGreaterThan(0);
      // Kubernetes objects are complete; other YAML (kustomization, engine options) has no `metadata`.
      const objects = (docs as Partial<K8sObject>[]).filter((doc) => doc.kind && doc.kind !== 'Kustomization' && !f.includes('/config/'));
      for (const doc of objects) {
        expect(doc.apiVersion, relative(ROOT, f)).toBeTruthy();
        expect(doc.metadata?.name, relative(ROOT, f)).toBeTruthy();
      }
    }
  });

  it('holds no credentials: no Secret is applied and no token-looking string appears anywhere', () => {
    for (const b of BUNDLES) expect(ofKind(b, 'Secret'), b.name).toEqual([]);
    for (const f of walk(K8S)) {
      const text = readFileSync(f, 'utf8');
      expect(text, relative(ROOT, f)).not.toMatch(/\bhf_[A-Za-z0-9]{20,}|\bsk-[A-Za-z0-9_-]{20,}|\b[0-9a-f]{48,}\b/);
    }
  });
});

describe.each(BUNDLES.map((b) => [b.name, b] as const))('regional/kubernetes/%s: kustomization', (_name, b) => {
  it('lists files that exist, and every manifest of the folder (optional ones as comments)', () => {
    const resources = b.kustomization.resources ?? [];
    expect(resources.length).toBeGreaterThan(0);
    for (const f of [...resources, ...b.optional]) expect(existsSync(join(b.dir, f)), `${b.name}/${f}`).toBe(true);
    for (const g of b.kustomization.configMapGenerator ?? []) {
      for (const spec of g.files ?? []) expect(existsSync(join(b.dir, spec.split('=').pop()!)), `${b.name}/${spec}`).toBe(true);
    }
    const manifests = readdirSync(b.dir).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml' && !f.endsWith('.example.yaml'));
    for (const f of manifests) expect([...resources, ...b.optional], `${b.name}/${f} is listed`).toContain(f);
    // Examples (placeholder Secrets) are never applied.
    for (const f of readdirSync(b.dir).filter((x) => x.endsWith('.example.yaml'))) expect(resources).not.toContain(f);
    expect(b.kustomization.namespace).toBe('inference');
  });

  it('pins every container image to a tag (never latest) in one place', () => {
    const images = new Map((b.kustomization.images ?? []).map((i) => [i.name, i.newTag ?? i.digest]));
    for (const d of deploymentsOf(b)) {
      for (const c of d.spec.template.spec.containers) {
        const tag = images.get(c.image) ?? (c.image.includes(':') ? c.image.split(':').pop() : undefined);
        expect(tag, `${c.image} has a pinned tag`).toBeTruthy();
        expect(tag).not.toBe('latest');
      }
    }
    for (const name of images.keys()) {
      expect(deploymentsOf(b).flatMap((d) => d.spec.template.spec.containers.map((c) => c.image)), `images: ${name} is used`).toContain(name);
    }
  });

  // What `kubectl kustomize` would add, checked without kubectl: one namespace for everything.
  it('puts every object in the kustomization namespace (none names another)', () => {
    expect(b.kustomization.namespace).toBe('inference');
    const elsewhere = b.objects.filter((o) => o.metadata.namespace !== undefined && o.metadata.namespace !== b.kustomization.namespace);
    expect(elsewhere.map((o) => `${o.kind}/${o.metadata.name} in ${o.metadata.namespace}`)).toEqual([]);
  });

  it('validates against the Kubernetes (and KEDA, Prometheus Operator) JSON schemas of its API versions', () => {
    const all = [...b.objects, ...b.examples];
    expect(all.length).toBeGreaterThan(0);
    const problems = all.flatMap((o) => schemaErrors(o).map((e) => `${o.apiVersion} ${o.kind}/${o.metadata.name}: ${e}`));
    expect(problems).toEqual([]);
  });
});

/**
 * The JSON schemas of every apiVersion/kind the manifests use, through the `kubernetes-models`
 * packages (generated from the Kubernetes OpenAPI spec and the KEDA and Prometheus Operator CRDs,
 * validated with ajv), so the check runs without kubectl. A kind missing here fails: never skipped.
 */
const SCHEMAS: Record<string, new (o: any) => { validate(): void }> = {
  'v1/ConfigMap': K8sConfigMap,
  'v1/PersistentVolumeClaim': K8sPvc,
  'v1/Secret': K8sSecret,
  'v1/Service': K8sService,
  'apps/v1/Deployment': K8sDeployment,
  'keda.sh/v1alpha1/ScaledObject': KedaScaledObject,
  'monitoring.coreos.com/v1/PodMonitor': PromPodMonitor,
};

function schemaErrors(o: K8sObject): string[] {
  const Model = SCHEMAS[`${o.apiVersion}/${o.kind}`];
  if (!Model) return [`no schema for ${o.apiVersion}/${o.kind} (add it to SCHEMAS)`];
  try {
    new Model(o).validate();
    return [];
  } catch (e) {
    return [(e as Error).message];
  }
}

describe('the manifests\' schema check', () => {
  it('rejects what the API server would: a port by name where a number goes, a missing field, an unknown kind', () => {
    const d = structuredClone(deploymentsOf(VLLM)[0]!) as unknown as K8sObject & { spec: any };
    d.spec.template.spec.containers[0].ports = [{ containerPort: 'http' }];
    expect(schemaErrors(d).join('; ')).toMatch(/containerPort must be integer/);
    const noSelector = structuredClone(deploymentsOf(VLLM)[0]!) as unknown as K8sObject & { spec: any };
    delete noSelector.spec.selector;
    expect(schemaErrors(noSelector).join('; ')).toMatch(/selector/);
    expect(schemaErrors({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' } })).toEqual(['no schema for v1/Pod (add it to SCHEMAS)']);
  });
});

// ------------------------------------------------------------------ every Deployment

describe.each(BUNDLES.flatMap((b) => deploymentsOf(b).map((d) => [`${b.name}/${d.metadata.name}`, b, d] as const)))('Deployment %s', (_name, b, d) => {
  const pod = d.spec.template.spec;

  it('requests GPUs, one per tensor-parallel rank, on GPU nodes', () => {
    const engine = engineOf(d);
    const n = gpus(engine);
    expect(Number.isInteger(n) && n > 0).toBe(true);
    const requested = engine.resources?.requests?.['nvidia.com/gpu'];
    // Extended resources: requests, when given, equal limits.
    expect([undefined, n, String(n)], 'nvidia.com/gpu requests').toContain(requested);
    const args = argv(engine);
    const tp = Number(flagValue(args, '--tensor-parallel-size') ?? flagValue(args, '--tp_size') ?? 1);
    const pp = Number(flagValue(args, '--pipeline-parallel-size') ?? flagValue(args, '--pp_size') ?? 1);
    expect(tp * pp, 'GPUs = tensor × pipeline parallel size').toBe(n);
    expect(pod.nodeSelector ?? pod.affinity, 'a GPU node selector or affinity').toBeTruthy();
    expect(pod.tolerations ?? []).toContainEqual(expect.objectContaining({ key: 'nvidia.com/gpu', effect: 'NoSchedule' }));
  });

  it('gives the engine a RAM-backed /dev/shm', () => {
    const engine = engineOf(d);
    const mount = engine.volumeMounts?.find((m) => m.mountPath === '/dev/shm');
    expect(mount).toBeDefined();
    expect(pod.volumes?.find((v) => v.name === mount!.name)?.emptyDir?.medium).toBe('Memory');
  });

  it('waits long enough for the model to download and load before probing for liveness', () => {
    const engine = engineOf(d);
    const p = engine.startupProbe;
    expect(p?.httpGet?.path).toBe('/health');
    expect((p?.periodSeconds ?? 10) * (p?.failureThreshold ?? 3), 'startup budget (s)').toBeGreaterThanOrEqual(15 * 60);
  });

  it('is ready on GET /health at the port its Service targets', () => {
    const svc = serviceFor(b, d);
    expect(svc.spec.ports.length).toBeGreaterThan(0);
    for (const sp of svc.spec.ports) {
      const target = sp.targetPort ?? sp.port;
      const owners = pod.containers.filter((c) => containerPort(c, target) !== undefined);
      expect(owners, `Service ${svc.metadata.name} port ${sp.port} → ${target}: one container has it`).toHaveLength(1);
      const c = owners[0]!;
      const probe = c.readinessProbe?.httpGet;
      expect(probe?.path, `${c.name} readinessProbe`).toBe('/health');
      expect(containerPort(c, probe!.port), 'readiness on the Service target port').toBe(containerPort(c, target));
    }
    // Every container in the pod gates readiness (a pod is ready when all of them are).
    for (const c of pod.containers) expect(c.readinessProbe, c.name).toBeDefined();
  });

  it('has selectors that match its pods', () => {
    expect(d.spec.template.metadata.labels).toMatchObject(d.spec.selector.matchLabels);
    expect(Object.keys(d.spec.selector.matchLabels).length).toBeGreaterThan(0);
  });

  it('leaves the replica count to the scale scripts and KEDA', () => {
    expect(d.spec.replicas).toBeUndefined();
  });

  it('takes every credential from a Secret the example documents, none inline', () => {
    const documented = new Map(b.examples.filter((o) => o.kind === 'Secret').map((s) => [s.metadata.name, s.stringData ?? s.data ?? {}]));
    for (const c of pod.containers) {
      for (const e of c.env ?? []) {
        if (!SECRET_NAME.test(e.name)) continue;
        const ref = e.valueFrom?.secretKeyRef;
        expect(e.value, `${c.name} env ${e.name}: no literal value`).toBeUndefined();
        expect(ref, `${c.name} env ${e.name}: from a secretKeyRef`).toBeDefined();
        const example = documented.get(ref!.name);
        expect(example, `secret.example.yaml documents Secret ${ref!.name}`).toBeDefined();
        expect(Object.keys(example!), `Secret ${ref!.name} key`).toContain(ref!.key);
        expect(example![ref!.key]).toMatch(/^REPLACE_/);
      }
      // A key on the command line may only be a reference to such a variable.
      const apiKeys = [flagValue(argv(c), '--api-key') ?? flagValue(argv(c), '--api_key')].filter((k) => k !== undefined);
      const literal = apiKeys.filter((k) => !/^\$\(\w+\)$/.test(k));
      expect(literal, `${c.name}: --api-key is $(VAR), never a literal`).toEqual([]);
      const notFromSecret = apiKeys.map((k) => k.slice(2, -1)).filter((v) => !c.env?.find((e) => e.name === v)?.valueFrom?.secretKeyRef);
      expect(notFromSecret, `${c.name}: --api-key's variable comes from a secretKeyRef`).toEqual([]);
    }
  });

  it('mounts only volumes defined here (claims, ConfigMaps and their keys)', () => {
    const claims = new Set(ofKind(b, 'PersistentVolumeClaim').map((o) => o.metadata.name));
    const configMaps = new Map(ofKind(b, 'ConfigMap').map((o) => [o.metadata.name, o.data ?? {}]));
    const volumes = new Set((pod.volumes ?? []).map((v) => v.name));
    for (const c of pod.containers) for (const m of c.volumeMounts ?? []) expect(volumes, `${c.name} mounts ${m.name}`).toContain(m.name);
    for (const v of (pod.volumes ?? []).filter((x) => x.persistentVolumeClaim)) expect(claims, `volume ${v.name}`).toContain(v.persistentVolumeClaim!.claimName);
    for (const v of (pod.volumes ?? []).filter((x) => x.configMap)) {
      const data = configMaps.get(v.configMap!.name);
      expect(data, `volume ${v.name}: ConfigMap ${v.configMap!.name}`).toBeDefined();
      for (const item of v.configMap!.items ?? []) expect(Object.keys(data!)).toContain(item.key);
    }
  });
});

// ------------------------------------------------------------------ vLLM

describe('regional/kubernetes/vllm', () => {
  const d = deploymentsOf(VLLM)[0]!;
  const engine = engineOf(d);
  const args = argv(engine);

  it('runs `vllm serve` with prefix caching and the load gauges the router scrapes', () => {
    expect(deploymentsOf(VLLM)).toHaveLength(1);
    expect(args.slice(0, 2)).toEqual(['vllm', 'serve']);
    expect(servedModelArg(args)).toBeTruthy();
    expect(args).toContain('--enable-prefix-caching');
    expect(args).not.toContain('--no-enable-prefix-caching');
    // Without stats logging vLLM's /metrics has no vllm:num_requests_* gauges: the router would see nothing.
    expect(hasFlag(args, '--disable-log-stats')).toBe(false);
  });

  it('serves the name the router sends for a model of wrangler.toml (and the id)', () => {
    const names = flag(args, '--served-model-name') ?? [servedModelArg(args)!];
    const model = MODELS.find((m) => names.includes(sentName(m)));
    expect(model, `--served-model-name ${names.join(' ')} includes a [[models]] served_name (or id)`).toBeDefined();
    expect(names).toContain(model!.id);
    const maxLen = Number(flagValue(args, '--max-model-len'));
    expect(maxLen).toBeGreaterThan(0);
    const routerModels = [...MODELS, ...wrangler.env.production.vars.ROUTER.models].filter((m) => m.id === model!.id);
    for (const m of routerModels) if (m.max_model_len !== undefined) expect(m.max_model_len).toBeLessThanOrEqual(maxLen);
  });

  it('listens on all interfaces at the port the Service targets', () => {
    expect(flagValue(args, '--host')).toBe('0.0.0.0');
    const svc = serviceFor(VLLM, d);
    expect(Number(flagValue(args, '--port'))).toBe(containerPort(engine, svc.spec.ports[0]!.targetPort!));
  });

  it('checks the router key itself: VLLM_API_KEY or --api-key from the Secret', () => {
    const fromEnv = engine.env?.find((e) => e.name === 'VLLM_API_KEY')?.valueFrom?.secretKeyRef;
    const fromFlag = flagValue(args, '--api-key');
    expect(fromEnv !== undefined || fromFlag !== undefined, 'vLLM is given a key').toBe(true);
  });

  describe('KEDA ScaledObject', () => {
    const so = ofKind<ScaledObject>(VLLM, 'ScaledObject');

    it('targets the Deployment and scales on vllm:num_requests_waiting', () => {
      expect(so).toHaveLength(1);
      const s = so[0]!;
      expect(s.apiVersion).toBe('keda.sh/v1alpha1');
      expect(s.spec.scaleTargetRef.name).toBe(d.metadata.name);
      expect(s.spec.scaleTargetRef.kind ?? 'Deployment').toBe('Deployment');
      const prometheus = s.spec.triggers.filter((t) => t.type === 'prometheus');
      expect(prometheus.length).toBeGreaterThan(0);
      for (const t of prometheus) {
        const query = t.metadata.query!;
        expect(query).toContain('vllm:num_requests_waiting');
        expect(Number(t.metadata.threshold)).toBeGreaterThan(0);
        expect(t.metadata.serverAddress).toMatch(/^https?:\/\//);
        // Labels in the query must be the ones the series carry.
        const labels = Object.fromEntries([...query.matchAll(/(\w+)="([^"]+)"/g)].map((m) => [m[1]!, m[2]!]));
        const want: Record<string, string> = { namespace: VLLM.kustomization.namespace!, model_name: flag(args, '--served-model-name')![0]! };
        // The query picks this Deployment's series by the labels they carry (vLLM labels its metrics with the first served name).
        expect(labels).toEqual(want);
      }
    });

    it('leaves zero to the scale scripts: at least one replica, never paused in the file', () => {
      const s = so[0]!;
      expect(s.spec.minReplicaCount ?? 0).toBeGreaterThanOrEqual(1);
      expect(s.spec.maxReplicaCount ?? 100).toBeGreaterThanOrEqual(s.spec.minReplicaCount ?? 0);
      for (const a of Object.keys(s.metadata.annotations ?? {})) expect(a).not.toMatch(/^autoscaling\.keda\.sh\/paused/);
    });

    it('has its Prometheus series from a PodMonitor on the pods and port', () => {
      const pm = ofKind<PodMonitor>(VLLM, 'PodMonitor');
      expect(pm).toHaveLength(1);
      expect(d.spec.template.metadata.labels).toMatchObject(pm[0]!.spec.selector.matchLabels);
      for (const ep of pm[0]!.spec.podMetricsEndpoints) {
        expect(containerPort(engine, ep.port)).toBeDefined();
        expect(ep.path ?? '/metrics').toBe('/metrics');
      }
    });
  });
});

// ------------------------------------------------------------------ trtllm-serve

describe('regional/kubernetes/trtllm', () => {
  const d = deploymentsOf(TRTLLM)[0]!;
  const engine = engineOf(d);
  const args = argv(engine);
  const proxy = d.spec.template.spec.containers.find((c) => c !== engine)!;
  const svc = serviceFor(TRTLLM, d);

  it('runs `trtllm-serve serve` under the name the router sends, on all interfaces', () => {
    expect(deploymentsOf(TRTLLM)).toHaveLength(1);
    expect(args.slice(0, 2)).toEqual(['trtllm-serve', 'serve']);
    const name = flagValue(args, '--served_model_name') ?? servedModelArg(args);
    expect(MODELS.map(sentName), `model ${name}`).toContain(name);
    expect(flagValue(args, '--host')).toBe('0.0.0.0');
    expect(containerPort(engine, Number(flagValue(args, '--port')))).toBeDefined();
  });

  it('turns on KV block reuse and the iteration stats /metrics serves', () => {
    const path = flagValue(args, '--extra_llm_api_options') ?? flagValue(args, '--config');
    expect(path).toBeTruthy();
    const mounted = mountedFile(d, engine, path!);
    expect(mounted, `${path} is mounted`).toBeDefined();
    const text = configMapText(TRTLLM, mounted!.volume, mounted!.file);
    expect(text, `${path} comes from a ConfigMap of this folder`).toBeDefined();
    const options = parseYaml(text!) as { kv_cache_config?: { enable_block_reuse?: boolean }; enable_iter_perf_stats?: boolean };
    expect(options.kv_cache_config?.enable_block_reuse).toBe(true);
    expect(options.enable_iter_perf_stats).toBe(true);
  });

  it('is reached only through the auth proxy, which checks the Secret key and passes SSE through', () => {
    expect(gpus(proxy)).toBe(0);
    const target = svc.spec.ports[0]!.targetPort!;
    expect(containerPort(proxy, target), 'the Service targets the proxy').toBeDefined();
    expect(containerPort(engine, target), 'never the engine').toBeUndefined();
    const keyVar = proxy.env?.find((e) => e.valueFrom?.secretKeyRef);
    expect(keyVar).toBeDefined();
    const filter = proxy.env?.find((e) => e.name === 'NGINX_ENVSUBST_FILTER')?.value;
    // nginx's entrypoint substitutes only the variables its filter matches: the key's must be one.
    expect(filter, 'NGINX_ENVSUBST_FILTER').toBeDefined();
    expect(keyVar!.name).toMatch(new RegExp(filter!));

    const template = proxy.volumeMounts!.map((m) => mountedFile(d, proxy, `${m.mountPath}/default.conf.template`)).find(Boolean);
    expect(template, 'an nginx template is mounted').toBeDefined();
    const conf = configMapText(TRTLLM, template!.volume, template!.file)!;
    expect(conf).toContain(`"Bearer \${${keyVar!.name}}"`);
    expect(conf).toMatch(new RegExp(`listen ${containerPort(proxy, target)};`));
    const enginePort = Number(flagValue(args, '--port'));
    const upstreams = [...conf.matchAll(/proxy_pass http:\/\/127\.0\.0\.1:(\d+);/g)].map((m) => Number(m[1]));
    expect(upstreams.length).toBeGreaterThan(0);
    for (const p of upstreams) expect(p, 'proxy_pass goes to the engine port').toBe(enginePort);
    expect(conf).toContain('proxy_buffering off;');
    // /health for probes without a key; everything else (/v1, /metrics) behind it.
    const health = /location = \/health \{([^}]*)\}/.exec(conf);
    expect(health?.[1]).not.toContain('edge_router_authorized');
    expect(conf).toMatch(/location \/ \{\s*if \(\$edge_router_authorized = 0\) \{\s*return 401/);
  });

  it('keeps Prometheus off /metrics (each read drains the stats the router needs)', () => {
    // Every way this bundle could have Prometheus scrape the pods, and the path each would read.
    const annotations = d.spec.template.metadata.annotations ?? {};
    const scraped: { via: string; path: string }[] = [
      ...(annotations['prometheus.io/scrape'] === 'true' ? [{ via: 'pod annotation', path: annotations['prometheus.io/path'] ?? '/metrics' }] : []),
      ...ofKind<PodMonitor>(TRTLLM, 'PodMonitor').flatMap((pm) => pm.spec.podMetricsEndpoints.map((ep) => ({ via: `PodMonitor ${pm.metadata.name}`, path: ep.path ?? '/metrics' }))),
      ...ofKind(TRTLLM, 'ServiceMonitor').map((sm) => ({ via: `ServiceMonitor ${sm.metadata.name}`, path: '/metrics' })),
    ];
    expect(scraped.filter((x) => x.path === '/metrics')).toEqual([]);
  });
});

// ------------------------------------------------------------------ Modal

describe('regional/modal/vllm_app.py', () => {
  const src = readFileSync(MODAL_APP, 'utf8');
  const constant = (name: string) => new RegExp(`^${name}\\s*=\\s*(.+?)\\s*(#.*)?$`, 'm').exec(src)?.[1];
  const str = (name: string) => JSON.parse(constant(name) ?? 'null') as string | null;

  it('serves vLLM as a web endpoint behind Modal proxy auth, with prefix caching, under the router names', () => {
    const webServer = /@modal\.web_server\(([^)]*)\)/.exec(src)?.[1];
    expect(webServer).toBeDefined();
    expect(webServer).toMatch(/requires_proxy_auth\s*=\s*True/);
    expect(webServer).toMatch(/port\s*=\s*VLLM_PORT/);
    expect(constant('VLLM_PORT')).toBe('8000');
    expect(src).toContain('"--enable-prefix-caching"');
    expect(src).toMatch(/"--port",\s*str\(VLLM_PORT\)/);
    const model = MODELS.find((m) => m.id === str('MODEL_ID'));
    expect(model, `MODEL_ID ${str('MODEL_ID')} is a [[models]] id`).toBeDefined();
    expect(str('SERVED_NAME')).toBe(sentName(model!));
    expect(src).not.toMatch(/--api-key|--disable-log-stats/);
    // The same engine as the Kubernetes manifests.
    expect(`v${str('VLLM_VERSION')}`).toBe(VLLM.kustomization.images?.find((i) => i.name === 'vllm/vllm-openai')?.newTag);
  });

  // python3 is Debian's package; .ci/run installs it. Missing, these fail: they never skip.
  it('has python3 to check the app with', () => {
    const r = spawnSync('python3', ['--version'], { encoding: 'utf8' });
    expect(r.error?.message ?? r.status, 'python3 is missing: apt-get install -y python3 (.ci/run does it)').toBe(0);
  });

  it('compiles (python3 -m py_compile)', () => {
    const r = spawnSync('python3', ['-c', 'import os, sys, tempfile, py_compile; py_compile.compile(sys.argv[1], cfile=os.path.join(tempfile.mkdtemp(), "app.pyc"), doraise=True)', MODAL_APP], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });

  it('declares what the router relies on (read from the syntax tree)', () => {
    const r = spawnSync('python3', ['-c', PY_INSPECT, MODAL_APP], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const app = JSON.parse(r.stdout) as {
      consts: Record<string, unknown>;
      decorators: Record<string, Record<string, Record<string, unknown>>>;
      cmd: unknown[];
    };
    const serve = app.decorators.serve!;
    expect(serve['app.function']?.gpu).toBeTruthy();
    expect(serve['modal.web_server']).toMatchObject({ port: 8000, requires_proxy_auth: true });
    expect(Number(serve['modal.web_server']?.startup_timeout)).toBeGreaterThanOrEqual(10 * 60);
    expect(serve['modal.concurrent']?.max_inputs).toBeGreaterThan(1);
    const cmd = app.cmd.map(String);
    expect(cmd.slice(0, 2)).toEqual(['vllm', 'serve']);
    expect(cmd).toContain('--enable-prefix-caching');
    expect(flagValue(cmd, '--port')).toBe('8000');
    expect(flagValue(cmd, '--host')).toBe('0.0.0.0');
    const names = flag(cmd, '--served-model-name')!;
    expect(names).toContain(app.consts.SERVED_NAME);
    expect(names).toContain(app.consts.MODEL_ID);
  });
});

/** Dumps the module's constants, each function's decorator keywords and serve()'s `cmd`, evaluated with those constants. */
const PY_INSPECT = String.raw`
import ast, json, sys
tree = ast.parse(open(sys.argv[1]).read())
consts = {}
for node in tree.body:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        try:
            consts[node.targets[0].id] = ast.literal_eval(node.value)
        except Exception:
            pass
def value(n):
    try:
        return eval(compile(ast.Expression(n), "<expr>", "eval"), {"__builtins__": {"str": str}}, dict(consts))
    except Exception:
        return ast.unparse(n)
decorators, cmd = {}, None
for node in tree.body:
    if isinstance(node, ast.FunctionDef):
        decorators[node.name] = {ast.unparse(d.func): {k.arg: value(k.value) for k in d.keywords} for d in node.decorator_list if isinstance(d, ast.Call)}
        if node.name == "serve":
            for s in ast.walk(node):
                if isinstance(s, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "cmd" for t in s.targets):
                    cmd = value(s.value)
print(json.dumps({"consts": consts, "decorators": decorators, "cmd": cmd}, default=str))
`;

// ------------------------------------------------------------------ README

describe('README: Standing up a region', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Standing up a region\n');
  const end = readme.indexOf('\n## ', start + 1);
  const section = start === -1 ? '' : readme.slice(start, end === -1 ? undefined : end);
  const blocks = [...section.matchAll(/```toml\n([\s\S]*?)```/g)].map((m) => {
    const lines = m[1]!.split('\n');
    const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => /^ */.exec(l)![0].length));
    return parseToml(lines.map((l) => l.slice(indent)).join('\n')) as {
      env: { production: { vars: { ROUTER: { regions?: unknown[]; backends: (Record<string, unknown> & { kind: string; scaling?: Record<string, Record<string, string>> })[] } } } };
    };
  });
  const snippets = blocks.map((b) => b.env.production.vars.ROUTER);

  it('has TOML for a Kubernetes backend and a Modal one', () => {
    expect(section).not.toBe('');
    expect(snippets.flatMap((s) => s.backends.map((b) => b.kind)).sort()).toEqual(['modal', 'vllm']);
  });

  it('adds to the production config without an error, for every kind the schema knows', () => {
    const known = new Set<string>(backendKinds);
    const prod = structuredClone(wrangler.env.production.vars.ROUTER) as Record<string, unknown[]>;
    for (const s of snippets) {
      prod.regions = [...prod.regions!, ...(s.regions ?? [])];
      prod.backends = [...prod.backends!, ...s.backends.filter((b) => known.has(b.kind))];
    }
    expect(prod.backends!.length).toBeGreaterThan(wrangler.env.production.vars.ROUTER.backends.length);
    const result = compileConfig(prod);
    expect(result.ok ? [] : result.errors).toEqual([]);
  });

  it('names the manifests and the Modal app the scale scripts will drive', () => {
    const backends = snippets.flatMap((s) => s.backends);
    const k8s = backends.find((b) => b.scaling?.driver === 'kubernetes' as unknown)!.scaling!.kubernetes!;
    expect(BUNDLES.flatMap((b) => deploymentsOf(b).map((d) => d.metadata.name))).toContain(k8s.deployment);
    expect(k8s.namespace).toBe(VLLM.kustomization.namespace);
    const modal = backends.find((b) => b.kind === 'modal')!;
    const src = readFileSync(MODAL_APP, 'utf8');
    expect(modal.scaling?.modal?.app).toBe(/^APP_NAME = "([^"]+)"/m.exec(src)?.[1]);
    expect(modal.scaling?.modal?.function).toBe(/@modal\.web_server[^\n]*\ndef (\w+)\(/.exec(src)?.[1]);
    expect(String(modal.url)).toContain(`--${modal.scaling!.modal!.app}-${modal.scaling!.modal!.function}.modal.run`);
  });
});
