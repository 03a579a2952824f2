import type { Fake } from './common';
import { startModalFake, type ModalFakeOptions } from './modal';
import { startReplicateFake, type ReplicateFakeOptions } from './replicate';
import { startTritonFake, type TritonFakeOptions } from './triton';

export type { Fake, RecordedCall } from './common';
export { startModalFake, startReplicateFake, startTritonFake };

export const fakeKinds = ['modal', 'replicate', 'triton'] as const;
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
  }
}
