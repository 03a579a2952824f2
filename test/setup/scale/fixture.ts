/**
 * A config and router state shared by the scale tests (scale-apply, scale-cli): one backend per
 * case the policy distinguishes, on every driver.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { parse, stringify } from 'smol-toml';
import type { FakeKubernetes } from './kubernetes-api';
import { backendStatus } from './router';

export const SCALE_TOML = `
[vars.ROUTER]
[[vars.ROUTER.regions]]
id = "us-east"
latitude = 39.04
longitude = -77.49

[[vars.ROUTER.models]]
id = "llama-3.1-8b"

[[vars.ROUTER.backends]]
id = "k8s-idle"
kind = "vllm"
region = "us-east"
url = "https://idle.example.com"
models = ["llama-3.1-8b"]
cold_start_ms = 90000
scaling = { driver = "kubernetes", idle_minutes = 15, kubernetes = { namespace = "inference", deployment = "idle" } }

[[vars.ROUTER.backends]]
id = "k8s-busy"
kind = "vllm"
region = "us-east"
url = "https://busy.example.com"
models = ["llama-3.1-8b"]
cold_start_ms = 120000
scaling = { driver = "kubernetes", kubernetes = { namespace = "inference", deployment = "busy" } }

[[vars.ROUTER.backends]]
id = "k8s-wake"
kind = "trtllm"
region = "us-east"
url = "https://wake.example.com"
models = ["llama-3.1-8b"]
cold_start_ms = 120000
scaling = { driver = "kubernetes", wake_replicas = 2, max_replicas = 4, kubernetes = { namespace = "inference", deployment = "wake" } }

[[vars.ROUTER.backends]]
id = "k8s-missing"
kind = "vllm"
region = "us-east"
url = "https://missing.example.com"
models = ["llama-3.1-8b"]
cold_start_ms = 120000
scaling = { driver = "kubernetes", kubernetes = { namespace = "inference", deployment = "missing" } }

[[vars.ROUTER.backends]]
id = "replicate-8b"
kind = "openai"
region = "us-east"
url = "https://replicate.example.com"
models = ["llama-3.1-8b"]
cold_start_ms = 120000
scaling = { driver = "replicate", max_replicas = 2, replicate = { deployment = "acme/llama-8b" } }

[[vars.ROUTER.backends]]
id = "modal-8b"
kind = "vllm"
region = "us-east"
url = "https://acme--serve.modal.run"
models = ["llama-3.1-8b"]
cold_start_ms = 120000
scaling = { driver = "modal", modal = { app = "inference", function = "serve" } }

[[vars.ROUTER.backends]]
id = "sim-8b"
kind = "vllm"
region = "us-east"
url = "http://127.0.0.1:18101"
models = ["llama-3.1-8b"]
scaling = { driver = "none" }

[vars.ROUTER.tenants.demo]
models = ["*"]
`;

export function initialStatuses(now: Date) {
  const ago = (m: number) => new Date(now.getTime() - m * 60_000).toISOString();
  return [
    backendStatus('k8s-idle', { last_request_at: ago(30), state_since: ago(120) }),
    backendStatus('k8s-busy', { last_request_at: ago(30), in_flight: 2 }),
    backendStatus('k8s-wake', { state: 'cold', state_since: ago(300), pending_wakeups: 1, wakeup_requested_at: ago(0.1), replicas: 0 }),
    backendStatus('k8s-missing', { last_request_at: ago(30) }),
    backendStatus('replicate-8b', { kind: 'openai', last_request_at: ago(60) }),
    backendStatus('modal-8b', { last_request_at: ago(20) }),
    backendStatus('sim-8b', { last_request_at: ago(600) }),
    backendStatus('not-configured', { last_request_at: ago(600) }),
  ];
}

export function seedKubernetes(k8s: FakeKubernetes) {
  k8s.deployments.clear();
  k8s.deployments.set('inference/idle', { replicas: 1, readyReplicas: 1 });
  k8s.deployments.set('inference/busy', { replicas: 1, readyReplicas: 1 });
  k8s.deployments.set('inference/wake', { replicas: 0, readyReplicas: 0 });
  k8s.calls = [];
}

export function loopbackKubeConfig(server: string, token: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server, skipTLSVerify: true }],
    users: [{ name: 'tester', token }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'tester' }],
    currentContext: 'fake',
  });
  return kc;
}

type Backend = { id: string; scaling?: Record<string, unknown> };

/** SCALE_TOML with only the listed backends (all when omitted), each optionally edited. */
export function scaleToml(ids?: readonly string[], edit: (b: Backend) => void = () => {}): string {
  const doc = parse(SCALE_TOML) as { vars: { ROUTER: { backends: Backend[] } } };
  if (ids) doc.vars.ROUTER.backends = doc.vars.ROUTER.backends.filter((b) => ids.includes(b.id));
  doc.vars.ROUTER.backends.forEach(edit);
  return stringify(doc);
}

/** A kubeconfig file for the CLI (which loads KUBECONFIG like kubectl). */
export function kubeconfigYaml(server: string, token: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: fake',
    // http:// on loopback: the client refuses plain HTTP unless TLS verification is off.
    `  cluster: { server: "${server}", insecure-skip-tls-verify: true }`,
    'users:',
    '- name: tester',
    `  user: { token: "${token}" }`,
    'contexts:',
    '- name: fake',
    '  context: { cluster: fake, user: tester }',
    'current-context: fake',
    '',
  ].join('\n');
}
