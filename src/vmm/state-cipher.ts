// The saved-state file: QEMU's migration stream of a suspended guest, sealed
// so that the stick alone reveals nothing of the guest's memory and any change
// to the file (a flipped byte, a dropped, reordered or appended chunk, a cut
// at the end) is refused rather than loaded.
//
//   "PVMSTATE"          8 bytes
//   format version      u16 BE (1)
//   header length N     u32 BE
//   header              N bytes of JSON: the caller's metadata (what machine,
//                       saved where and when) and `cipher` (salt, nonce prefix,
//                       chunk size). Readable without the key, so a refusal can
//                       say why; authenticated by:
//   header tag          16 bytes: AES-256-GCM over an empty message with
//                       everything above as associated data (nonce counter 0)
//   frames              flags u8 (bit 0: final) | length u32 BE |
//                       ciphertext (≤ chunk size) | GCM tag (16 bytes)
//                       associated data: SHA-256(magic … header) | index u64 |
//                       flags | length; nonce: prefix (4 bytes) | index+1 u64
//
// The file key is HKDF-SHA256(state key, salt, "pocketvm vmstate file v1"):
// one key per file, so the nonce counter never repeats under a key. Binding
// each frame to the header digest and its index stops frames from moving
// between files or within one; the final flag, authenticated like the rest,
// makes a truncated file detectable (a reader that reaches the end without a
// final frame, or finds bytes after it, refuses). A reader passes on only
// frames that verified, so QEMU never parses an unauthenticated byte.
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { SavedStateError } from '../errors.ts';
import { GcmWorker } from './gcm-worker.ts';
import { ByteQueue } from '../primitives/byte-queue.ts';

export const STATE_MAGIC = Buffer.from('PVMSTATE', 'latin1');
export const STATE_FORMAT_VERSION = 1;
export const DEFAULT_STATE_CHUNK_BYTES = 1 << 20;
const FILE_KEY_INFO = 'pocketvm vmstate file v1';
const PREAMBLE_BYTES = STATE_MAGIC.length + 2 + 4;
const TAG_BYTES = 16;
const FRAME_HEAD_BYTES = 5;
const FINAL = 0x01;
const MAX_HEADER_BYTES = 64 * 1024;
const MAX_CHUNK_BYTES = 16 << 20;
/** Chunks handed to the cipher worker before the stream waits for the oldest. */
const WORKER_WINDOW = 8;

export interface StateCipherParams {
  algorithm: 'aes-256-gcm';
  kdf: 'hkdf-sha256';
  /** base64, 32 bytes: the file key's HKDF salt. */
  salt: string;
  /** base64, 4 bytes: the fixed part of every nonce. */
  noncePrefix: string;
  chunkBytes: number;
}

export type StateHeader<M> = M & { cipher: StateCipherParams };

function fileKey(stateKey: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', stateKey, salt, FILE_KEY_INFO, 32));
}

function nonce(prefix: Buffer, counter: number): Buffer {
  const value = Buffer.alloc(12);
  prefix.copy(value, 0, 0, 4);
  value.writeBigUInt64BE(BigInt(counter), 4);
  return value;
}

function frameAad(digest: Buffer, index: number, flags: number, length: number): Buffer {
  const aad = Buffer.alloc(digest.length + 8 + FRAME_HEAD_BYTES);
  digest.copy(aad, 0);
  aad.writeBigUInt64BE(BigInt(index), digest.length);
  aad.writeUInt8(flags, digest.length + 8);
  aad.writeUInt32BE(length, digest.length + 9);
  return aad;
}

function headerTag(key: Buffer, prefix: Buffer, head: Buffer): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, nonce(prefix, 0));
  cipher.setAAD(head);
  cipher.final();
  return cipher.getAuthTag();
}

export interface SealOptions {
  chunkBytes?: number;
  /** Refuse (error the stream) once the file would grow past this (FAT's 4 GiB - 1). */
  maxFileBytes?: number;
  /** Seal on a worker thread (default), or inline. */
  worker?: boolean;
}

/**
 * Plaintext (QEMU's migration stream) in, the sealed file's bytes out. The
 * header goes out first; each full chunk is sealed once more data shows it is
 * not the last; the rest is sealed as the final frame when the input ends.
 */
export class StateSealer extends Transform {
  readonly #key: Buffer;
  readonly #prefix: Buffer;
  readonly #digest: Buffer;
  readonly #chunkBytes: number;
  readonly #maxFileBytes: number;
  readonly #pending = new ByteQueue();
  #index = 0;
  #headerSent = false;
  readonly #head: Buffer;
  readonly #headTag: Buffer;
  readonly #worker: GcmWorker | undefined;
  /** Sealed frames in order, each the pieces to emit. */
  readonly #sealing: Array<Promise<Buffer[]>> = [];
  /** Bytes emitted so far (the file's size once finished). */
  fileBytes = 0;
  /** Plaintext bytes sealed so far. */
  plaintextBytes = 0;

  constructor(stateKey: Buffer, meta: object, options: SealOptions = {}) {
    // Room for a few sealed chunks, so sealing runs ahead of the writes.
    super({ readableHighWaterMark: 8 << 20, writableHighWaterMark: 1 << 20 });
    this.#chunkBytes = options.chunkBytes ?? DEFAULT_STATE_CHUNK_BYTES;
    if (!Number.isInteger(this.#chunkBytes) || this.#chunkBytes < 1 || this.#chunkBytes > MAX_CHUNK_BYTES)
      throw new RangeError(`chunk size ${this.#chunkBytes} is out of range`);
    this.#maxFileBytes = options.maxFileBytes ?? Number.MAX_SAFE_INTEGER;
    const salt = randomBytes(32);
    this.#prefix = randomBytes(4);
    this.#key = fileKey(stateKey, salt);
    const cipher: StateCipherParams = {
      algorithm: 'aes-256-gcm',
      kdf: 'hkdf-sha256',
      salt: salt.toString('base64'),
      noncePrefix: this.#prefix.toString('base64'),
      chunkBytes: this.#chunkBytes,
    };
    const json = Buffer.from(JSON.stringify({ ...meta, cipher }), 'utf8');
    if (json.length > MAX_HEADER_BYTES) throw new RangeError('the state header is too large');
    const preamble = Buffer.alloc(PREAMBLE_BYTES);
    STATE_MAGIC.copy(preamble, 0);
    preamble.writeUInt16BE(STATE_FORMAT_VERSION, STATE_MAGIC.length);
    preamble.writeUInt32BE(json.length, STATE_MAGIC.length + 2);
    this.#head = Buffer.concat([preamble, json]);
    this.#digest = createHash('sha256').update(this.#head).digest();
    this.#headTag = headerTag(this.#key, this.#prefix, this.#head);
    this.#worker = options.worker === false ? undefined : new GcmWorker(this.#key);
  }

  #emit(...chunks: Buffer[]): void {
    for (const chunk of chunks) this.fileBytes += chunk.length;
    if (this.fileBytes > this.#maxFileBytes)
      throw new SavedStateError(`the saved state would exceed ${Math.floor(this.#maxFileBytes / 1048576)} MiB, the largest file the stick may hold`, {
        details: { reason: 'too-big', maxFileBytes: this.#maxFileBytes },
      });
    // Pushed piece by piece: a writev downstream takes them without a copy here.
    for (const chunk of chunks) if (chunk.length > 0) this.push(chunk);
  }

  #sendHeader(): void {
    if (this.#headerSent) return;
    this.#headerSent = true;
    this.#emit(Buffer.concat([this.#head, this.#headTag]));
  }

  #seal(plain: Buffer, final: boolean): void {
    const flags = final ? FINAL : 0;
    const iv = nonce(this.#prefix, this.#index + 1);
    const aad = frameAad(this.#digest, this.#index, flags, plain.length);
    const head = Buffer.alloc(FRAME_HEAD_BYTES);
    head.writeUInt8(flags, 0);
    head.writeUInt32BE(plain.length, 1);
    this.plaintextBytes += plain.length;
    this.#index += 1;
    if (this.#worker) {
      // A chunk assembled from the socket's pieces owns its buffer: moved, not copied.
      const owned = plain.byteOffset === 0 && plain.byteLength === plain.buffer.byteLength;
      const sealed = this.#worker.run({ nonce: iv, aad, data: plain, transfer: owned }).then((result) => [head, result.data, result.tag!]);
      sealed.catch(() => {});
      this.#sealing.push(sealed);
      return;
    }
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(aad);
    const body = cipher.update(plain);
    const rest = cipher.final();
    this.#sealing.push(Promise.resolve([head, body, rest, cipher.getAuthTag()]));
  }

  /** Emits sealed frames, oldest first, until at most `keep` are outstanding. */
  async #drain(keep: number): Promise<void> {
    while (this.#sealing.length > keep) this.#emit(...(await this.#sealing.shift()!));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    (async () => {
      this.#sendHeader();
      this.#pending.push(chunk);
      while (this.#pending.length > this.#chunkBytes) this.#seal(this.#pending.take(this.#chunkBytes), false);
      await this.#drain(WORKER_WINDOW);
    })().then(
      () => callback(),
      (error: unknown) => callback(error as Error),
    );
  }

  override _flush(callback: TransformCallback): void {
    (async () => {
      this.#sendHeader();
      this.#seal(this.#pending.take(this.#pending.length), true);
      await this.#drain(0);
    })().then(
      () => {
        this.#finish();
        callback();
      },
      (error: unknown) => callback(error as Error),
    );
  }

  #finish(): void {
    this.#key.fill(0);
    this.#worker?.close();
  }

  override _destroy(error: Error | null, callback: (error: Error | null) => void): void {
    this.#finish();
    callback(error);
  }
}

/** A state file's header as read, before anything is verified. */
export interface StateFileHead<M> {
  header: StateHeader<M>;
  /** Magic through header JSON: what the header tag authenticates. */
  head: Buffer;
  tag: Buffer;
  /** Where the first frame starts. */
  dataOffset: number;
}

function formatError(message: string): SavedStateError {
  return new SavedStateError(message, { details: { reason: 'format' } });
}

async function readExactly(handle: FileHandle, length: number, position: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buffer.subarray(0, filled);
}

function checkCipherParams(value: unknown): StateCipherParams {
  const c = value as Partial<StateCipherParams> | undefined;
  const ok =
    c !== undefined &&
    c !== null &&
    c.algorithm === 'aes-256-gcm' &&
    c.kdf === 'hkdf-sha256' &&
    typeof c.salt === 'string' &&
    Buffer.from(c.salt, 'base64').length === 32 &&
    typeof c.noncePrefix === 'string' &&
    Buffer.from(c.noncePrefix, 'base64').length === 4 &&
    Number.isInteger(c.chunkBytes) &&
    c.chunkBytes! >= 1 &&
    c.chunkBytes! <= MAX_CHUNK_BYTES;
  if (!ok) throw formatError('the saved state has no usable cipher parameters');
  return c as StateCipherParams;
}

/** Reads and parses the header; nothing is trusted until openStateHead verifies it. */
export async function readStateHead<M>(handle: FileHandle): Promise<StateFileHead<M>> {
  const preamble = await readExactly(handle, PREAMBLE_BYTES, 0);
  if (preamble.length < PREAMBLE_BYTES || !preamble.subarray(0, STATE_MAGIC.length).equals(STATE_MAGIC))
    throw formatError('this is not a pocketvm saved state (no PVMSTATE header)');
  const version = preamble.readUInt16BE(STATE_MAGIC.length);
  if (version !== STATE_FORMAT_VERSION)
    throw new SavedStateError(`the saved state is in format ${version}; this launcher reads format ${STATE_FORMAT_VERSION}`, {
      details: { reason: 'format', version },
    });
  const length = preamble.readUInt32BE(STATE_MAGIC.length + 2);
  if (length > MAX_HEADER_BYTES) throw formatError('the saved state header is implausibly large');
  const json = await readExactly(handle, length, PREAMBLE_BYTES);
  const tag = await readExactly(handle, TAG_BYTES, PREAMBLE_BYTES + length);
  if (json.length < length || tag.length < TAG_BYTES)
    throw new SavedStateError('the saved state is truncated inside its header', { details: { reason: 'truncated' } });
  let header: StateHeader<M>;
  try {
    header = JSON.parse(json.toString('utf8')) as StateHeader<M>;
  } catch {
    throw formatError('the saved state header is not readable');
  }
  if (typeof header !== 'object' || header === null) throw formatError('the saved state header is not readable');
  checkCipherParams(header.cipher);
  return { header, head: Buffer.concat([preamble, json]), tag, dataOffset: PREAMBLE_BYTES + length + TAG_BYTES };
}

/** A state file whose header verified under the key: frames can be opened. */
export class OpenedState<M> {
  readonly header: StateHeader<M>;
  readonly dataOffset: number;
  readonly #key: Buffer;
  readonly #prefix: Buffer;
  readonly #digest: Buffer;
  readonly #chunkBytes: number;

  constructor(stateKey: Buffer, head: StateFileHead<M>) {
    const params = checkCipherParams(head.header.cipher);
    this.header = head.header;
    this.dataOffset = head.dataOffset;
    this.#prefix = Buffer.from(params.noncePrefix, 'base64');
    this.#chunkBytes = params.chunkBytes;
    this.#key = fileKey(stateKey, Buffer.from(params.salt, 'base64'));
    this.#digest = createHash('sha256').update(head.head).digest();
    const expected = headerTag(this.#key, this.#prefix, head.head);
    if (!expected.equals(head.tag)) {
      this.#key.fill(0);
      throw new SavedStateError('the saved state does not open with this key: it was made with another key, or its header was changed', {
        details: { reason: 'key' },
      });
    }
  }

  /** Decrypts and verifies frame `index`; throws `damaged` naming the frame. */
  openFrame(index: number, flags: number, body: Buffer, tag: Buffer): Buffer {
    try {
      // (inline; reader() normally does this on a worker)
      const decipher = createDecipheriv('aes-256-gcm', this.#key, nonce(this.#prefix, index + 1));
      decipher.setAAD(frameAad(this.#digest, index, flags, body.length));
      decipher.setAuthTag(tag);
      const plain = decipher.update(body);
      const rest = decipher.final();
      return rest.length > 0 ? Buffer.concat([plain, rest]) : plain;
    } catch {
      throw damagedChunk(index);
    }
  }

  #checkLength(index: number, length: number): void {
    if (length > this.#chunkBytes)
      throw new SavedStateError(`the saved state is damaged: chunk ${index + 1} claims ${length} bytes`, { details: { reason: 'damaged', chunk: index + 1 } });
  }

  /**
   * Walks the frames without decrypting them (a few bytes read per chunk),
   * then verifies the last: a file cut short, or with bytes after its final
   * chunk, is refused before any of it reaches QEMU.
   */
  async checkEnd(handle: FileHandle, size: number): Promise<{ chunks: number }> {
    let position = this.dataOffset;
    let index = 0;
    for (;;) {
      const head = await readExactly(handle, FRAME_HEAD_BYTES, position);
      if (head.length < FRAME_HEAD_BYTES) throw truncated(index);
      const flags = head.readUInt8(0);
      const length = head.readUInt32BE(1);
      this.#checkLength(index, length);
      const end = position + FRAME_HEAD_BYTES + length + TAG_BYTES;
      if (end > size) throw truncated(index);
      if (flags & FINAL) {
        if (end !== size)
          throw new SavedStateError('the saved state is damaged: there are bytes after its final chunk', { details: { reason: 'damaged', chunk: index + 1 } });
        const body = await readExactly(handle, length, position + FRAME_HEAD_BYTES);
        const tag = await readExactly(handle, TAG_BYTES, position + FRAME_HEAD_BYTES + length);
        this.openFrame(index, flags, body, tag).fill(0);
        return { chunks: index + 1 };
      }
      position = end;
      index += 1;
    }
  }

  /**
   * The file's bytes from dataOffset in, verified plaintext out, in order;
   * opened on a worker thread (default) a few chunks ahead, or inline.
   */
  reader(options: { worker?: boolean } = {}): Transform {
    const pending = new ByteQueue();
    let index = 0;
    let done = false;
    const opened = this;
    const worker = options.worker === false ? undefined : new GcmWorker(this.#key);
    const opening: Array<Promise<Buffer>> = [];
    const open = (frame: number, flags: number, body: Buffer, tag: Buffer): Promise<Buffer> => {
      if (!worker) return Promise.resolve(opened.openFrame(frame, flags, body, tag));
      const plain = worker.run({ nonce: nonce(opened.#prefix, frame + 1), aad: frameAad(opened.#digest, frame, flags, body.length), data: body, tag }).then(
        (result) => result.data,
        () => {
          throw damagedChunk(frame);
        },
      );
      plain.catch(() => {});
      return plain;
    };
    const drain = async (stream: Transform, keep: number) => {
      while (opening.length > keep) {
        const plain = await opening.shift()!;
        if (plain.length > 0) stream.push(plain);
      }
    };
    return new Transform({
      // Decrypts ahead of QEMU's reading by a few chunks.
      readableHighWaterMark: 8 << 20,
      writableHighWaterMark: 4 << 20,
      transform(chunk: Buffer, _encoding, callback) {
        (async () => {
          pending.push(chunk);
          for (;;) {
            if (done) {
              if (pending.length > 0)
                throw new SavedStateError('the saved state is damaged: there are bytes after its final chunk', {
                  details: { reason: 'damaged', chunk: index },
                });
              break;
            }
            if (pending.length < FRAME_HEAD_BYTES) break;
            const head = pending.peek(FRAME_HEAD_BYTES);
            const flags = head.readUInt8(0);
            const length = head.readUInt32BE(1);
            opened.#checkLength(index, length);
            if (pending.length < FRAME_HEAD_BYTES + length + TAG_BYTES) break;
            pending.take(FRAME_HEAD_BYTES);
            const body = pending.take(length);
            const tag = pending.take(TAG_BYTES);
            opening.push(open(index, flags, body, tag));
            index += 1;
            if (flags & FINAL) done = true;
          }
          await drain(this, WORKER_WINDOW);
        })().then(
          () => callback(),
          (error: unknown) => callback(error as Error),
        );
      },
      flush(callback) {
        drain(this, 0).then(
          () => {
            worker?.close();
            callback(done ? null : truncated(index));
          },
          (error: unknown) => callback(error as Error),
        );
      },
      destroy(error, callback) {
        worker?.close();
        callback(error);
      },
    });
  }

  /**
   * The verified plaintext of the whole file, read by itself: one exact read
   * per chunk (its body and tag, plus the next chunk's head), each buffer
   * moved to the cipher worker rather than copied. What a resume streams into
   * QEMU; the fewest copies and allocations keep the main thread (and its
   * garbage collector) out of QEMU's way.
   */
  plaintext(handle: FileHandle): Readable {
    const worker = new GcmWorker(this.#key);
    const opened = this;
    const opening: Array<Promise<Buffer>> = [];
    let position = this.dataOffset;
    let index = 0;
    let head: Buffer | undefined;
    let done = false;
    let pumping = false;

    const readFrame = async (): Promise<void> => {
      head ??= await readExactly(handle, FRAME_HEAD_BYTES, position);
      if (head.length < FRAME_HEAD_BYTES) throw truncated(index);
      const flags = head.readUInt8(0);
      const length = head.readUInt32BE(1);
      opened.#checkLength(index, length);
      const frameEnd = length + TAG_BYTES;
      const buffer = Buffer.allocUnsafeSlow(frameEnd + FRAME_HEAD_BYTES);
      let got = 0;
      while (got < buffer.length) {
        const { bytesRead } = await handle.read(buffer, got, buffer.length - got, position + FRAME_HEAD_BYTES + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got < frameEnd) throw truncated(index);
      if (flags & FINAL && got > frameEnd)
        throw new SavedStateError('the saved state is damaged: there are bytes after its final chunk', { details: { reason: 'damaged', chunk: index + 1 } });
      // The next head is copied out before the buffer moves to the worker.
      head = Buffer.from(buffer.subarray(frameEnd, got));
      const frame = index;
      const plain = worker
        .run({
          nonce: nonce(opened.#prefix, frame + 1),
          aad: frameAad(opened.#digest, frame, flags, length),
          data: buffer.subarray(0, length),
          tag: buffer.subarray(length, frameEnd),
          transfer: true,
        })
        .then(
          (result) => result.data,
          () => {
            throw damagedChunk(frame);
          },
        );
      plain.catch(() => {});
      opening.push(plain);
      position += FRAME_HEAD_BYTES + frameEnd;
      index += 1;
      if (flags & FINAL) done = true;
    };

    const pump = async (stream: Readable): Promise<void> => {
      if (pumping) return;
      pumping = true;
      try {
        for (;;) {
          while (!done && opening.length < WORKER_WINDOW) await readFrame();
          const next = opening.shift();
          if (!next) {
            worker.close();
            stream.push(null);
            return;
          }
          const plain = await next;
          if (plain.length > 0 && !stream.push(plain)) return;
        }
      } finally {
        pumping = false;
      }
    };

    return new Readable({
      highWaterMark: 8 << 20,
      read() {
        pump(this).catch((error: unknown) => this.destroy(error as Error));
      },
      destroy(error, callback) {
        worker.close();
        callback(error);
      },
    });
  }

  dispose(): void {
    this.#key.fill(0);
  }
}

function damagedChunk(index: number): SavedStateError {
  return new SavedStateError(`the saved state is damaged: chunk ${index + 1} does not verify`, { details: { reason: 'damaged', chunk: index + 1 } });
}

function truncated(index: number): SavedStateError {
  return new SavedStateError(`the saved state is truncated: it ends in or before chunk ${index + 1}, with no final chunk`, {
    details: { reason: 'truncated', chunk: index + 1 },
  });
}
