import { sha256Hex } from '../async/store';

// The request's fingerprint for Idempotency-Key (README "Idempotency"): SHA-256 over the method,
// path, Prefer header and body bytes. A multipart body's boundary is random per encoding (fetch and
// the SDKs draw a new one each time a FormData is sent, retries included), so it is left out: the
// body is hashed as the pieces between its boundary markers.

const BOUNDARY_RE = /boundary=(?:"([^"]{1,200})"|([^;\s]{1,200}))/i;

export async function fingerprint(path: string, prefer: string, contentType: string, body: Uint8Array): Promise<string> {
  const head = new TextEncoder().encode(`POST ${path}\n${prefer}\n`);
  const m = /^multipart\//i.test(contentType) ? BOUNDARY_RE.exec(contentType) : null;
  const boundary = m ? (m[1] ?? m[2])! : null;
  const pieces = boundary ? splitOn(body, new TextEncoder().encode(`--${boundary}`)) : [body];
  const SEP = new Uint8Array([0, 0x42, 0]); // between pieces, where a boundary was
  const size = head.byteLength + pieces.reduce((n, p) => n + p.byteLength, 0) + SEP.byteLength * (pieces.length - 1);
  const out = new Uint8Array(size);
  out.set(head, 0);
  let at = head.byteLength;
  pieces.forEach((p, i) => {
    if (i > 0) {
      out.set(SEP, at);
      at += SEP.byteLength;
    }
    out.set(p, at);
    at += p.byteLength;
  });
  return sha256Hex(out.buffer);
}

/** The slices of `data` between occurrences of `needle` (views, no copies). */
function splitOn(data: Uint8Array, needle: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const first = needle[0]!;
  let start = 0;
  let i = data.indexOf(first, 0);
  while (i !== -1 && i + needle.byteLength <= data.byteLength) {
    let match = true;
    for (let k = 1; k < needle.byteLength; k++) {
      if (data[i + k] !== needle[k]) {
        match = false;
        break;
      }
    }
    if (match) {
      out.push(data.subarray(start, i));
      start = i + needle.byteLength;
      i = data.indexOf(first, start);
    } else {
      i = data.indexOf(first, i + 1);
    }
  }
  out.push(data.subarray(start));
  return out;
}
