// One sealed file: a regular file's content, encrypted and authenticated in
// fixed blocks so that any byte range can be read or written without touching
// the rest (the design of gocryptfs's content format, with its size sealed).
//
//   header (60 bytes)
//     0  magic "PVSF"
//     4  version (u16 BE, 1)
//     6  block shift (u16 BE: block size = 1 << shift; 16 = 64 KiB by default)
//     8  file ID (16 bytes)
//    24  size record: nonce (12) | AES-256-GCM(plaintext size, u64 BE) (8) | tag (16)
//        associated data: bytes 0..24 (magic, version, shift, file ID),
//        then the content version (u64 BE) unless it is 0
//   block n (at 60 + n * (blockSize + 28))
//        nonce (12) | AES-256-GCM(blockSize bytes of content) | tag (16)
//        associated data: file ID | n (u64 BE)
//
// - Every block holds a full blockSize of content: the last one is padded
//   with zeros (authenticated; a later extension relies on it). The file's
//   length on disk shows only how many blocks it has, never the exact size,
//   which is in the sealed size record.
// - The key is per file (HKDF of the store's content key and the file ID),
//   nonces are random: 2^32 block writes per file before a nonce repeat is
//   likelier than 2^-32.
// - Flipped bytes fail their block's tag; a block moved to another index
//   fails (its index is authenticated); a whole file swapped for another
//   fails (the caller gives the file ID it expects: bound to the node); a
//   file cut short fails (its size record says more blocks). Each is a
//   SealedDataError, EIO to the guest. A whole file put back to an earlier
//   version of itself fails too: its header authenticates the content
//   version, which the node's sealed row records (sealed-content-store.ts:
//   bumped by the first write after an open or an fsync, recorded once the
//   file is synced). Not detected, as in gocryptfs: older blocks of the same
//   file put back under the current header, and a block overwritten with
//   zero bytes, which is a hole.
// - Holes, as in gocryptfs: a block that is all zero bytes on disk reads as
//   zeros (a sealed block never is: its nonce and tag look random). A gap
//   left by a write beyond the end, or a truncate up, is made by extending
//   the file, so sparse files stay sparse where the file system allows.
// - Truncating down re-seals the new last block only and cuts the rest;
//   truncating up extends the file (holes); renames never
//   touch the content (files are named by node, not by guest name).
// - An unwritten file (created and never written, so empty) has no content
//   file at all: its store says so in the node's sealed row
//   (sealed-rows.ts), so a missing or emptied content file of a written
//   file is still noticed. The first write or truncate up creates the
//   content file (replacing any left by a crash) and tells the store.
// - Blocks are sealed and opened on cipher workers (cipher-pool.ts) in runs;
//   a batch carries the file's key as a KeyObject, never as bytes. A read
//   keeps the blocks it opened, and reading in order opens the next ones
//   ahead: plaintext in memory only while the file is held open, zeroed by
//   any write, truncate or close and when the last handle goes. A block
//   read ahead that does not authenticate is not kept: the read that asks
//   for it opens it again and gets EIO.
import { createCipheriv, createDecipheriv, type KeyObject, randomFillSync } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { GCM_BATCH_OP, type GcmBatchResult } from '../../vmm/gcm-worker.ts';
import { Errno, ErrnoError } from '../../ninep/backend.ts';
import { giveBackRunBuffer, runOnPool, takeRunBuffer } from './cipher-pool.ts';
import { secretKey } from './keys.ts';
import { SerialQueue } from '../../primitives/serial-queue.ts';

export const SEALED_MAGIC = Buffer.from('PVSF');
export const SEALED_VERSION = 1;
export const HEADER_BYTES = 60;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;
export const BLOCK_OVERHEAD = NONCE_BYTES + TAG_BYTES;
export const FILE_ID_BYTES = 16;
/**
 * 64 KiB blocks, not gocryptfs's 4 KiB: Node's cipher objects cost a fixed
 * few microseconds each (create, key schedule, a fresh output Buffer), which
 * at 4 KiB dominated (4-5x slower than 64 KiB for both writing and reading
 * 1 MiB runs, measured on this machine). The guest's writes arrive as 9P
 * Twrites of up to 1 MiB, so larger blocks rarely cost a read-modify-write;
 * a small random write re-seals one 64 KiB block. The shift is in each
 * file's header: files of any block size open.
 */
export const DEFAULT_BLOCK_SHIFT = 16;
const SIZE_RECORD_AT = 24;
/**
 * Reads go in runs of this many bytes: each run is read (libuv's thread
 * pool), then opened (a cipher worker, cipher-pool.ts), while the next runs
 * are read and opened beside it; up to IN_FLIGHT runs are held at once (a
 * 1 MiB Tread opened on demand is four runs). A write's sealed runs go down
 * IN_FLIGHT * PIPE_BYTES at a time in one writev (a 1 MiB Twrite: one
 * writev, and the size record beside it, instead of four writes and then
 * the record).
 */
const PIPE_BYTES = 1 << 18;
const IN_FLIGHT = 4;
/**
 * Runs nothing waits on a disk read for go to the workers in larger pieces:
 * a write's (a 1 MiB Twrite is one message, sealed on one worker, and goes
 * down in one writev) and the read ahead's (two per MiB, one per worker).
 * Every message wakes a worker, and on a machine with few cores the main
 * thread then loses its core for a while: a profile under load showed
 * 0.6 ms of the main thread per message (17 µs when timed alone), four per
 * 1 MiB Twrite.
 */
const WRITE_RUN_BYTES = 1 << 20;
const AHEAD_RUN_BYTES = 1 << 19;
/**
 * Runs of fewer blocks are sealed and opened on the event loop: a worker's
 * round trip costs about what one 64 KiB block's cipher does.
 */
const POOL_MIN_BLOCKS = 2;
/**
 * A write that needs no block read back (whole blocks, or blocks new to the
 * file) is answered once its plaintext is copied into its runs: the runs are
 * sealed and written behind, while the guest makes its next write (under
 * TCG that takes longer than sealing 1 MiB). Up to this many bytes per file
 * are behind at once; the next write waits for the oldest beyond it. Every
 * other operation (read, truncate, fsync, close) first waits for all of
 * them, so an fsync still returns only once they are on the stick. A write
 * behind that fails is reported by every later operation on the file until
 * it closes (as a page cache's write error is by fsync), and its size
 * record is put back.
 */
const BEHIND_BYTES = 2 << 20;
/**
 * What a read opened on demand keeps for the next (its blocks): up to this
 * many bytes. A guest reading in order asks for 1 MiB per Tread, or less
 * (each 9P read of part of a block would open it again). A read served
 * from runs read ahead keeps those runs.
 */
const WINDOW_BYTES = 1 << 20;
/**
 * Reading in order keeps up to twice the read's size being opened beyond
 * it, up to this many bytes, topped up by every read: a 1 MiB Tread's runs
 * were started two Treads before it, which gives the workers the time of
 * two round trips to the guest (with one, a busy machine's workers were
 * often still opening when the next Tread came). A read waits for its own
 * runs only: before, the read ahead was one 2 MiB batch, started by every
 * other read and waited for whole.
 */
const AHEAD_BYTES = 2 << 20;

/**
 * Bytes of the process's writes behind not yet on the stick (their sealed
 * blocks): the stick's free space does not show them yet, so the quota's
 * reserve (store-quota.ts) subtracts them from what statfs says, or a
 * guest could write up to that much into the reserve.
 */
let bytesBehind = 0;
export function sealedBytesBehind(): number {
  return bytesBehind;
}

/**
 * Where the process's sealed reads found their blocks (for the benchmarks):
 * kept from the read before, read ahead, or opened on demand.
 */
export const sealedReadCounters = { kept: 0, ahead: 0, aheadWaited: 0, opened: 0 };

/** Blocks first..first+count-1 opened: block first + i's plaintext at i * blockSize of `plain` (a run buffer, cipher-pool.ts). */
interface Opened {
  first: number;
  count: number;
  plain: Buffer;
}

/** A run read ahead: blocks first..first+count-1, being opened. */
interface AheadRun {
  first: number;
  count: number;
  /** The run opened; undefined when it failed (the read that needs it opens it again, and fails as it would have). */
  opening: Promise<Opened | undefined>;
  done: boolean;
}

export type SealedDataProblem = 'tampered' | 'truncated' | 'wrong-file' | 'not-sealed' | 'rolled-back';
/** How far below the expected versions an older copy is still recognised as one (for the message only). */
const OLDER_VERSIONS_NAMED = 256;

/** Content that does not authenticate: the guest gets EIO, the log gets the reason (never the content). */
export class SealedDataError extends ErrnoError {
  readonly problem: SealedDataProblem;
  constructor(problem: SealedDataProblem, message: string) {
    super(Errno.EIO, message);
    this.name = 'SealedDataError';
    this.problem = problem;
  }
}

/** The size record's associated data: the prefix, and the content version unless it is 0 (files from before versions). */
function sizeRecordAd(prefix: Buffer, version: number): Buffer {
  if (version === 0) return prefix;
  const ad = Buffer.alloc(prefix.length + 8);
  prefix.copy(ad);
  ad.writeBigUInt64BE(BigInt(version), prefix.length);
  return ad;
}

function headerPrefix(shift: number, fileId: Buffer): Buffer {
  const prefix = Buffer.alloc(SIZE_RECORD_AT);
  SEALED_MAGIC.copy(prefix, 0);
  prefix.writeUInt16BE(SEALED_VERSION, 4);
  prefix.writeUInt16BE(shift, 6);
  fileId.copy(prefix, 8);
  return prefix;
}

export class SealedFile {
  readonly path: string;
  readonly blockSize: number;
  /** Undefined while the file is unwritten (no content file yet). */
  #fh: FileHandle | undefined;
  #onFirstWrite: (() => void) | undefined;
  /** The file's key: native memory, cleared when freed (keys.ts). */
  readonly #key: KeyObject;
  readonly #fileId: Buffer;
  readonly #prefix: Buffer;
  /** Serialises the file's operations: a read-modify-write of a block must not interleave with another. */
  readonly #queue = new SerialQueue();
  #size: number;
  /** The content version its header authenticates. */
  #version: number;
  /** The next write or truncate first seals the header under version + 1. */
  #bumpArmed = false;
  /**
   * The blocks the last read opened (or read ahead), kept for the next read
   * (the same blocks again: a guest's reads smaller than a block); zeroed
   * by any write, truncate or close, and when nobody holds the file.
   */
  #window: Opened[] = [];
  /**
   * Runs being opened for the reads that come next, when reads go in order:
   * consecutive, in order, each taken by the read that needs it.
   */
  #ahead: AheadRun[] = [];
  /** Where the last read ended: a read starting there is reading in order. */
  #lastEnd = -1;
  #closed = false;
  /** Writes answered and still being sealed or written, oldest first (BEHIND_BYTES). */
  #behind: { done: Promise<void>; bytes: number }[] = [];
  /** The last disk write of the writes behind: the next one's blocks go down after it (a later write over the same blocks must land last). */
  #diskTail: Promise<unknown> = Promise.resolve();
  /** A write behind failed: every operation until close reports it (ENOSPC, EIO: what the stick said). */
  #behindError: ErrnoError | undefined;

  private constructor(path: string, fh: FileHandle | undefined, key: KeyObject, fileId: Buffer, shift: number, size: number, version = 0) {
    this.path = path;
    this.#fh = fh;
    this.#key = key;
    this.#fileId = fileId;
    this.blockSize = 1 << shift;
    this.#prefix = headerPrefix(shift, fileId);
    this.#size = size;
    this.#version = version;
  }

  /** Create (or replace) `path` as an empty sealed file. Takes ownership of `key` (zeroed at once: the file holds it as a KeyObject). */
  static async create(path: string, key: Buffer, fileId: Buffer, shift = DEFAULT_BLOCK_SHIFT): Promise<SealedFile> {
    if (fileId.length !== FILE_ID_BYTES) throw new Error(`file ID must be ${FILE_ID_BYTES} bytes`);
    const k = secretKey(key);
    const fh = await open(path, 'w+');
    const file = new SealedFile(path, fh, k, Buffer.from(fileId), shift, 0);
    try {
      await file.#writeHeader(0);
    } catch (error) {
      await file.close();
      throw error;
    }
    return file;
  }

  /**
   * An unwritten file: empty, nothing on disk. Its first write or truncate
   * up creates `path` (replacing what is there) with its header at content
   * version `version` (the one its row records; one more if a bump is armed
   * by then), and then calls `onFirstWrite`. Takes ownership of `key`, as
   * open does.
   */
  static unwritten(path: string, key: Buffer, fileId: Buffer, onFirstWrite: () => void, version = 0, shift = DEFAULT_BLOCK_SHIFT): SealedFile {
    if (fileId.length !== FILE_ID_BYTES) throw new Error(`file ID must be ${FILE_ID_BYTES} bytes`);
    const file = new SealedFile(path, undefined, secretKey(key), Buffer.from(fileId), shift, 0, version);
    file.#onFirstWrite = onFirstWrite;
    return file;
  }

  /** Whether the file has no content file yet. */
  get unwrittenOnDisk(): boolean {
    return this.#fh === undefined;
  }

  /** The content file, created with its header if the file was unwritten. */
  async #ensureOnDisk(): Promise<FileHandle> {
    if (this.#fh) return this.#fh;
    const fh = await open(this.path, 'w+');
    this.#fh = fh;
    try {
      await this.#writeHeader(0);
    } catch (error) {
      // Still unwritten: the next write creates it again (and then tells the store).
      this.#fh = undefined;
      await fh.close().catch(() => {});
      throw error;
    }
    const told = this.#onFirstWrite;
    this.#onFirstWrite = undefined;
    told?.();
    return this.#fh;
  }

  /** The content file (only reached once there is content, so it exists). */
  get #disk(): FileHandle {
    if (!this.#fh) throw new ErrnoError(Errno.EIO, `${this.path}: no content file`);
    return this.#fh;
  }

  /** The sealed size of `path` from its header alone, synchronously (a stat). Zeroes `key`. */
  static sizeSync(path: string, key: Buffer, fileId: Buffer, versions: readonly number[] = [0]): number {
    try {
      const header = Buffer.alloc(HEADER_BYTES);
      const fd = openSync(path, 'r');
      let got: number;
      try {
        got = readSync(fd, header, 0, HEADER_BYTES, 0);
      } finally {
        closeSync(fd);
      }
      return SealedFile.#parseHeader(path, header, got, secretKey(key), fileId, versions).size;
    } finally {
      key.fill(0);
    }
  }

  static #parseHeader(
    path: string,
    header: Buffer,
    bytesRead: number,
    key: KeyObject,
    fileId: Buffer,
    versions: readonly number[],
  ): { shift: number; size: number; version: number } {
    if (bytesRead < HEADER_BYTES || !header.subarray(0, 4).equals(SEALED_MAGIC)) throw new SealedDataError('not-sealed', `${path} is not a sealed file`);
    if (header.readUInt16BE(4) !== SEALED_VERSION) throw new SealedDataError('not-sealed', `${path}: unknown sealed file version ${header.readUInt16BE(4)}`);
    const shift = header.readUInt16BE(6);
    if (shift < 9 || shift > 20) throw new SealedDataError('tampered', `${path}: impossible block size`);
    if (!header.subarray(8, 24).equals(fileId)) throw new SealedDataError('wrong-file', `${path} belongs to another file`);
    const record = header.subarray(SIZE_RECORD_AT);
    const prefix = header.subarray(0, SIZE_RECORD_AT);
    const attempt = (version: number): number | undefined => {
      try {
        const d = createDecipheriv('aes-256-gcm', key, record.subarray(0, NONCE_BYTES));
        d.setAAD(sizeRecordAd(prefix, version));
        d.setAuthTag(record.subarray(NONCE_BYTES + 8));
        const plain = Buffer.concat([d.update(record.subarray(NONCE_BYTES, NONCE_BYTES + 8)), d.final()]);
        return Number(plain.readBigUInt64BE(0));
      } catch {
        return undefined;
      }
    };
    for (const version of versions) {
      const size = attempt(version);
      if (size !== undefined) return { shift, size, version };
    }
    // Not current: an older copy of this very file (said as such), or damage.
    const lowest = Math.min(...versions);
    for (let older = lowest - 1; older >= Math.max(0, lowest - OLDER_VERSIONS_NAMED); older--) {
      if (attempt(older) !== undefined)
        throw new SealedDataError(
          'rolled-back',
          `${path} is an older copy of itself (content version ${older}, current ${lowest}): it was put back from an earlier copy; the guest gets EIO for it until the current copy is put back or the guest deletes it`,
        );
    }
    throw new SealedDataError('tampered', `${path}: its header does not authenticate`);
  }

  /**
   * Open `path`, which must be the sealed file with ID `fileId` at one of
   * `versions`. Takes ownership of `key` (zeroed at once: the file holds it
   * as a KeyObject).
   */
  static async open(path: string, key: Buffer, fileId: Buffer, versions: readonly number[] = [0]): Promise<SealedFile> {
    const k = secretKey(key);
    const fh = await open(path, 'r+');
    try {
      const header = Buffer.alloc(HEADER_BYTES);
      const { bytesRead } = await fh.read(header, 0, HEADER_BYTES, 0);
      const { shift, size, version } = SealedFile.#parseHeader(path, header, bytesRead, k, fileId, versions);
      return new SealedFile(path, fh, k, Buffer.from(fileId), shift, size, version);
    } catch (error) {
      await fh.close();
      throw error;
    }
  }

  /** The content's size (as sealed in the header). */
  get size(): number {
    return this.#size;
  }

  /** The content version the header authenticates. */
  get version(): number {
    return this.#version;
  }

  /**
   * The next change (write or truncate) first re-seals the header under
   * version + 1: one header write, so an earlier copy of the whole file no
   * longer opens once the new version is recorded.
   */
  armBump(): void {
    this.#bumpArmed = true;
  }

  async #bumpIfArmed(): Promise<void> {
    if (!this.#bumpArmed) return;
    this.#bumpArmed = false;
    this.#version++;
    // An unwritten file has no header yet: #ensureOnDisk writes its first one at this version.
    if (this.#fh) await this.#writeHeader(this.#size);
  }

  get #stride(): number {
    return this.blockSize + BLOCK_OVERHEAD;
  }

  #blockAt(index: number): number {
    return HEADER_BYTES + index * this.#stride;
  }

  #blocks(size: number): number {
    return Math.ceil(size / this.blockSize);
  }

  static #zeroStride: Buffer | undefined;

  static #isHole(block: Buffer): boolean {
    if (!SealedFile.#zeroStride || SealedFile.#zeroStride.length !== block.length) SealedFile.#zeroStride = Buffer.alloc(block.length);
    return block.equals(SealedFile.#zeroStride);
  }

  /** Associated data of a block: file ID | index. One buffer per call, its index set per block (setAAD consumes it at once). */
  #adBuffer(): Buffer {
    const ad = Buffer.allocUnsafe(FILE_ID_BYTES + 8);
    this.#fileId.copy(ad, 0);
    return ad;
  }

  static #setIndex(ad: Buffer, index: number): Buffer {
    // Two 32-bit halves: no BigInt per block.
    ad.writeUInt32BE(Math.floor(index / 0x1_0000_0000), FILE_ID_BYTES);
    ad.writeUInt32BE(index >>> 0, FILE_ID_BYTES + 4);
    return ad;
  }

  async #writeHeader(size: number): Promise<void> {
    const record = Buffer.allocUnsafe(HEADER_BYTES - SIZE_RECORD_AT);
    randomFillSync(record, 0, NONCE_BYTES);
    const c = createCipheriv('aes-256-gcm', this.#key, record.subarray(0, NONCE_BYTES));
    c.setAAD(sizeRecordAd(this.#prefix, this.#version));
    const plain = Buffer.alloc(8);
    plain.writeBigUInt64BE(BigInt(size));
    c.update(plain).copy(record, NONCE_BYTES);
    c.final();
    c.getAuthTag().copy(record, NONCE_BYTES + 8);
    const header = Buffer.concat([this.#prefix, record]);
    await this.#disk.write(header, 0, HEADER_BYTES, 0);
  }

  /**
   * Seal `plain` (count whole blocks) as blocks first..: the blocks as they go
   * on disk (nonce, ciphertext, tag each), in a run buffer the caller gives
   * back once written. The plaintext is copied before the first await (the
   * caller's view may be a request frame), but `plain` must stay as it is
   * until the promise settles: if the worker dies, it is sealed again here.
   */
  async #sealRun(plain: Buffer, first: number, count: number, canRetry = true): Promise<Buffer> {
    const bs = this.blockSize;
    const stride = this.#stride;
    const run = takeRunBuffer(count * stride);
    for (let i = 0; i < count; i++) {
      randomFillSync(run, i * stride, NONCE_BYTES);
      plain.copy(run, i * stride + NONCE_BYTES, i * bs, (i + 1) * bs);
    }
    if (count >= POOL_MIN_BLOCKS) {
      try {
        const { buffer } = await runOnPool({ key: this.#key, buffer: run.buffer as ArrayBuffer, ...this.#ops(first, count, false), open: false });
        return Buffer.from(buffer, 0, count * stride);
      } catch {
        // A write behind was answered: its caller's plaintext may be reused by now, so it fails instead.
        if (!canRetry) throw new ErrnoError(Errno.EIO, `${this.path}: the cipher worker ended`);
        // The worker ended (the run went with it): sealed here, from the plaintext again.
        return this.#sealRun(plain, first, count);
      }
    }
    const ad = this.#adBuffer();
    for (let i = 0; i < count; i++) {
      const at = i * stride;
      const c = createCipheriv('aes-256-gcm', this.#key, run.subarray(at, at + NONCE_BYTES));
      c.setAAD(SealedFile.#setIndex(ad, first + i));
      // update() of GCM returns exactly its input's length.
      c.update(run.subarray(at + NONCE_BYTES, at + NONCE_BYTES + bs)).copy(run, at + NONCE_BYTES);
      c.final();
      c.getAuthTag().copy(run, at + NONCE_BYTES + bs);
    }
    return run;
  }

  /** A batch's ops for blocks first..first+count-1 of a run buffer: opened plaintext packs to the front (block i at i * blockSize), sealed stays in place. */
  #ops(first: number, count: number, open: boolean): { ops: Uint32Array; aad: Buffer; aadLength: number } {
    const bs = this.blockSize;
    const stride = this.#stride;
    const aadLength = FILE_ID_BYTES + 8;
    const ops = new Uint32Array(count * GCM_BATCH_OP);
    const aad = Buffer.allocUnsafe(count * aadLength);
    for (let i = 0; i < count; i++) {
      const at = i * stride;
      ops.set([at, at + NONCE_BYTES, bs, at + NONCE_BYTES + bs, open ? i * bs : at + NONCE_BYTES, i * aadLength], i * GCM_BATCH_OP);
      this.#fileId.copy(aad, i * aadLength);
      SealedFile.#setIndex(aad.subarray(i * aadLength, (i + 1) * aadLength), first + i);
    }
    return { ops, aad, aadLength };
  }

  /** Read blocks first..first+count-1 raw into a run buffer; a block missing is truncation. */
  async #readRaw(first: number, count: number): Promise<Buffer> {
    const stride = this.#stride;
    const raw = takeRunBuffer(count * stride);
    let got = 0;
    try {
      while (got < raw.length) {
        const { bytesRead } = await this.#disk.read(raw, got, raw.length - got, this.#blockAt(first) + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
    } catch (error) {
      giveBackRunBuffer(raw.buffer as ArrayBuffer);
      throw error;
    }
    if (got < raw.length) {
      giveBackRunBuffer(raw.buffer as ArrayBuffer);
      throw new SealedDataError('truncated', `${this.path}: block ${first + Math.floor(got / stride)} is missing`);
    }
    return raw;
  }

  /**
   * Read and open blocks first..first+count-1 (at most one run): on the
   * pool's workers from POOL_MIN_BLOCKS blocks, else here. The plaintext of
   * block i of the run ends up at i * blockSize of the run buffer.
   */
  async #openRun(first: number, count: number): Promise<Opened> {
    const raw = await this.#readRaw(first, count);
    if (count >= POOL_MIN_BLOCKS) {
      let result: GcmBatchResult;
      try {
        result = await runOnPool({ key: this.#key, buffer: raw.buffer as ArrayBuffer, ...this.#ops(first, count, true), open: true, holes: true });
      } catch {
        // The worker ended (the run went with it): read again and opened here.
        return this.#openHere(await this.#readRaw(first, count), first, count);
      }
      if (result.failed >= 0) {
        giveBackRunBuffer(result.buffer);
        throw new SealedDataError('tampered', `${this.path}: block ${first + result.failed} does not authenticate`);
      }
      return { first, count, plain: Buffer.from(result.buffer, 0, count * this.blockSize) };
    }
    return this.#openHere(raw, first, count);
  }

  #openHere(raw: Buffer, first: number, count: number): Opened {
    const bs = this.blockSize;
    const stride = this.#stride;
    const ad = this.#adBuffer();
    for (let j = 0; j < count; j++) {
      const at = j * stride;
      if (raw[at] === 0 && SealedFile.#isHole(raw.subarray(at, at + stride))) {
        // A hole: zeros, as in gocryptfs (a sealed block is never all zero bytes: its nonce and tag are random-looking).
        raw.fill(0, j * bs, (j + 1) * bs);
        continue;
      }
      try {
        const d = createDecipheriv('aes-256-gcm', this.#key, raw.subarray(at, at + NONCE_BYTES));
        d.setAAD(SealedFile.#setIndex(ad, first + j));
        d.setAuthTag(raw.subarray(at + NONCE_BYTES + bs, at + stride));
        const plain = d.update(raw.subarray(at + NONCE_BYTES, at + NONCE_BYTES + bs));
        d.final();
        // Packed to the front; this block's own bytes and earlier ones only (j * bs < (j + 1) * stride).
        plain.copy(raw, j * bs);
        plain.fill(0);
      } catch {
        raw.fill(0);
        giveBackRunBuffer(raw.buffer as ArrayBuffer);
        throw new SealedDataError('tampered', `${this.path}: block ${first + j} does not authenticate`);
      }
    }
    return { first, count, plain: raw.subarray(0, count * bs) };
  }

  /**
   * Open blocks first..first+count-1, handing each run to `use` in order
   * (which then owns it): in runs of PIPE_BYTES, up to IN_FLIGHT runs read
   * and opened at once. A failure gives back every run not yet used.
   */
  async #eachRun(first: number, count: number, use: (run: Opened) => void): Promise<void> {
    const per = Math.max(1, Math.floor(PIPE_BYTES / this.blockSize));
    const end = first + count;
    const inFlight: Promise<Opened>[] = [];
    let next = first;
    const start = () => {
      while (inFlight.length < IN_FLIGHT && next < end) {
        const opening = this.#openRun(next, Math.min(per, end - next));
        // Handled when its turn comes; until then a rejection is not an unhandled one.
        opening.catch(() => {});
        inFlight.push(opening);
        next += Math.min(per, end - next);
      }
    };
    try {
      start();
      while (inFlight.length > 0) {
        const run = await inFlight[0]!;
        void inFlight.shift(); // the run just awaited
        use(run);
        start();
      }
    } catch (error) {
      // Stopped mid-way: the runs in flight settle before the next operation, and go back.
      for (const opening of inFlight) {
        const run = await opening.catch(() => undefined);
        if (run) SealedFile.#giveBack([run]);
      }
      throw error;
    }
  }

  /** Plaintext runs are zeroed as they go back. */
  static #giveBack(runs: Opened[]): void {
    for (const run of runs) {
      run.plain.fill(0);
      giveBackRunBuffer(run.plain.buffer as ArrayBuffer);
    }
  }

  /** Bytes [position, position + length) of the content, from `runs` (which hold them) into `into` at 0. */
  #copyOut(runs: Opened[], into: Uint8Array, position: number, length: number): void {
    const bs = this.blockSize;
    for (const run of runs) {
      const runStart = run.first * bs;
      const lo = Math.max(position, runStart);
      const hi = Math.min(position + length, runStart + run.count * bs);
      if (hi > lo) run.plain.copy(into, lo - position, lo - runStart, hi - runStart);
    }
  }

  static #covers(runs: Opened[], first: number, last: number): boolean {
    return runs.length > 0 && runs[0]!.first <= first && last < runs.at(-1)!.first + runs.at(-1)!.count;
  }

  /**
   * Read and open blocks first..first+count-1; bytes [from, from + length)
   * of their content (default: all of it) go to `into` at 0 (a
   * read-modify-write's blocks: the window is not used).
   */
  async #open(first: number, count: number, into: Uint8Array, from = 0, length = count * this.blockSize): Promise<void> {
    const at = first * this.blockSize + from;
    try {
      await this.#eachRun(first, count, (run) => {
        this.#copyOut([run], into, at, length);
        SealedFile.#giveBack([run]);
      });
    } catch (error) {
      into.fill(0, 0, Math.min(into.length, length));
      throw error;
    }
  }

  /**
   * Opens the blocks from `from` (or from where the runs already read ahead
   * end) up to block `until` in the background, a run at a time, for the
   * reads that come next (a guest reading a file in order waits for each
   * Rread before its next Tread: the blocks it asks for next are opened
   * meanwhile). Every read in order tops this up, so the runs a read needs
   * were started two reads before it, and it waits for its own runs only,
   * never for the ones after them. A failure is not reported here: the read
   * that needs the run finds nothing ahead and opens the blocks itself,
   * failing as it would have.
   */
  #readAhead(from: number, until: number): void {
    if (!this.#fh) return;
    const end = Math.min(until, this.#blocks(this.#size));
    const per = Math.max(1, Math.floor(AHEAD_RUN_BYTES / this.blockSize));
    const back = this.#ahead.at(-1);
    for (let next = back ? back.first + back.count : from; next < end;) {
      const count = Math.min(per, end - next);
      const opening = this.#openRun(next, count).catch(() => undefined);
      const run: AheadRun = { first: next, count, opening, done: false };
      void opening.then(() => void (run.done = true));
      this.#ahead.push(run);
      next += count;
    }
  }

  /**
   * The runs read ahead that hold blocks first..last, taken off the front
   * once opened (runs wholly before `first`, a skip forward, are dropped);
   * undefined when they do not hold them all, or one failed: the read then
   * opens the blocks itself.
   */
  async #takeAhead(first: number, last: number): Promise<Opened[] | undefined> {
    while (this.#ahead.length > 0 && this.#ahead[0]!.first + this.#ahead[0]!.count <= first) {
      const passed = await this.#ahead.shift()!.opening;
      if (passed) SealedFile.#giveBack([passed]);
    }
    const front = this.#ahead[0];
    const back = this.#ahead.at(-1);
    if (!front || !back || front.first > first || back.first + back.count <= last) return undefined;
    const taken: Opened[] = [];
    let waited = false;
    while (this.#ahead.length > 0 && this.#ahead[0]!.first <= last) {
      const run = this.#ahead.shift()!;
      if (!run.done) waited = true;
      const opened = await run.opening;
      if (!opened) {
        SealedFile.#giveBack(taken);
        return undefined;
      }
      taken.push(opened);
    }
    sealedReadCounters.ahead++;
    if (waited) sealedReadCounters.aheadWaited++;
    return taken;
  }

  /** Drops the runs read ahead (zeroed), once each has settled. */
  async #dropAhead(): Promise<void> {
    for (const run of this.#ahead.splice(0)) {
      const opened = await run.opening;
      if (opened) SealedFile.#giveBack([opened]);
    }
  }

  /** How many blocks to read ahead after a read of `count` blocks in order. */
  #aheadBlocks(count: number): number {
    const bs = this.blockSize;
    return Math.max(1, Math.min(Math.floor(AHEAD_BYTES / bs), Math.max(2 * count, Math.ceil(PIPE_BYTES / bs))));
  }

  /** Drops the opened blocks kept for the next read (zeroed), after the read ahead in flight settles. */
  async #forget(): Promise<void> {
    SealedFile.#giveBack(this.#window.splice(0));
    this.#lastEnd = -1;
    await this.#dropAhead();
  }

  /** Nobody holds the file open: the plaintext kept for the next read is zeroed and let go. */
  forgetOpened(): Promise<void> {
    // Nothing kept (a file created, stat'ed or only written): no turn in the queue.
    if (this.#window.length === 0 && this.#ahead.length === 0) return Promise.resolve();
    return this.#queue.run(() => this.#forget());
  }

  async #writeRaw(pieces: Buffer[], position: number): Promise<void> {
    const total = pieces.reduce((sum, piece) => sum + piece.length, 0);
    const { bytesWritten } = await this.#disk.writev(pieces, position);
    if (bytesWritten === total) return;
    // A short writev (a full stick, a signal): the rest from where it stopped.
    if (bytesWritten <= 0) throw new ErrnoError(Errno.EIO, `${this.path}: short write`);
    const rest = Buffer.concat(pieces).subarray(bytesWritten);
    let done = 0;
    while (done < rest.length) {
      const { bytesWritten: n } = await this.#disk.write(rest, done, rest.length - done, position + bytesWritten + done);
      if (n <= 0) throw new ErrnoError(Errno.EIO, `${this.path}: short write`);
      done += n;
    }
  }

  /**
   * Blocks from..to-1 become holes (a gap left by a write beyond the end, or
   * a truncate up): the file is cut to block `from` (nothing stale can
   * remain there) and extended, which file systems with sparse files do
   * without writing (FAT writes the zeros itself).
   */
  async #zeroBlocks(from: number, to: number): Promise<void> {
    if (to <= from) return;
    await this.#disk.truncate(this.#blockAt(from));
    await this.#disk.truncate(this.#blockAt(to));
  }

  #assertOpen(): void {
    if (this.#closed) throw new ErrnoError(Errno.EBADF, `${this.path} is closed`);
  }

  /**
   * Waits for the writes behind, oldest first: all of them, or (`room`) until
   * `room` more bytes fit within BEHIND_BYTES; throws the error of one that
   * failed (until the file closes).
   */
  async #drain(room?: number): Promise<void> {
    while (this.#behind.length > 0 && (room === undefined || this.#behindBytes + room > BEHIND_BYTES)) await this.#behind.shift()!.done.catch(() => {});
    if (this.#behindError) throw this.#behindError;
  }

  /** Bytes of the writes behind. */
  get #behindBytes(): number {
    return this.#behind.reduce((sum, write) => sum + write.bytes, 0);
  }

  /**
   * Read up to target.length bytes at `position`; fewer at the end. From the
   * blocks the last read kept or read ahead when they hold the range; else
   * opened now (and kept). Reading in order opens the next blocks meanwhile.
   */
  read(target: Uint8Array, position: number): Promise<number> {
    return this.#queue.run(async () => {
      this.#assertOpen();
      await this.#drain();
      const end = Math.min(this.#size, position + target.length);
      if (end <= position) return 0;
      const bs = this.blockSize;
      const first = Math.floor(position / bs);
      const last = Math.floor((end - 1) / bs);
      const count = last - first + 1;
      const inOrder = position === this.#lastEnd || position === 0;
      this.#lastEnd = end;
      const windowBlocks = Math.max(1, Math.floor(WINDOW_BYTES / bs));
      try {
        if (SealedFile.#covers(this.#window, first, last)) sealedReadCounters.kept++;
        else {
          // A read across the window's end (reads that are not whole blocks) takes the runs after it from the read ahead.
          const windowEnd = this.#window.length > 0 ? this.#window.at(-1)!.first + this.#window.at(-1)!.count : -1;
          const across = this.#window.length > 0 && this.#window[0]!.first <= first && first < windowEnd;
          const runs = await this.#takeAhead(across ? windowEnd : first, last);
          if (runs) {
            const still = across ? this.#window.filter((run) => run.first + run.count > first) : [];
            SealedFile.#giveBack(this.#window.filter((run) => !still.includes(run)));
            this.#window = [...still, ...runs];
          } else {
            sealedReadCounters.opened++;
            // Not where the reads were going: what was read ahead is of no use.
            await this.#dropAhead();
            const kept: Opened[] = [];
            try {
              await this.#eachRun(first, count, (run) => {
                this.#copyOut([run], target, position, end - position);
                if (count <= windowBlocks) kept.push(run);
                else SealedFile.#giveBack([run]);
              });
            } catch (error) {
              SealedFile.#giveBack(kept);
              throw error;
            }
            SealedFile.#giveBack(this.#window.splice(0, this.#window.length, ...kept));
            if (inOrder) this.#readAhead(last + 1, last + 1 + this.#aheadBlocks(count));
            return end - position;
          }
        }
        this.#copyOut(this.#window, target, position, end - position);
      } catch (error) {
        target.fill(0, 0, Math.min(target.length, end - position));
        throw error;
      }
      if (inOrder) {
        const after = this.#window.at(-1)!;
        this.#readAhead(after.first + after.count, last + 1 + this.#aheadBlocks(count));
      }
      return end - position;
    });
  }

  /**
   * Write all of `data` at `position` (a gap beyond the end reads as zeros).
   * Answered once the plaintext is in its runs; sealed and written behind
   * (BEHIND_BYTES), except the groups a write larger than that waits for.
   */
  write(data: Uint8Array, position: number): Promise<number> {
    return this.#queue.run(async () => {
      this.#assertOpen();
      if (data.length === 0) return 0;
      const bs = this.blockSize;
      const end = position + data.length;
      const first = Math.floor(position / bs);
      const last = Math.floor((end - 1) / bs);
      // The size counts the writes behind (set when each was answered).
      const oldBlocks = this.#blocks(this.#size);
      // Partly covered blocks that hold content are read back, a gap cuts the file, a bump re-seals the header: each after the writes behind are down.
      const readsBack = (position % bs !== 0 && first < oldBlocks) || (end % bs !== 0 && last < oldBlocks);
      await this.#drain(readsBack || first > oldBlocks || this.#bumpArmed ? undefined : data.length);
      await this.#forget();
      await this.#bumpIfArmed();
      await this.#ensureOnDisk();
      if (first > oldBlocks) await this.#zeroBlocks(oldBlocks, first);
      const per = Math.max(1, Math.floor(WRITE_RUN_BYTES / bs));
      // Sealing: runs on the workers; each group of runs (contiguous on disk,
      // IN_FLIGHT * PIPE_BYTES at most: one run of 64 KiB blocks) then goes
      // down in one writev, one group written while the next is sealed, and
      // each after the one before it (this write's or an earlier one's: the
      // same blocks written twice must end as the later write left them).
      const groupRuns = Math.max(1, Math.floor((IN_FLIGHT * PIPE_BYTES) / (per * bs)));
      let group: { first: number; sealing: Promise<Buffer> }[] = [];
      const writing: Promise<void>[] = [];
      const sizeBefore = this.#size;
      const grows = end > sizeBefore;
      let tail = this.#diskTail;
      const writeGroup = (runs: typeof group, andHeader: boolean): Promise<void> => {
        const at = this.#blockAt(runs[0]!.first);
        const sealed = Promise.all(runs.map((r) => r.sealing));
        const done = Promise.all([sealed, tail]).then(async ([buffers]) => {
          try {
            // A write behind before this one failed (and put the size record back): nothing more goes down.
            if (this.#behindError) throw this.#behindError;
            // The size record goes down beside the last group's blocks, not after
            // them: without an fsync between, the file system keeps no order
            // anyway, and a write that fails puts the old size back (below).
            await Promise.all([this.#writeRaw(buffers, at), andHeader ? this.#writeHeader(end) : undefined]);
          } finally {
            for (const buffer of buffers) giveBackRunBuffer(buffer.buffer as ArrayBuffer);
          }
        });
        // A run that failed to seal: the others still go back to the pool.
        void sealed.catch(async () => {
          for (const r of runs) {
            const b = await r.sealing.catch(() => undefined);
            if (b) giveBackRunBuffer(b.buffer as ArrayBuffer);
          }
        });
        done.catch(() => {});
        tail = done.catch(() => {});
        return done;
      };
      const settleFailed = async (): Promise<void> => {
        await Promise.allSettled(writing);
        for (const r of group) {
          const b = await r.sealing.catch(() => undefined);
          if (b) giveBackRunBuffer(b.buffer as ArrayBuffer);
        }
      };
      try {
        // In runs, so a 1 GiB write does not hold 1 GiB of plaintext at once.
        for (let runFirst = first; runFirst <= last; runFirst += per) {
          const runLast = Math.min(last, runFirst + per - 1);
          const count = runLast - runFirst + 1;
          const runStart = runFirst * bs;
          const from = Math.max(position, runStart);
          const to = Math.min(end, (runLast + 1) * bs);
          let sealing: Promise<Buffer>;
          if (from === runStart && to === (runLast + 1) * bs) {
            // Whole blocks: sealed from the caller's data (copied into the run at once, so the caller may reuse it when answered).
            sealing = this.#sealRun(Buffer.from(data.buffer, data.byteOffset + (from - position), to - from), runFirst, count, false);
          } else {
            const plain = Buffer.alloc(count * bs);
            // Blocks only partly covered keep their other bytes.
            if (from > runStart && runFirst < oldBlocks) await this.#open(runFirst, 1, plain.subarray(0, bs));
            if (to < (runLast + 1) * bs && runLast < oldBlocks && (runLast !== runFirst || from === runStart))
              await this.#open(runLast, 1, plain.subarray((count - 1) * bs));
            plain.set(data.subarray(from - position, to - position), from - runStart);
            sealing = this.#sealRun(plain, runFirst, count);
            void sealing.finally(() => plain.fill(0)).catch(() => {});
          }
          sealing.catch(() => {});
          group.push({ first: runFirst, sealing });
          const lastRun = runLast === last;
          if (group.length >= groupRuns || lastRun) {
            writing.push(writeGroup(group, lastRun && grows));
            group = [];
            // One group written while the next is sealed.
            if (writing.length >= 2) await writing.shift();
          }
        }
      } catch (error) {
        // A failure before the write was answered: the groups in flight settle first (their own errors, if any, are second),
        // and a size record that went down beside them is put back (the blocks past the old size may not all be there).
        await settleFailed();
        if (grows) await this.#writeHeader(sizeBefore).catch(() => {});
        throw error;
      }
      // Behind: the last groups are sealed and written after the answer.
      const finished = (async () => {
        try {
          for (const written of writing.splice(0)) await written;
        } catch (error) {
          await settleFailed();
          // Only the first failure puts the size back: the writes after it were dropped without writing.
          if (this.#behindError) throw error;
          this.#behindError = ErrnoError.fromNode(error);
          this.#size = sizeBefore;
          if (grows) await this.#writeHeader(sizeBefore).catch(() => {});
          throw error;
        }
      })();
      const onDisk = (last - first + 1) * this.#stride;
      bytesBehind += onDisk;
      void finished.finally(() => void (bytesBehind -= onDisk)).catch(() => {});
      this.#diskTail = finished.catch(() => {});
      this.#behind.push({ done: finished, bytes: data.length });
      if (grows) this.#size = end;
      return data.length;
    });
  }

  /** Change the size: down re-seals the new last block and cuts the rest; up seals zeros for the new range only. */
  truncate(size: number): Promise<void> {
    return this.#queue.run(async () => {
      this.#assertOpen();
      if (!Number.isSafeInteger(size) || size < 0) throw new ErrnoError(Errno.EINVAL, 'invalid size');
      await this.#drain();
      if (size === this.#size) return;
      await this.#forget();
      await this.#bumpIfArmed();
      await this.#ensureOnDisk();
      const bs = this.blockSize;
      const oldBlocks = this.#blocks(this.#size);
      const newBlocks = this.#blocks(size);
      if (size > this.#size) {
        // The old last block's padding is already zeros.
        await this.#zeroBlocks(oldBlocks, newBlocks);
        await this.#writeHeader(size);
        this.#size = size;
        return;
      }
      const keep = size % bs;
      if (keep !== 0) {
        const last = newBlocks - 1;
        const plain = Buffer.allocUnsafe(bs);
        await this.#open(last, 1, plain);
        plain.fill(0, keep);
        const run = await this.#sealRun(plain, last, 1);
        plain.fill(0);
        try {
          await this.#writeRaw([run], this.#blockAt(last));
        } finally {
          giveBackRunBuffer(run.buffer as ArrayBuffer);
        }
      }
      await this.#writeHeader(size);
      this.#size = size;
      if (newBlocks < oldBlocks) await this.#disk.truncate(this.#blockAt(newBlocks));
    });
  }

  sync(datasync: boolean): Promise<void> {
    return this.#queue.run(async () => {
      this.#assertOpen();
      // The writes behind reach the stick before the sync does.
      await this.#drain();
      // An unwritten file has nothing on disk to sync (its row says it is empty).
      if (!this.#fh) return;
      await (datasync ? this.#fh.datasync() : this.#fh.sync());
    });
  }

  close(): Promise<void> {
    return this.#queue.run(async () => {
      if (this.#closed) return;
      this.#closed = true;
      // Reported to the caller once the file is closed (nothing more can be done for it then).
      const behind = await this.#drain().then(
        () => undefined,
        (error: unknown) => error,
      );
      await this.#forget();
      await this.#fh?.close();
      if (behind) throw behind;
    });
  }
}
