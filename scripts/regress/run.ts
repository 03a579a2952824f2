/** Runs a golden set against one version of a deployment and scores every answer. */
import type { GoldenCase } from './golden';
import type { InferenceClient } from './router-client';
import { RouterError } from './router-client';
import { cosine, exactMatch, rougeL } from './scorers';
import type { CaseResult } from './verdict';

export interface RunOptions {
  client: InferenceClient;
  deployment: string;
  version: string;
  adminToken: string;
  concurrency: number;
  embeddingModel: string;
  /** Embeddings of expected answers already fetched (shared between the candidate's and stable's runs). */
  expectedVectors?: Map<string, number[]>;
  onProgress?: (done: number, total: number) => void;
}

/** Statuses that say the run itself is misconfigured (key, token, deployment, version): stop, do not score. */
const FATAL = new Set([401, 403, 404]);

/** Runs `fn` over `items` with at most `n` at a time; results in input order. */
export async function pool<T, R>(items: readonly T[], n: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (next < items.length && !failed) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!, i);
      } catch (e) {
        failed = true; // the other workers stop taking items
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  return out;
}

export async function answers(cases: readonly GoldenCase[], o: RunOptions): Promise<Array<{ got: string | null; error: string | null }>> {
  let done = 0;
  return pool(cases, o.concurrency, async (c) => {
    try {
      const got = await o.client.chat(o.deployment, o.version, o.adminToken, c.messages);
      return { got, error: null };
    } catch (e) {
      if (e instanceof RouterError && (FATAL.has(e.status) || e.code === 'version_not_pinned')) throw e;
      return { got: null, error: e instanceof Error ? e.message : String(e) };
    } finally {
      o.onProgress?.(++done, cases.length);
    }
  });
}

export async function runVersion(cases: readonly GoldenCase[], o: RunOptions): Promise<CaseResult[]> {
  const got = await answers(cases, o);
  // Embedding cases: one batched pass for the expected texts not seen yet, one for the answers.
  const vectors = o.expectedVectors ?? new Map<string, number[]>();
  const embedIdx = cases.flatMap((c, i) => (c.metric === 'embedding' && got[i]!.error === null ? [i] : []));
  const missing = [...new Set(embedIdx.map((i) => cases[i]!.expected).filter((t) => !vectors.has(t)))];
  if (missing.length) (await o.client.embed(o.embeddingModel, missing)).forEach((v, k) => vectors.set(missing[k]!, v));
  const gotVectors = embedIdx.length ? await o.client.embed(o.embeddingModel, embedIdx.map((i) => got[i]!.got!)) : [];
  const gotVector = new Map(embedIdx.map((i, k) => [i, gotVectors[k]!]));

  return cases.map((c, i) => {
    const { got: text, error } = got[i]!;
    let score = 0;
    if (text !== null) {
      if (c.metric === 'exact') score = exactMatch(text, c.expected);
      else if (c.metric === 'rouge_l') score = rougeL(text, c.expected);
      else score = cosine(gotVector.get(i)!, vectors.get(c.expected)!);
    }
    return { case: c, got: text, error, score, passed: error === null && score >= c.threshold };
  });
}
