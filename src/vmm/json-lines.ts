// Line framing shared by the QMP and guest-agent clients. Both peers send one
// JSON object per line ("\n" or "\r\n"). Chunks from the stream can split
// anywhere, including inside a multibyte UTF-8 sequence, so lines are cut on
// the 0x0A byte (which never occurs inside a UTF-8 sequence) and decoded only
// once complete. The buffered length is bounded: a peer that never sends a
// newline must not make us grow without limit.

import type { Duplex } from 'node:stream';

export const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;

export class LineTooLongError extends Error {
  readonly limit: number;

  constructor(limit: number) {
    super(`peer sent a line longer than ${limit} bytes without a newline`);
    this.name = 'LineTooLongError';
    this.limit = limit;
  }
}

export class LineSplitter {
  readonly maxLineBytes: number;
  // Pieces of the current, incomplete line; joined once when it completes so
  // a long line arriving in many small chunks costs O(n), not O(n^2).
  #pieces: Buffer[] = [];
  #pendingBytes = 0;

  constructor(maxLineBytes: number = DEFAULT_MAX_LINE_BYTES) {
    if (!Number.isInteger(maxLineBytes) || maxLineBytes <= 0) {
      throw new RangeError(`maxLineBytes must be a positive integer, got ${maxLineBytes}`);
    }
    this.maxLineBytes = maxLineBytes;
  }

  /** Bytes held for a line that has not ended yet. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /**
   * Feeds one chunk and returns the lines it completed, without their line
   * ending. Throws LineTooLongError (and drops the partial line) when a line
   * exceeds the limit; the splitter stays usable afterwards.
   */
  push(chunk: Uint8Array): string[] {
    const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const newline = data.indexOf(LF, start);
      if (newline === -1) break;
      const piece = data.subarray(start, newline);
      if (this.#pendingBytes + piece.length > this.maxLineBytes) {
        this.reset();
        throw new LineTooLongError(this.maxLineBytes);
      }
      let line = this.#pieces.length === 0 ? piece : Buffer.concat([...this.#pieces, piece]);
      this.reset();
      if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
      lines.push(line.toString('utf8'));
      start = newline + 1;
    }
    const rest = data.subarray(start);
    if (rest.length > 0) {
      if (this.#pendingBytes + rest.length > this.maxLineBytes) {
        this.reset();
        throw new LineTooLongError(this.maxLineBytes);
      }
      // Copy: the caller may reuse the chunk's memory.
      this.#pieces.push(Buffer.from(rest));
      this.#pendingBytes += rest.length;
    }
    return lines;
  }

  /** Drops any partial line. */
  reset(): void {
    this.#pieces = [];
    this.#pendingBytes = 0;
  }
}

export type JsonObject = Record<string, unknown>;

/** Parses one line that must hold a JSON object; throws SyntaxError otherwise. */
export function parseJsonObject(line: string): JsonObject {
  const value: unknown = JSON.parse(line);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new SyntaxError(`expected a JSON object, got ${Array.isArray(value) ? 'an array' : typeof value}`);
  }
  return value as JsonObject;
}

/** Shortens a line for an error message. */
export function excerpt(text: string, max = 120): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} chars)`;
}

/** The error an aborted operation rejects with: the signal's reason, or an AbortError. */
export function abortReason(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error) return reason;
  return new DOMException(reason === undefined ? 'This operation was aborted' : String(reason), 'AbortError');
}

/**
 * Ends our side of a stream and resolves once it has closed, destroying it if
 * the peer does not hang up within graceMs.
 */
export async function endStream(stream: Duplex, graceMs: number): Promise<void> {
  if (stream.destroyed) return;
  // Keep a listener so a late EPIPE does not become an uncaught error.
  stream.on('error', () => {});
  await new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      stream.off('close', done);
      resolve();
    };
    const timer = setTimeout(() => {
      stream.destroy();
      done();
    }, graceMs);
    stream.on('close', done);
    stream.end();
  });
}
