// The guest's serial console as the launcher sees it: every byte goes to the
// console log on the stick; the first byte is the guest's sign of life (the
// accelerator fallback waits for it); an attached terminal may listen too.
import { EventEmitter } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Duplex } from 'node:stream';

/** Printed by the payload's init once qemu-ga runs (see payload/rootfs/init). */
export const READY_MARKER = 'POCKETVM_READY';

/**
 * The console log's bound on the stick: a guest printing in a loop must not
 * fill the stick (which would pause the guest, src/session/stick-full.ts).
 * The start of the log (the boot) is what explains a failure; past the bound
 * one line says the rest was not kept. An attached terminal still sees it all.
 */
export const CONSOLE_LOG_MAX_BYTES = 8 * 1024 * 1024;

export class ConsoleTap extends EventEmitter<{ data: [Buffer]; life: []; marker: [] }> {
  readonly stream: Duplex;
  readonly #log: WriteStream;
  #firstByteAt: number | undefined;
  #markerSeen = false;
  #recent = '';
  #logged = 0;
  readonly #maxLogBytes: number;

  constructor(stream: Duplex, logFile: string, options: { maxLogBytes?: number } = {}) {
    super();
    this.#maxLogBytes = options.maxLogBytes ?? CONSOLE_LOG_MAX_BYTES;
    this.stream = stream;
    this.#log = createWriteStream(logFile, { flags: 'w' });
    // The log is on the stick, which may be pulled out: losing the log is no reason to crash.
    this.#log.on('error', () => {});
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.on('error', () => {});
    stream.on('close', () => this.#log.end());
  }

  #onData(chunk: Buffer): void {
    this.#writeLog(chunk);
    if (this.#firstByteAt === undefined) {
      this.#firstByteAt = performance.now();
      this.emit('life');
    }
    if (!this.#markerSeen) {
      this.#recent = (this.#recent + chunk.toString('latin1')).slice(-256);
      if (this.#recent.includes(READY_MARKER)) {
        this.#markerSeen = true;
        this.emit('marker');
      }
    }
    this.emit('data', chunk);
  }

  #writeLog(chunk: Buffer): void {
    if (this.#logged >= this.#maxLogBytes) return;
    const room = this.#maxLogBytes - this.#logged;
    this.#logged += chunk.length;
    if (chunk.length <= room) {
      this.#log.write(chunk);
      return;
    }
    this.#log.write(chunk.subarray(0, room));
    this.#log.write(`\n[pocketvm: the console log stops here, at ${Math.round(this.#maxLogBytes / 1024 ** 2)} MiB; the rest of the console was not kept]\n`);
  }

  get firstByteAt(): number | undefined {
    return this.#firstByteAt;
  }

  /** Resolves at the first console byte; never rejects (callers race it with a timer). */
  signOfLife(): Promise<void> {
    if (this.#firstByteAt !== undefined) return Promise.resolve();
    return new Promise((resolve) => this.once('life', () => resolve()));
  }

  /** Types into the guest's console. */
  write(data: Buffer | string): void {
    if (!this.stream.destroyed) this.stream.write(data);
  }
}
