// Files API storage (README "Batch and async"): one R2 object per file, key "<tenant>/<file id>",
// OpenAI's file fields in its custom metadata. Shared by the routes (worker/routes/files.ts) and
// BatchStore, which writes a batch's output and error files.

export const FILE_PURPOSES = ['batch', 'batch_output'] as const;
export type FilePurpose = (typeof FILE_PURPOSES)[number];

/** Our ids: "file-" + 24 hex digits; anything else is a missing file (never a path into the bucket). */
export const FILE_ID_RE = /^file-[0-9a-f]{24}$/;

/** OpenAI's File object. */
export interface FileObject {
  id: string;
  object: 'file';
  bytes: number;
  created_at: number;
  expires_at: number | null;
  filename: string;
  purpose: FilePurpose;
  status: 'processed';
  status_details: null;
}

export const fileKey = (tenant: string, id: string): string => `${tenant}/${id}`;

export function newFileId(): string {
  const b = crypto.getRandomValues(new Uint8Array(12));
  return `file-${[...b].map((x) => x.toString(16).padStart(2, '0')).join('')}`;
}

/** The File object of a stored R2 object (its metadata as putFile wrote it). */
export function fileObjectOf(id: string, o: { size: number; customMetadata?: Record<string, string> }): FileObject {
  const m = o.customMetadata ?? {};
  return {
    id,
    object: 'file',
    bytes: o.size,
    created_at: Number(m.created_at ?? 0),
    expires_at: null,
    filename: m.filename ?? id,
    purpose: (m.purpose === 'batch_output' ? 'batch_output' : 'batch') as FilePurpose,
    status: 'processed',
    status_details: null,
  };
}

/** Stores a file for a tenant; returns its File object. */
export async function putFile(bucket: R2Bucket, tenant: string, f: { filename: string; purpose: FilePurpose; body: string | ArrayBuffer | Uint8Array }, now = Date.now()): Promise<FileObject> {
  const id = newFileId();
  const meta = { filename: f.filename, purpose: f.purpose, created_at: String(Math.floor(now / 1000)), tenant };
  const o = await bucket.put(fileKey(tenant, id), f.body, { customMetadata: meta, httpMetadata: { contentType: 'application/jsonl' } });
  if (!o) throw new Error('R2 put returned null');
  return fileObjectOf(id, o);
}
