// The guest's serial console as the launcher sees it: every byte goes to the
// console log on the stick; the first byte is the guest's sign of life (the
// accelerator fallback waits for it); an attached terminal may listen too.
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { LOG_LIMITS, type LogWriter, openStickLog } from '../primitives/capped-log.ts';

/** Printed by the payload's init once qemu-ga runs (see payload/rootfs/init). */
export const READY_MARKER = 'POCKETVM_READY';

/**
 * The console log's bound on the stick: a guest printing in a loop must not
 * fill the stick (which would pause the guest, src/session/stick-full.ts).
 * The start of the log (the boot) is what explains a failure; past the bound
 * one line says the rest was not kept (src/primitives/capped-log.ts). An attached
 * terminal still sees it all.
 */
export const CONSOLE_LOG_MAX_BYTES = LOG_LIMITS.console.maxBytes;

/** How much recent console output `launcher console` replays on attach. */
export const CONSOLE_HISTORY_BYTES = 64 * 1024;

export class ConsoleTap extends EventEmitter<{ data: [Buffer]; life: []; marker: [] }> {
  readonly stream: Duplex;
  readonly #log: LogWriter;
  #firstByteAt: number | undefined;
  #markerSeen = false;
  #recent = '';
  /** The newest console bytes, for `launcher console` to show before the live output (its history, as zlogin -C shows). */
  #history: Buffer[] = [];
  #historyBytes = 0;

  constructor(stream: Duplex, logFile: string, options: { maxLogBytes?: number } = {}) {
    super();
    this.stream = stream;
    // On the stick, which may be pulled out: the log's writer swallows a failed write.
    this.#log = openStickLog(logFile, { ...LOG_LIMITS.console, maxBytes: options.maxLogBytes ?? CONSOLE_LOG_MAX_BYTES });
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.on('error', () => {});
    stream.on('close', () => void this.#log.close());
  }

  #onData(chunk: Buffer): void {
    this.#log.write(chunk);
    this.#history.push(chunk);
    this.#historyBytes += chunk.length;
    while (this.#historyBytes > CONSOLE_HISTORY_BYTES && this.#history.length > 1) this.#historyBytes -= this.#history.shift()!.length;
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

  /** Up to the last CONSOLE_HISTORY_BYTES the guest printed. */
  history(): Buffer {
    return Buffer.concat(this.#history).subarray(-CONSOLE_HISTORY_BYTES);
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
