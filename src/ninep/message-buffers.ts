// Large 9P message buffers that are used again: Rread replies and placed
// Twrites. A fresh 512 KiB buffer per Tread cost more than the read itself:
// its memory is new to the process each time (malloc maps it, the kernel
// faults in and zeroes 128 pages, GC later unmaps it), 440 µs per 512 KiB
// read against 80 µs into a buffer already touched. So:
// - readBuffers: the server takes Rread buffers from here, and whoever last
//   needs a reply's bytes gives the buffer back: today the Ethernet
//   transport, once it has written a placed read's data into guest RAM (the
//   frame it sends then carries a copy of the header, nothing of the buffer).
// - writeBuffers: the Ethernet transport reads a placed Twrite's data out of
//   guest RAM into a buffer from here (a 1 MiB Twrite: 256 pages faulted in
//   and, every few dozen, a garbage collection for the external memory), and
//   the server gives it back once the Twrite is answered (a backend keeps no
//   view of a Twrite's data after its write settles: NinepHandle.write).
// A buffer nobody gives back is simply collected by the GC, so a consumer
// that does not know about these pools (a test's stream) is still correct.
//
// Buffers are recognised by their ArrayBuffer: a reply's bytes may come back
// as a view (a short read is a subarray) and only a buffer lent out and not
// yet returned goes back on the free list, so returning twice is harmless.
import { NAMESPACE_MSIZE } from './msize.ts';

/** The largest buffer kept: the largest message the namespace's msize allows. */
const CAPACITY = NAMESPACE_MSIZE;
/** Free buffers kept per pool: enough for the requests in flight at once; more are left to the GC. */
const MAX_FREE = 8;
/** Smaller messages come from Node's own slab, which is already cheap. */
const MIN_POOLED = 64 * 1024;

export class MessageBufferPool {
  readonly #free: ArrayBuffer[] = [];
  readonly #lent = new WeakSet<ArrayBuffer>();
  /** Buffers handed out again (for the benchmark's and the tests' counters). */
  reused = 0;

  /** A buffer of `size` bytes, uninitialised; a pooled one when `size` fits. */
  take(size: number): Buffer {
    if (size < MIN_POOLED || size > CAPACITY) return Buffer.allocUnsafe(size);
    // A free buffer big enough, else a new one of just this size: a reply
    // nobody gives back (nothing placed) then costs what allocUnsafe did.
    const fit = this.#free.findIndex((m) => m.byteLength >= size);
    let memory: ArrayBuffer;
    if (fit < 0) {
      // Uninitialised, like the allocUnsafe it replaces (an ArrayBuffer of its own would be zeroed).
      memory = Buffer.allocUnsafeSlow(size).buffer as ArrayBuffer;
    } else {
      memory = this.#free.splice(fit, 1)[0]!;
      this.reused++;
    }
    this.#lent.add(memory);
    return Buffer.from(memory, 0, size);
  }

  /**
   * The bytes of `view` (a buffer from take, or a view of one) are no longer
   * needed by anyone: its memory may be handed out again. Anything else is ignored.
   */
  giveBack(view: Uint8Array): void {
    const memory = view.buffer;
    if (!(memory instanceof ArrayBuffer) || !this.#lent.has(memory)) return;
    this.#lent.delete(memory);
    if (this.#free.length < MAX_FREE) this.#free.push(memory);
  }
}

/**
 * The process's Rread pool: the server takes from it and the transport gives
 * back to it, without either being handed the other.
 */
export const readBuffers = new MessageBufferPool();

/** The process's placed-Twrite pool: the transport takes from it, the server gives back to it. */
export const writeBuffers = new MessageBufferPool();
