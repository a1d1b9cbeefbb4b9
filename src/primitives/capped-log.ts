// Every log the session writes on the stick goes through here: a guest that
// floods errors must not be able to grow a log without bound (a full stick
// pauses the guest, src/session/stick-full.ts) nor bury what explains a
// failure under a million copies of one line.
//
// A log has a cap in bytes it never passes: the line that would cross it is
// replaced by one line saying the log stops there. Line logs (the transport
// log, the session log) also coalesce a line repeated in a row into one
// "repeated N times" line and, past a burst, keep at most a steady number of
// lines a second, saying how many were dropped. Byte logs (the console) are
// the guest's screen, kept byte for byte up to the cap.
//
// Policy on opening (docs/unplug-and-suspend.md, "Logs on the stick"): a log
// kept across sessions is moved aside to `<log>.1` (replacing an older one) once it
// holds half its cap, and started afresh; a log started fresh at each boot
// (the console) is truncated. So one log never takes more than twice its cap.
import { createWriteStream, renameSync, statSync } from 'node:fs';

export interface LogLimits {
  /** The file never grows past this (this session's writes plus what it held when opened). */
  maxBytes: number;
  /** `lines`: coalesced and rate-limited; `bytes`: written as they come, up to the cap. */
  mode: 'lines' | 'bytes';
  /** Lines a second kept once the burst is spent (lines mode). */
  linesPerSecond?: number;
  /** Lines kept at once before the rate applies (lines mode). */
  burst?: number;
  /** `append`: kept across sessions (moved to `.1` past half its cap); `fresh`: emptied at open. */
  open: 'append' | 'fresh';
}

const MiB = 1024 * 1024;

/** The caps of the session's logs (docs/unplug-and-suspend.md, "Logs on the stick"). */
export const LOG_LIMITS = {
  /** `run/<guest>.console.log`: the guest's serial console, from its boot. */
  console: { maxBytes: 8 * MiB, mode: 'bytes', open: 'fresh' },
  /** `run/<guest>.qemu.log`: QEMU's stderr and the launcher's transport notes (9P, registry channel). */
  transport: { maxBytes: 4 * MiB, mode: 'lines', linesPerSecond: 20, burst: 200, open: 'append' },
  /** `run/session.log`: what a detached session prints. */
  session: { maxBytes: 2 * MiB, mode: 'lines', linesPerSecond: 20, burst: 200, open: 'append' },
} as const satisfies Record<string, LogLimits>;

/** A line longer than this is cut (a guest-chosen message cannot make one huge line). */
export const MAX_LINE_BYTES = 4096;
/** Room kept below the cap for the line that says the log stops. */
const CAP_NOTE_RESERVE = 256;
/** How soon a pending "repeated"/"dropped" count is written when the flood stops. */
const NOTE_DELAY_MS = 1000;

/** Where a log's bytes go: a file on the stick, or a stream that already is one. */
export interface LogSink {
  write(data: string | Buffer): void;
  end(): Promise<void>;
}

/** A writer of one log, with its own unfinished line (several may share a log). */
export interface LogWriter {
  /** Bytes as they come (lines mode splits them into lines). */
  write(chunk: string | Buffer): void;
  /** One line, without its newline. */
  line(text: string): void;
  /** Done with this writer; the log is closed when its last writer is. */
  close(): Promise<void>;
}

export class CappedLog {
  readonly #sink: LogSink;
  readonly #limits: LogLimits;
  readonly #now: () => number;
  #size: number;
  #full = false;
  #closed = false;
  #last: string | undefined;
  #repeats = 0;
  #dropped = 0;
  #tokens: number;
  #refilledAt: number;
  #noteTimer: NodeJS.Timeout | undefined;

  constructor(sink: LogSink, limits: LogLimits, options: { initialBytes?: number; now?: () => number } = {}) {
    this.#sink = sink;
    this.#limits = limits;
    this.#now = options.now ?? (() => performance.now());
    this.#size = options.initialBytes ?? 0;
    this.#tokens = limits.burst ?? Infinity;
    this.#refilledAt = this.#now();
  }

  /** Bytes in the file: what it held when opened plus what this log wrote. */
  get size(): number {
    return this.#size;
  }

  /** A writer with its own partial line. */
  writer(onClose: () => Promise<void> = () => Promise.resolve()): LogWriter {
    let partial = '';
    const takeLines = (text: string) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      // A flood without newlines is cut into lines rather than held in memory.
      while (Buffer.byteLength(partial) > MAX_LINE_BYTES) {
        this.line(partial.slice(0, MAX_LINE_BYTES));
        partial = partial.slice(MAX_LINE_BYTES);
      }
      for (const line of lines) this.line(line);
    };
    return {
      write: (chunk) => {
        if (this.#limits.mode === 'bytes') this.#bytes(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
        else takeLines(typeof chunk === 'string' ? chunk : chunk.toString('utf8'));
      },
      line: (text) => this.line(text),
      close: async () => {
        if (partial) this.line(partial);
        partial = '';
        await onClose();
      },
    };
  }

  /** One line: coalesced with the one before if the same, rate-limited, capped. */
  line(text: string): void {
    if (this.#closed || this.#full) return;
    if (this.#limits.mode === 'bytes') return this.#bytes(Buffer.from(`${text}\n`));
    const clean = tidy(text);
    if (clean === this.#last) {
      this.#repeats++;
      this.#notesLater();
      return;
    }
    if (!this.#takeToken()) {
      this.#dropped++;
      // Lines were left out after the last one kept: the next is no repeat of it.
      this.#last = undefined;
      this.#notesLater();
      return;
    }
    this.#writeNotes();
    this.#last = clean;
    this.#emit(`${clean}\n`);
  }

  /** Writes the pending "repeated" and "dropped" counts now. */
  flushNotes(): void {
    if (this.#closed) return;
    this.#writeNotes();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#writeNotes();
    this.#closed = true;
    clearTimeout(this.#noteTimer);
    await this.#sink.end();
  }

  #takeToken(): boolean {
    const rate = this.#limits.linesPerSecond;
    if (rate === undefined) return true;
    const now = this.#now();
    this.#tokens = Math.min(this.#limits.burst ?? rate, this.#tokens + ((now - this.#refilledAt) / 1000) * rate);
    this.#refilledAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }

  #notesLater(): void {
    if (this.#noteTimer) return;
    this.#noteTimer = setTimeout(() => {
      this.#noteTimer = undefined;
      this.flushNotes();
    }, NOTE_DELAY_MS);
    this.#noteTimer.unref();
  }

  #writeNotes(): void {
    if (this.#repeats > 0) {
      this.#emit(`… the line above repeated ${this.#repeats} more time${this.#repeats === 1 ? '' : 's'}\n`);
      this.#repeats = 0;
    }
    if (this.#dropped > 0) {
      this.#emit(`… ${this.#dropped} line${this.#dropped === 1 ? '' : 's'} dropped (more than ${this.#limits.linesPerSecond} a second)\n`);
      this.#dropped = 0;
      // The next line is worth writing even if it equals the last one kept.
      this.#last = undefined;
    }
  }

  #emit(text: string): void {
    if (this.#full) return;
    const bytes = Buffer.byteLength(text);
    if (this.#size + bytes > this.#limits.maxBytes - CAP_NOTE_RESERVE) return this.#stop();
    this.#size += bytes;
    this.#sink.write(text);
  }

  #bytes(chunk: Buffer): void {
    if (this.#closed || this.#full) return;
    const room = this.#limits.maxBytes - CAP_NOTE_RESERVE - this.#size;
    if (chunk.length <= room) {
      this.#size += chunk.length;
      this.#sink.write(chunk);
      return;
    }
    if (room > 0) {
      this.#size += room;
      this.#sink.write(chunk.subarray(0, room));
    }
    this.#stop();
  }

  #stop(): void {
    this.#full = true;
    clearTimeout(this.#noteTimer);
    const note = `\n[pocketvm: this log stops here, at its cap of ${formatBytes(this.#limits.maxBytes)}; the rest of this session was not kept]\n`;
    this.#size += Buffer.byteLength(note);
    this.#sink.write(note);
  }
}

/** Control characters would let a guest-chosen message fake lines or move a terminal's cursor. */
function tidy(text: string): string {
  const clean = text.replace(/\r$/, '').replace(/[\x00-\x08\x0a-\x1f\x7f]/g, '?');
  if (Buffer.byteLength(clean) <= MAX_LINE_BYTES) return clean;
  return `${Buffer.from(clean)
    .subarray(0, MAX_LINE_BYTES)
    .toString('utf8')
    .replace(/\uFFFD$/, '')}…`;
}

function formatBytes(bytes: number): string {
  return bytes % MiB === 0 ? `${bytes / MiB} MiB` : `${Math.round(bytes / 1024)} KiB`;
}

/**
 * Applies the opening policy to a log file and says how many bytes it holds:
 * an `append` log at half its cap or more is moved to `<log>.1`; a `fresh`
 * one holds nothing (its opener truncates it).
 */
export function prepareLogFile(path: string, limits: LogLimits): number {
  if (limits.open === 'fresh') return 0;
  let size = 0;
  try {
    size = statSync(path).size;
  } catch {
    return 0;
  }
  if (size < limits.maxBytes / 2) return size;
  try {
    renameSync(path, `${path}.1`);
    return 0;
  } catch {
    // Cannot move it (a stick going away): the cap still holds, counting what is there.
    return size;
  }
}

/** A file on the stick as a sink: a failed write (the stick pulled out) ends the log, never the launcher. */
function fileSink(path: string, flags: 'a' | 'w'): LogSink {
  const stream = createWriteStream(path, { flags });
  stream.on('error', () => {});
  return {
    write: (data) => {
      if (!stream.destroyed && !stream.writableEnded) stream.write(data);
    },
    end: () =>
      new Promise<void>((resolve) => {
        if (stream.destroyed || stream.writableEnded) return resolve();
        stream.end(() => resolve());
        stream.once('error', () => resolve());
      }),
  };
}

/** How long closing a log waits for its file to be written out. */
const CLOSE_WAIT_MS = 1000;

const openLogs = new Map<string, { log: CappedLog; writers: number }>();

/**
 * A writer of the log at `path`. Writers of one path in this process share
 * one log, so its cap, coalescing and rate hold for all of them together
 * (QEMU's stderr and the 9P server both write the transport log); the file
 * is opened (and its policy applied) by the first, closed with the last.
 */
export function openStickLog(path: string, limits: LogLimits): LogWriter {
  let entry = openLogs.get(path);
  if (!entry) {
    const initialBytes = prepareLogFile(path, limits);
    entry = { log: new CappedLog(fileSink(path, limits.open === 'fresh' ? 'w' : 'a'), limits, { initialBytes }), writers: 0 };
    openLogs.set(path, entry);
  }
  const shared = entry;
  shared.writers++;
  let closed = false;
  return shared.log.writer(async () => {
    if (closed) return;
    closed = true;
    if (--shared.writers > 0) return;
    if (openLogs.get(path) === shared) openLogs.delete(path);
    // A stick that stops answering must not hold up a teardown: the file is
    // ended in the background past a short wait.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([shared.log.close(), new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT_MS).unref()))]);
    clearTimeout(timer);
  });
}
