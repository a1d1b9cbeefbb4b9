// AES-256-GCM on a worker thread, for the saved-state streams and for the
// sealed files of the layer stores (src/dyntable/sealed/cipher-pool.ts).
// Between the launcher and QEMU there is only a socket buffer of a few
// hundred KiB: while the main thread spends a millisecond sealing or opening
// a 1 MiB chunk, QEMU waits on that socket. With the cipher on a worker, the
// main thread only moves bytes and QEMU keeps streaming (a resume of a full
// 512 MiB guest was ~2× faster this way here). Jobs are answered in the order
// they were sent.
//
// Two kinds of job:
// - run: one message under the worker's own key (the state key's file key),
//   given as bytes when the worker starts.
// - batch: many blocks of one buffer, each sealed or opened in place, under a
//   key sent with the batch as a KeyObject (cloned natively by postMessage: its
//   bytes never appear in JavaScript on either side), so one worker serves
//   every sealed file. The buffer is moved to the worker and back, never
//   copied; ops say where each block's nonce, data, tag and output are.
//
// A background worker (the sealed files' pool) runs at the lowest priority
// (nice 19, Linux): what it does is read ahead or written behind, so it
// should take a core only when the guest's vCPU and the launcher's own
// thread leave one. On two cores, at the default priority it preempted
// them: the guest's time between an Rread and its next Tread was 1.31 ms
// (median; 90th percentile 3.9 ms) reading a sealed file, against 0.49 ms
// unsealed; at nice 19, 0.87 ms (2.2 ms).
//
// The worker's code is a string run with `eval`: the self-contained
// executable (one bundled script) has no module file to start a worker from.
import type { KeyObject } from 'node:crypto';
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createCipheriv, createDecipheriv } = require('node:crypto');
const key = workerData.key ? Buffer.from(workerData.key) : undefined;
if (workerData.background) {
  // This thread only, at the lowest priority (Linux: a thread's ID is a "pid" to setpriority).
  try {
    const tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop());
    require('node:os').setPriority(tid, 19);
  } catch {}
}
const own = (b) => b.byteOffset === 0 && b.byteLength === b.buffer.byteLength;
let zeros = Buffer.alloc(0);
const isZero = (buf, at, n) => {
  if (zeros.length < n) zeros = Buffer.alloc(n);
  return buf[at] === 0 && buf.subarray(at, at + n).equals(zeros.subarray(0, n));
};
const OP = 6;
function batch(job) {
  const buf = Buffer.from(job.buffer);
  const ops = job.ops, aadLength = job.aadLength;
  const aad = Buffer.from(job.aad.buffer, job.aad.byteOffset, job.aad.byteLength);
  let failed = -1;
  for (let i = 0; i * OP < ops.length; i++) {
    const nonceAt = ops[i * OP], dataAt = ops[i * OP + 1], length = ops[i * OP + 2], tagAt = ops[i * OP + 3], outAt = ops[i * OP + 4], aadAt = ops[i * OP + 5];
    const nonce = buf.subarray(nonceAt, nonceAt + 12), ad = aad.subarray(aadAt, aadAt + aadLength), data = buf.subarray(dataAt, dataAt + length);
    if (job.open) {
      if (job.holes && isZero(buf, nonceAt, 12) && isZero(buf, tagAt, 16) && isZero(buf, dataAt, length)) {
        buf.fill(0, outAt, outAt + length);
        continue;
      }
      try {
        const d = createDecipheriv('aes-256-gcm', job.key, nonce);
        d.setAAD(ad);
        d.setAuthTag(buf.subarray(tagAt, tagAt + 16));
        const out = d.update(data);
        d.final();
        out.copy(buf, outAt);
        out.fill(0);
      } catch {
        failed = i;
        break;
      }
    } else {
      const c = createCipheriv('aes-256-gcm', job.key, nonce);
      c.setAAD(ad);
      const out = c.update(data);
      c.final();
      out.copy(buf, outAt);
      c.getAuthTag().copy(buf, tagAt);
    }
  }
  // Nothing of a batch that did not verify goes back: not even the blocks before it.
  if (failed >= 0) buf.fill(0);
  parentPort.postMessage({ ok: true, batch: true, buffer: job.buffer, failed }, [job.buffer]);
}
parentPort.on('message', (job) => {
  if (job === 'close') { key?.fill(0); parentPort.close(); return; }
  if (job.ops) return batch(job);
  const nonce = Buffer.from(job.nonce), aad = Buffer.from(job.aad), data = Buffer.from(job.data.buffer, job.data.byteOffset, job.data.byteLength);
  try {
    if (job.tag) {
      const d = createDecipheriv('aes-256-gcm', key, nonce);
      d.setAAD(aad);
      d.setAuthTag(Buffer.from(job.tag));
      const out = d.update(data);
      const rest = d.final();
      const plain = rest.length ? Buffer.concat([out, rest]) : out;
      parentPort.postMessage({ ok: true, data: plain }, own(plain) ? [plain.buffer] : []);
    } else {
      const c = createCipheriv('aes-256-gcm', key, nonce);
      c.setAAD(aad);
      const out = c.update(data);
      const rest = c.final();
      const body = rest.length ? Buffer.concat([out, rest]) : out;
      parentPort.postMessage({ ok: true, data: body, tag: c.getAuthTag() }, own(body) ? [body.buffer] : []);
    }
  } catch {
    parentPort.postMessage({ ok: false });
  }
});
`;

export interface GcmJob {
  nonce: Buffer;
  aad: Buffer;
  data: Buffer;
  /** Given: verify and decrypt. Absent: encrypt. */
  tag?: Buffer;
  /**
   * `data` (and `tag`) are views into a buffer of their own that the caller
   * hands over: moved to the worker, not copied (the buffer is unusable after).
   */
  transfer?: boolean;
}

export interface GcmResult {
  data: Buffer;
  tag?: Buffer;
}

/** Numbers per op of a batch: nonceAt, dataAt, length, tagAt, outAt, aadAt. */
export const GCM_BATCH_OP = 6;

/**
 * Blocks of one buffer, each sealed or opened in place. Per op (GCM_BATCH_OP
 * numbers in `ops`): the 12-byte nonce at nonceAt, `length` bytes of data at
 * dataAt, the 16-byte tag at tagAt, the output (ciphertext or plaintext) to
 * outAt, associated data aad[aadAt, aadAt + aadLength). Sealing writes the
 * tag at tagAt. An op's output may overwrite its own input and earlier ops',
 * never a later op's.
 */
export interface GcmBatch {
  key: KeyObject;
  /** Moved to the worker and back (unusable by the caller until the result). */
  buffer: ArrayBuffer;
  ops: Uint32Array;
  aad: Uint8Array;
  aadLength: number;
  /** true: verify and decrypt; false: encrypt. */
  open: boolean;
  /** Opening: an op whose nonce, data and tag are all zero bytes is a hole (zeros out, nothing verified). */
  holes?: boolean;
}

export interface GcmBatchResult {
  buffer: ArrayBuffer;
  /** The first op that did not verify (the whole buffer is then zeroed), or -1. */
  failed: number;
}

/** Thrown for a job whose tag did not verify (the caller names the chunk). */
export class GcmAuthError extends Error {}

type Answer = { ok: boolean; data?: Uint8Array; tag?: Uint8Array; batch?: boolean; buffer?: ArrayBuffer; failed?: number };

export class GcmWorker {
  readonly #worker: Worker;
  readonly #waiting: Array<{ settle: (message: Answer) => void; reject: (error: Error) => void }> = [];
  #failure: Error | undefined;

  /** `key`: the key of run() jobs; batches bring their own. `background`: at the lowest priority (above). */
  constructor(key?: Buffer, options: { background?: boolean } = {}) {
    const copy = key ? new Uint8Array(key) : undefined;
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { key: copy, background: options.background === true } });
    // The worker has its own copy (cloned): this one is not needed any more.
    copy?.fill(0);
    // Idle, the worker must not keep the launcher alive on its own; a job in
    // flight does (ref'd while one is), or a process with nothing else to
    // wait on would end before the answer.
    this.#worker.unref();
    this.#worker.on('message', (message: Answer) => {
      const next = this.#waiting.shift();
      if (this.#waiting.length === 0) this.#worker.unref();
      next?.settle(message);
    });
    this.#worker.on('error', (error) => this.#fail(error));
    this.#worker.on('exit', () => this.#fail(new Error('the cipher worker ended')));
  }

  /** Jobs sent and not yet answered. */
  get pending(): number {
    return this.#waiting.length;
  }

  /** The worker ended or failed: every job is refused. */
  get failed(): boolean {
    return this.#failure !== undefined;
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const waiter of this.#waiting.splice(0)) waiter.reject(error);
  }

  #send(message: unknown, transfer: ArrayBuffer[], settle: (answer: Answer) => void, reject: (error: Error) => void): void {
    if (this.#waiting.length === 0) this.#worker.ref();
    this.#waiting.push({ settle, reject });
    this.#worker.postMessage(message, transfer);
  }

  run(job: GcmJob): Promise<GcmResult> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      // Exact copies, the data's moved: a view posted as it is would clone its
      // whole backing buffer (a read chunk, Node's pool), and the caller's
      // buffer stays theirs.
      const data = job.transfer ? job.data : new Uint8Array(job.data);
      const tag = job.tag && (job.transfer ? job.tag : new Uint8Array(job.tag));
      const settle = (message: Answer) => {
        if (!message.ok || !message.data) return reject(new GcmAuthError('the chunk does not verify'));
        const out = Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength);
        resolve(message.tag ? { data: out, tag: Buffer.from(message.tag) } : { data: out });
      };
      this.#send(
        { nonce: new Uint8Array(job.nonce), aad: new Uint8Array(job.aad), data, ...(tag ? { tag } : {}) },
        [data.buffer as ArrayBuffer],
        settle,
        reject,
      );
    });
  }

  /** Seals or opens the blocks of `batch.buffer` in place; the buffer comes back in the result. */
  runBatch(batch: GcmBatch): Promise<GcmBatchResult> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const settle = (message: Answer) => {
        if (!message.ok || !message.buffer) return reject(new Error('the cipher worker answered a batch with nothing'));
        resolve({ buffer: message.buffer, failed: message.failed ?? -1 });
      };
      const { key, buffer, ops, aad, aadLength, open, holes } = batch;
      this.#send({ key, buffer, ops, aad, aadLength, open, holes: holes === true }, [buffer], settle, reject);
    });
  }

  /** Ends the worker once the jobs sent are answered (it zeroes its key copy). */
  close(): void {
    this.#worker.postMessage('close');
  }
}
