// AES-256-GCM on a worker thread, for the saved-state streams. Between the
// launcher and QEMU there is only a socket buffer of a few hundred KiB: while
// the main thread spends a millisecond sealing or opening a 1 MiB chunk, QEMU
// waits on that socket. With the cipher on a worker, the main thread only
// moves bytes and QEMU keeps streaming (a resume of a full 512 MiB guest was
// ~2× faster this way here). Jobs are answered in the order they were sent.
//
// The worker's code is a string run with `eval`: the self-contained
// executable (one bundled script) has no module file to start a worker from.
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createCipheriv, createDecipheriv } = require('node:crypto');
const key = Buffer.from(workerData.key);
const own = (b) => b.byteOffset === 0 && b.byteLength === b.buffer.byteLength;
parentPort.on('message', (job) => {
  if (job === 'close') { key.fill(0); parentPort.close(); return; }
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

/** Thrown for a job whose tag did not verify (the caller names the chunk). */
export class GcmAuthError extends Error {}

export class GcmWorker {
  readonly #worker: Worker;
  readonly #waiting: Array<{ resolve: (result: GcmResult) => void; reject: (error: Error) => void }> = [];
  #failure: Error | undefined;

  constructor(key: Buffer) {
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { key: new Uint8Array(key) } });
    // A saved-state stream must not keep the launcher alive on its own.
    this.#worker.unref();
    this.#worker.on('message', (message: { ok: boolean; data?: Uint8Array; tag?: Uint8Array }) => {
      const next = this.#waiting.shift();
      if (!next) return;
      if (!message.ok || !message.data) return next.reject(new GcmAuthError('the chunk does not verify'));
      const data = Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength);
      next.resolve(message.tag ? { data, tag: Buffer.from(message.tag) } : { data });
    });
    this.#worker.on('error', (error) => this.#fail(error));
    this.#worker.on('exit', () => this.#fail(new Error('the cipher worker ended')));
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const waiter of this.#waiting.splice(0)) waiter.reject(error);
  }

  run(job: GcmJob): Promise<GcmResult> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      // Exact copies, the data's moved: a view posted as it is would clone its
      // whole backing buffer (a read chunk, Node's pool), and the caller's
      // buffer stays theirs.
      const data = job.transfer ? job.data : new Uint8Array(job.data);
      const tag = job.tag && (job.transfer ? job.tag : new Uint8Array(job.tag));
      this.#worker.postMessage({ nonce: new Uint8Array(job.nonce), aad: new Uint8Array(job.aad), data, ...(tag ? { tag } : {}) }, [data.buffer as ArrayBuffer]);
    });
  }

  /** Ends the worker once the jobs sent are answered (it zeroes its key copy). */
  close(): void {
    this.#worker.postMessage('close');
  }
}
