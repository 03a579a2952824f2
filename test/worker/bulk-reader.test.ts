import { describe, expect, it } from 'vitest';
import { BULK_READ_BYTES, bulkReader } from '../../worker/http/bulk-reader';

/** A byte stream (what fetch bodies are) that yields `pieces` one per pull, each after a macrotask, as a network would. */
function byteStream(pieces: Uint8Array[]) {
  let i = 0;
  const stream = new ReadableStream({
    type: 'bytes',
    async pull(controller) {
      await new Promise((r) => setTimeout(r, 0));
      if (i < pieces.length) controller.enqueue(pieces[i++]!.slice());
      else controller.close();
    },
  });
  return stream;
}

const piecesOf = (n: number, size: number) => Array.from({ length: n }, (_, k) => new Uint8Array(size).fill(k % 251));
const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
};

/** Reads to the end, copying each chunk before the next read (the reader reuses its buffer). */
async function readAll(reader: ReturnType<typeof bulkReader>) {
  const chunks: Uint8Array[] = [];
  for (;;) {
    const r = await reader.read();
    if (r.done) return chunks;
    chunks.push(r.value.slice());
  }
}

describe('bulkReader', () => {
  it('hands over the first bytes at once, then reads the rest a full buffer at a time, every byte in order', async () => {
    const pieces = piecesOf(300, 300); // 90,000 bytes in 300 small writes
    const stream = byteStream(pieces);
    const chunks = await readAll(bulkReader(stream));
    expect(chunks[0]!.byteLength).toBe(300); // the first read waits for nothing more: it is the time to first token
    expect(concat(chunks)).toEqual(concat(pieces));
    // 300 pieces came in the first read, full buffers and the rest: 13 reads, not 300.
    expect(chunks.length).toBe(1 + Math.ceil((90_000 - 300) / BULK_READ_BYTES));
    for (const c of chunks.slice(1, -1)) expect(c.byteLength).toBe(BULK_READ_BYTES);
  });

  it('gives the bytes that came with the end of the stream, then done, then done again', async () => {
    const pieces = [new Uint8Array([1, 2, 3]), new Uint8Array([4, 5]), new Uint8Array([6])];
    const stream = byteStream(pieces);
    const reader = bulkReader(stream);
    const chunks = await readAll(reader);
    expect(concat(chunks)).toEqual(new Uint8Array([1, 2, 3, 4, 5, 6]));
    expect((await reader.read()).done).toBe(true);
  });

  it('reads a stream that is not a byte stream (a translating adapter) chunk by chunk, all of it', async () => {
    const pieces = piecesOf(5, 10);
    let i = 0;
    const stream = new ReadableStream<Uint8Array>({ pull: (c) => (i < pieces.length ? c.enqueue(pieces[i++]!) : c.close()) });
    const chunks = await readAll(bulkReader(stream));
    expect(chunks).toHaveLength(5);
    expect(concat(chunks)).toEqual(concat(pieces));
  });

  it('reads a fetch body (a native byte stream) to the end', async () => {
    const text = 'data: x\n\n'.repeat(10_000);
    const res = new Response(new Blob([text]).stream());
    const chunks = await readAll(bulkReader(res.body!));
    expect(new TextDecoder().decode(concat(chunks))).toBe(text);
  });

  it('cancel reaches the source', async () => {
    let reason: unknown;
    const stream = new ReadableStream({ type: 'bytes', pull: (c) => c.enqueue(new Uint8Array(4)), cancel: (r) => void (reason = r) });
    const reader = bulkReader(stream);
    await reader.read();
    await reader.cancel('client left');
    expect(reason).toBe('client left');
  });
});
