/**
 * An isolate's semantic-index stores, written in batches per tenant (DurableObjectSemanticIndex,
 * index-store.ts): one call and one SQLite transaction (SemanticIndex.storeMany) for every store
 * that arrived while the previous call was in flight, instead of one call and one transaction
 * each. No timer: a store with nothing in flight goes at once; under load the batches grow by
 * themselves.
 *
 * Every store settles, and only when its entry is written (or its batch failed): `add` resolves
 * then, so the caller's waitUntil holds it. The request that found nothing in flight runs the
 * writes (its own and those that pile up meanwhile: the I/O belongs to its context) for at most
 * `maxRounds` batches; if more are waiting then, the first waiting store's request takes over, in
 * its own context, so that no request's waitUntil grows without bound under steady load.
 */
interface Settle {
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

interface Waiting<T> {
  item: T;
  done: Settle;
  /** Resolved when this store's request is to run the writes (the previous runner stopped). */
  turn: Settle;
}

function settle(): Settle {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export class StoreBatches<T> {
  /** Per key: the stores not yet taken into a batch; present while a runner is writing (or handing over). */
  private readonly queues = new Map<string, Waiting<T>[]>();

  constructor(
    private readonly write: (key: string, batch: T[]) => Promise<unknown>,
    private readonly maxBatch = 32,
    private readonly maxRounds = 8,
  ) {}

  add(key: string, item: T): Promise<void> {
    const w: Waiting<T> = { item, done: settle(), turn: settle() };
    w.done.promise.catch(() => {}); // settled before anyone awaits it, at times: not an unhandled rejection
    const queue = this.queues.get(key);
    if (!queue) {
      const fresh = [w];
      this.queues.set(key, fresh);
      return this.run(key, fresh).then(() => w.done.promise);
    }
    queue.push(w);
    return Promise.race([w.done.promise, w.turn.promise.then(() => this.run(key, queue).then(() => w.done.promise))]);
  }

  /** Stores waiting for a batch (tests). */
  waiting(key: string): number {
    return this.queues.get(key)?.length ?? 0;
  }

  private async run(key: string, queue: Waiting<T>[]): Promise<void> {
    try {
      for (let round = 0; round < this.maxRounds && queue.length > 0; round++) {
        const batch = queue.splice(0, this.maxBatch);
        try {
          await this.write(key, batch.map((w) => w.item));
          for (const w of batch) w.done.resolve();
        } catch (e) {
          for (const w of batch) w.done.reject(e);
        }
      }
    } finally {
      if (queue.length > 0) queue[0]!.turn.resolve();
      else this.queues.delete(key);
    }
  }
}
