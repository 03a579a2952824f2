import { startAnthropicFake, type AnthropicFakeOptions } from './anthropic';
import { startBedrockFake, type BedrockFakeOptions } from './bedrock';
import type { Fake } from './common';
import { startModalFake, type ModalFakeOptions } from './modal';
import { startAzureFake, startOpenAIFake, type AzureFakeOptions, type OpenAIFakeOptions } from './openai-api';
import { startReplicateFake, type ReplicateFakeOptions } from './replicate';
import { startTritonFake, type TritonFakeOptions } from './triton';
import { startVertexFake, type VertexFakeOptions } from './vertex';

export type { Fake, RecordedCall } from './common';
export { startAnthropicFake, startAzureFake, startBedrockFake, startModalFake, startOpenAIFake, startReplicateFake, startTritonFake, startVertexFake };

export const fakeKinds = ['modal', 'replicate', 'triton', 'openai', 'azure', 'anthropic', 'bedrock', 'vertex'] as const;
export type FakeKind = (typeof fakeKinds)[number];

/** A stand-in server of one backend kind, on a free loopback port. */
export function startFakeBackend(kind: FakeKind, options: Record<string, unknown> = {}): Promise<Fake> {
  switch (kind) {
    case 'modal':
      return startModalFake(options as ModalFakeOptions);
    case 'replicate':
      return startReplicateFake(options as ReplicateFakeOptions);
    case 'triton':
      return startTritonFake(options as TritonFakeOptions);
    case 'openai':
      return startOpenAIFake(options as unknown as OpenAIFakeOptions);
    case 'azure':
      return startAzureFake(options as unknown as AzureFakeOptions);
    case 'anthropic':
      return startAnthropicFake(options as unknown as AnthropicFakeOptions);
    case 'bedrock':
      return startBedrockFake(options as unknown as BedrockFakeOptions);
    case 'vertex':
      return startVertexFake(options as unknown as VertexFakeOptions);
  }
}
