// What the crash child writes, so the test can compute the state after any
// prefix of its commits.
import { createHash } from 'node:crypto';

export const SLOTS = 16;

/** Deterministic bytes for commit `n`, 1 to ~6 KiB so commits span pages. */
export function commitContent(n: number): Uint8Array {
  const seed = createHash('sha256').update(String(n)).digest();
  const length = 1 + ((n * 2654435761) % 6000);
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = seed[i % seed.length]! ^ (i & 0xff);
  return out;
}
