import { startStack, type Stack } from '../../scripts/dev/stack';
import { startToolsStandIn, type StandIn } from './openai-tools-standin';

// The stack the client tests run against: the dev config's simulated fleet, plus model
// "tool-model" on a stand-in that calls tools (test/setup/openai-tools-standin.ts). Tenant acme
// may use only llama-3.1-8b ("small") and its keys are limited to 2 requests per 10 minutes
// (each key its own bucket), for the model-visibility and 429 tests.

export const TOOL_MODEL = 'tool-model';
export const TOOL_BACKEND = 'standin-tools';

export interface ClientsStack {
  stack: Stack;
  standIn: StandIn;
  close(): Promise<void>;
}

export async function startClientsStack(): Promise<ClientsStack> {
  const standIn = await startToolsStandIn();
  try {
    const stack = await startStack({
      port: 0,
      ephemeralBackends: true,
      persist: false,
      simProfile: 'instant',
      standIns: { [TOOL_BACKEND]: standIn.url },
      configPatch: (r) => ({
        ...r,
        models: [...r.models, { id: TOOL_MODEL, served_name: 'org/tool-model' }],
        backends: [...r.backends, { id: TOOL_BACKEND, kind: 'vllm', region: 'us-east', url: standIn.url, models: [TOOL_MODEL] }],
        tenants: { ...r.tenants, acme: { ...r.tenants!.acme, models: ['llama-3.1-8b'], limits: { key: { requests: 2, window_s: 600 } } } },
      }),
    });
    return { stack, standIn, close: async () => void (await Promise.allSettled([stack.close(), standIn.close()])) };
  } catch (e) {
    await standIn.close();
    throw e;
  }
}
