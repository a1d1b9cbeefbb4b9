// The worker threads that seal and open the layer stores' blocks
// (sealed-file.ts), and the run buffers that travel to them and back.
//
// Through a guest, a sealed read was 0.21x of the same read unsealed: the
// event loop opened every 64 KiB block itself (AES-256-GCM, a fresh output
// Buffer and its garbage per block), so the guest's next Tread waited for
// all of it. On workers, the event loop only reads the ciphertext and copies
// the plaintext out; two workers open a 1 MiB Tread's four runs side by side.
//
// One pool for the process (GcmWorker, src/vmm/gcm-worker.ts): its batches
// carry their file's key as a KeyObject, so a worker serves every sealed
// file of every store and holds no key between batches. Started on first
// use; idle workers do not keep the process alive. They run at the lowest
// priority (background, gcm-worker.ts): on two cores the guest's vCPU and
// the event loop come first.
import { availableParallelism } from 'node:os';
import { type GcmBatch, type GcmBatchResult, GcmWorker } from '../../vmm/gcm-worker.ts';

/** Two: a 1 MiB read's runs overlap on two cores; more would only queue for them. */
const WORKERS = Math.max(1, Math.min(2, availableParallelism()));
/** Run buffers kept for the next run (256 KiB to 1 MiB each): a file read in order holds up to 3 MiB (1 kept, 2 read ahead), a write 2 MiB. */
const FREE_BUFFERS = 32;

const workers: GcmWorker[] = [];

/** Seal or open a batch on the least busy worker (a failed one is replaced). */
export function runOnPool(batch: GcmBatch): Promise<GcmBatchResult> {
  for (let i = workers.length - 1; i >= 0; i--) if (workers[i]!.failed) workers.splice(i, 1);
  let worker: GcmWorker | undefined;
  if (workers.length < WORKERS && !workers.some((w) => w.pending === 0)) {
    worker = new GcmWorker(undefined, { background: true });
    workers.push(worker);
  } else {
    worker = workers.reduce((a, b) => (b.pending < a.pending ? b : a));
  }
  return worker.runBatch(batch);
}

/** Ends the pool's workers (tests: a worker that dies is replaced at the next batch). */
export function closePool(): void {
  for (const worker of workers.splice(0)) worker.close();
}

const free: ArrayBuffer[] = [];

/**
 * A buffer of `size` bytes, uninitialised, at offset 0 of an ArrayBuffer of
 * its own (so it can be moved to a worker); one given back when one fits
 * (fresh memory costs its page faults each time).
 */
export function takeRunBuffer(size: number): Buffer {
  // The smallest that fits: a 256 KiB run must not take the buffer a 1 MiB run would have used again.
  let fit = -1;
  for (let i = 0; i < free.length; i++) if (free[i]!.byteLength >= size && (fit < 0 || free[i]!.byteLength < free[fit]!.byteLength)) fit = i;
  const memory = fit < 0 ? (Buffer.allocUnsafeSlow(size).buffer as ArrayBuffer) : free.splice(fit, 1)[0]!;
  return Buffer.from(memory, 0, size);
}

/** `memory` is no longer used; whoever gives back plaintext zeroes it first. */
export function giveBackRunBuffer(memory: ArrayBuffer): void {
  if (memory.byteLength > 0 && free.length < FREE_BUFFERS && !free.includes(memory)) free.push(memory);
}
