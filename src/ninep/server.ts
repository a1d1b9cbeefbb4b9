// The 9P2000.L protocol server: reads framed requests from a byte stream
// (a virtio-serial port, a socketpair), keeps the session's fid table as guest
// paths, calls a NinepBackend, and writes replies. It trusts nothing the guest
// sends: frame sizes are checked against msize before anything is buffered,
// bodies are decoded with bounds checks, fids and names are validated before a
// backend sees them. A bad request gets Rlerror; a broken frame closes the
// channel. Nothing thrown by a backend or the decoder escapes; a backend
// failure that is not an errno becomes EIO.
//
// Requests run concurrently (bounded); replies go out in completion order,
// which 9P allows (the tag matches them up). Reading pauses while the
// bounded queue is full or the peer is not draining replies, so memory stays
// bounded by concurrency × msize.

import type { Duplex } from 'node:stream';
import { ByteQueue } from '../primitives/byte-queue.ts';
import { readBuffers, writeBuffers } from './message-buffers.ts';
import { AT_REMOVEDIR, Errno, ErrnoError, LockStatus, LockType, OpenFlags, QidType, baseName, childPath, isValidName, parentPath } from './backend.ts';
import type { LazyAttr, LockRequest, NinepAttr, NinepBackend, NinepHandle, Qid } from './backend.ts';
import {
  DecodeError,
  HEADER_SIZE,
  IO_HEADER_SIZE,
  MessageId,
  TWRITE_HEADER_SIZE,
  decode,
  direntSize,
  encode,
  messageName,
  rlerror,
  writeDirent,
  writeHeader,
} from './codec.ts';
import type { Message, RBody, TMessage } from './codec.ts';

export const PROTOCOL_VERSION = '9P2000.L';
export const DEFAULT_MAX_MSIZE = 512 * 1024;
export const MIN_MSIZE = 4096;
const XATTR_SIZE_MAX = 65536;
/**
 * Looked-up attributes one session remembers (each about 1 KiB with the
 * host's lstat it is built from): a 10,000-entry listing fits, and a session
 * holds at most ~16 MiB of them (docs/tables-and-namespace.md, "Memory bounds of the namespace").
 */
export const ATTR_CACHE_ENTRIES = 16_384;
/** The largest directory entry in an Rreaddir: a 255-byte name. */
const MAX_DIRENT_SIZE = 24 + 255;
/** Tgetattr reply validity: P9_STATS_BASIC | P9_STATS_BTIME. */
const GETATTR_VALID = 0x7ff | 0x800;

export interface NinepServerOptions {
  /** Largest msize the server agrees to (default 512 KiB, at least 4096). */
  maxMsize?: number;
  /** Requests processed at once (default 32). */
  concurrency?: number;
  /** Diagnostics (malformed frames, unexpected backend failures). */
  log?: (message: string) => void;
  /** Log lines passed on per minute; the rest are counted and summarised (default 200). */
  logLimitPerMinute?: number;
  /**
   * How long (ms) a looked-up attribute may answer a later walk/getattr of the
   * same path (default 5000; 0 disables). Any request that can change the
   * tree or a file (write, setattr, create, rename, remove, open with O_TRUNC,
   * ...) invalidates everything at once, so the guest always sees its own
   * changes; only changes made on the host by someone else can show up this
   * much later, like NFS attribute caching. Saves one or two host stats per
   * file for `ls -l`, `find`, `stat` loops (the entries come primed by readdir).
   */
  attrCacheMs?: number;
  /** Open files at once (host descriptors) before Tlopen/Tlcreate answer EMFILE (default 2048). */
  maxOpenFiles?: number;
  /** Fids at once before a walk or attach answers EMFILE (default 65536). */
  maxFids?: number;
  /**
   * Close the backend when the session ends (default true). False when one
   * backend serves several sessions (one per mount over the Ethernet
   * transport) and its owner closes it.
   */
  closeBackend?: boolean;
}

export interface NinepCounters {
  /** Requests received (intact frames). */
  messages: number;
  /** Replies sent. */
  replies: number;
  /** Rlerror replies among them. */
  errors: number;
  bytesIn: number;
  bytesOut: number;
  /** Payload bytes of Tread/Twrite (data only). */
  readBytes: number;
  writeBytes: number;
  /** Treads and Twrites answered, and the milliseconds from taking each to its reply (summed): the server's part of their round trips. */
  reads: number;
  readMs: number;
  writes: number;
  writeMs: number;
  inFlight: number;
  maxInFlight: number;
  /** Fids right now. */
  fids: number;
  /** Fids holding an open backend handle right now. */
  openFiles: number;
}

export interface NinepServer {
  readonly counters: NinepCounters;
  /** Negotiated msize (0 before Tversion). */
  readonly msize: number;
  /** Settles when the channel has closed and every handle is released. */
  readonly closed: Promise<void>;
  /** Stop serving: close the stream and release everything. */
  close(): Promise<void>;
}

interface XattrRead {
  kind: 'read';
  data: Buffer;
}
interface XattrWrite {
  kind: 'write';
  name: string;
  size: number;
  flags: number;
  data: Buffer;
  written: number;
}

interface FidState {
  path: string;
  qid: Qid;
  /** Reserved by a walk/xattrwalk still in progress: unusable until it completes. */
  pending: boolean;
  handle: NinepHandle | undefined;
  opening: boolean;
  xattr: XattrRead | XattrWrite | undefined;
  /** Requests currently using this fid; the handle closes when clunked and idle. */
  refs: number;
  clunked: boolean;
}

interface Running {
  tag: number;
  waiters: Array<() => void> | undefined;
}

const err = (errno: number, message?: string): ErrnoError => new ErrnoError(errno, message);

function checkName(name: string): void {
  if (!isValidName(name)) throw err(name === '.' || name === '..' ? Errno.EINVAL : Errno.ENOENT, `invalid name ${JSON.stringify(name)}`);
  if (Buffer.byteLength(name) > 255) throw err(Errno.ENAMETOOLONG);
}

function checkOffset(offset: number): void {
  if (!Number.isSafeInteger(offset)) throw err(Errno.EINVAL, 'offset beyond 2^53');
}

function isDir(qid: Qid): boolean {
  return (qid.type & QidType.DIR) !== 0;
}

/** Serve 9P2000.L on `stream` from `backend` until the stream closes. */
export function serveNinep(stream: Duplex, backend: NinepBackend, options: NinepServerOptions = {}): NinepServer {
  return new StreamServer(stream, backend, options);
}

/** One 9P connection: its negotiated msize, fids and requests in flight. */
class StreamServer implements NinepServer {
  readonly counters: NinepCounters = {
    messages: 0,
    replies: 0,
    errors: 0,
    bytesIn: 0,
    bytesOut: 0,
    readBytes: 0,
    writeBytes: 0,
    reads: 0,
    readMs: 0,
    writes: 0,
    writeMs: 0,
    inFlight: 0,
    maxInFlight: 0,
    fids: 0,
    openFiles: 0,
  };
  msize = 0;
  readonly closed: Promise<void>;

  private readonly stream: Duplex;
  private readonly backend: NinepBackend;
  private readonly maxMsize: number;
  private readonly concurrency: number;
  private readonly log: (message: string) => void;

  private readonly fids = new Map<number, FidState>();
  private readonly attrTtl: number;
  private readonly maxOpenFiles: number;
  private readonly maxFids: number;
  private readonly closeBackend: boolean;
  private readonly attrs = new Map<string, { attr: LazyAttr; gen: number; expires: number }>();
  /** Bumped before and after every request that may change something: stale attrs are never cached. */
  private generation = 0;
  private readonly running = new Map<number, Running>();
  private queue: Buffer[] = [];
  private readonly queuedTags = new Set<number>();
  private readonly input = new ByteQueue();
  private paused = false;
  private corked = false;
  private ended = false;
  private resolveClosed!: () => void;

  constructor(stream: Duplex, backend: NinepBackend, options: NinepServerOptions) {
    this.stream = stream;
    this.backend = backend;
    this.maxMsize = Math.max(MIN_MSIZE, Math.floor(options.maxMsize ?? DEFAULT_MAX_MSIZE));
    this.concurrency = Math.max(1, Math.floor(options.concurrency ?? 32));
    this.attrTtl = Math.max(0, options.attrCacheMs ?? 5000);
    this.maxOpenFiles = Math.max(1, options.maxOpenFiles ?? 2048);
    this.maxFids = Math.max(2, options.maxFids ?? 65536);
    this.closeBackend = options.closeBackend ?? true;
    // Rate-limited: a guest spamming bad frames must not flood the launcher's log.
    const sink = options.log ?? (() => {});
    const logLimit = options.logLimitPerMinute ?? 200;
    let windowStart = 0;
    let inWindow = 0;
    let suppressed = 0;
    this.log = (message: string) => {
      const now = Date.now();
      if (now - windowStart > 60_000) {
        if (suppressed > 0) sink(`9p: ${suppressed} more messages suppressed`);
        windowStart = now;
        inWindow = 0;
        suppressed = 0;
      }
      if (++inWindow <= logLimit) sink(message);
      else suppressed++;
    };
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    stream.on('data', (chunk: Buffer | string) => this.onData(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
    stream.on('drain', () => this.maybeResume());
    stream.on('end', () => this.shutdown('peer ended the stream'));
    stream.on('close', () => this.shutdown('stream closed'));
    stream.on('error', (e: Error) => this.shutdown(`stream error: ${e.message}`));
  }

  async close(): Promise<void> {
    this.shutdown('server closed');
    this.stream.destroy();
    return this.closed;
  }

  // -------------------------------------------------------------------------
  // Framing.

  private onData(chunk: Buffer): void {
    if (this.ended || chunk.length === 0) return;
    this.counters.bytesIn += chunk.length;
    this.input.push(chunk);
    this.parseFrames();
  }

  /** The frame size limit: msize once negotiated, the cap before. */
  private get frameLimit(): number {
    return this.msize || this.maxMsize;
  }

  private parseFrames(): void {
    // Stop taking frames while the queue is full: the rest stays buffered
    // (and the stream paused) until requests complete.
    while (!this.ended && this.input.length >= 4 && this.queue.length < this.concurrency * 2) {
      const size = this.input.peekUInt32('le');
      if (size < HEADER_SIZE || size > this.frameLimit) {
        this.fatal(`broken framing: frame size ${size} (limit ${this.frameLimit})`);
        return;
      }
      if (this.input.length < size) break;
      this.onFrame(this.input.take(size));
    }
    this.maybePause();
  }

  private maybePause(): void {
    const busy = this.queue.length >= this.concurrency * 2 || this.stream.writableNeedDrain;
    if (busy && !this.paused && !this.ended) {
      this.paused = true;
      this.stream.pause();
    }
  }

  private maybeResume(): void {
    if (!this.paused || this.ended) return;
    if (this.queue.length < this.concurrency && !this.stream.writableNeedDrain) {
      this.paused = false;
      this.stream.resume();
    }
  }

  private fatal(reason: string): void {
    this.log(`9p: closing channel: ${reason}`);
    this.shutdown(reason);
    this.stream.destroy();
  }

  private shutdown(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.log(`9p: session ends (${reason})`);
    this.queue = [];
    this.queuedTags.clear();
    this.input.clear();
    void this.finish();
  }

  private async finish(): Promise<void> {
    // Let running requests settle (their replies are dropped), then release every fid.
    while (this.running.size > 0) {
      const r = this.running.values().next().value!;
      await new Promise<void>((resolve) => (r.waiters ??= []).push(resolve));
    }
    this.clunkAll();
    try {
      if (this.closeBackend) await this.backend.close?.();
    } catch (e) {
      this.log(`9p: backend close failed: ${String(e)}`);
    }
    this.resolveClosed();
  }

  // -------------------------------------------------------------------------
  // Dispatch.

  private send(buf: Buffer): void {
    if (this.ended || this.stream.destroyed || !this.stream.writable) return;
    this.counters.replies++;
    this.counters.bytesOut += buf.length;
    if (buf[4] === MessageId.Rlerror) this.counters.errors++;
    if (!this.corked) {
      this.corked = true;
      this.stream.cork();
      process.nextTick(() => {
        this.corked = false;
        if (!this.stream.destroyed) this.stream.uncork();
      });
    }
    try {
      this.stream.write(buf);
    } catch (e) {
      this.log(`9p: write failed: ${String(e)}`);
    }
  }

  private onFrame(frame: Buffer): void {
    this.counters.messages++;
    const type = frame[4]!;
    const tag = frame.readUInt16LE(5);
    if (type === MessageId.Tversion) return this.version(frame, tag);
    if (type === MessageId.Tflush) return void this.flush(frame, tag);
    if (type === MessageId.Tclunk && this.clunkInOrder(frame, tag)) return;
    if (type === MessageId.Twalk && this.cloneInOrder(frame, tag)) return;
    if (this.running.has(tag) || this.queuedTags.has(tag)) {
      this.log(`9p: tag ${tag} reused while in flight`);
      return this.send(rlerror(tag, Errno.EINVAL));
    }
    if (this.running.size < this.concurrency) this.start(frame, tag);
    else {
      this.queue.push(frame);
      this.queuedTags.add(tag);
    }
  }

  private start(frame: Buffer, tag: number): void {
    const r: Running = { tag, waiters: undefined };
    this.running.set(tag, r);
    this.counters.inFlight = this.running.size;
    if (this.running.size > this.counters.maxInFlight) this.counters.maxInFlight = this.running.size;
    void this.run(frame, tag).then((reply) => {
      this.running.delete(tag);
      this.counters.inFlight = this.running.size;
      this.send(reply);
      if (r.waiters) for (const w of r.waiters) w();
      this.next();
    });
  }

  private next(): void {
    while (!this.ended && this.running.size < this.concurrency && this.queue.length > 0) {
      const frame = this.queue.shift()!;
      const tag = frame.readUInt16LE(5);
      this.queuedTags.delete(tag);
      this.start(frame, tag);
    }
    if (!this.ended && this.input.length >= 4) this.parseFrames();
    this.maybeResume();
  }

  /**
   * A Tclunk answered at once, before the next request is read: the guest
   * module answers some clunks itself (ethernet-transport.ts, quiet
   * clunks) and uses the fid number and the tag again right away, so the
   * clunk must be done before anything sent after it. Only a clunk that
   * needs no backend call: not one that commits an xattr (that one runs
   * as any request does), nor one for a tag still in use (EINVAL, below).
   * False: not taken here.
   */
  private clunkInOrder(frame: Buffer, tag: number): boolean {
    if (this.msize === 0 || frame.length !== HEADER_SIZE + 4 || this.running.has(tag) || this.queuedTags.has(tag)) return false;
    const id = frame.readUInt32LE(HEADER_SIZE);
    const f = this.fids.get(id);
    if (f !== undefined && (f.pending || f.xattr?.kind === 'write')) return false;
    if (f === undefined) {
      this.send(rlerror(tag, Errno.EBADF));
      return true;
    }
    this.drop(id, f);
    this.send(encode({ type: 'Rclunk', tag }));
    return true;
  }

  /**
   * A Twalk with no names (a clone: the guest's open, create and setattr
   * start with one) answered at once, in order, for the same reason as a
   * clunk: the guest module answers these itself too. The same checks and
   * answers as walk() below. False: not a clone, or a tag still in use.
   */
  private cloneInOrder(frame: Buffer, tag: number): boolean {
    if (this.msize === 0 || frame.length !== HEADER_SIZE + 10 || frame.readUInt16LE(HEADER_SIZE + 8) !== 0 || this.running.has(tag) || this.queuedTags.has(tag))
      return false;
    const fid = frame.readUInt32LE(HEADER_SIZE);
    const newfid = frame.readUInt32LE(HEADER_SIZE + 4);
    const f = this.fids.get(fid);
    let errno = 0;
    if (f === undefined || f.pending) errno = Errno.EBADF;
    else if (newfid === fid) errno = f.handle !== undefined || f.opening || f.xattr !== undefined ? Errno.EBUSY : 0;
    else if (f.xattr !== undefined) errno = Errno.EINVAL;
    else if (this.fids.has(newfid)) errno = Errno.EBADF;
    else if (this.fids.size >= this.maxFids) errno = Errno.EMFILE;
    if (errno !== 0) {
      this.send(rlerror(tag, errno));
      return true;
    }
    if (newfid !== fid) this.reserve(newfid, f!.path, f!.qid).pending = false;
    this.send(encode({ type: 'Rwalk', tag, wqids: [] }));
    return true;
  }

  /** Handle one request; always resolves with a reply frame. */
  private async run(frame: Buffer, tag: number): Promise<Buffer> {
    const held: FidState[] = [];
    const type = frame[4]!;
    const started = performance.now();
    const mutating = this.mayMutate(frame, type);
    if (mutating) this.invalidateAttrs();
    try {
      if (this.msize === 0) throw err(Errno.EPROTO, 'Tversion first');
      if (type === MessageId.Tread) return await this.read(frame, tag, held);
      if (type === MessageId.Twrite) return await this.write(frame, tag, held);
      if (type === MessageId.Treaddir) return await this.readdir(frame, tag, held);
      const msg = decode(frame) as TMessage;
      if (msg.type[0] !== 'T') throw err(Errno.EOPNOTSUPP, `${msg.type} is a reply, not a request`);
      const body = await this.handle(msg, held);
      return encode({ ...body, tag } as Parameters<typeof encode>[0]);
    } catch (e) {
      return rlerror(tag, this.errnoOf(e, frame));
    } finally {
      if (mutating) this.invalidateAttrs();
      for (const f of held) this.release(f);
      if (type === MessageId.Twrite) {
        // Answered: nothing reads a Twrite's data any more (a placed one's buffer is used again: message-buffers.ts).
        writeBuffers.giveBack(frame);
        this.counters.writes++;
        this.counters.writeMs += performance.now() - started;
      } else if (type === MessageId.Tread) {
        this.counters.reads++;
        this.counters.readMs += performance.now() - started;
      }
    }
  }

  /** Requests that cannot change anything the attr cache holds. */
  private mayMutate(frame: Buffer, type: number): boolean {
    switch (type) {
      case MessageId.Tgetattr:
      case MessageId.Twalk:
      case MessageId.Tread:
      case MessageId.Treaddir:
      case MessageId.Treadlink:
      case MessageId.Tstatfs:
      case MessageId.Txattrwalk:
      case MessageId.Tlock:
      case MessageId.Tgetlock:
      case MessageId.Tattach:
      case MessageId.Tfsync:
        return false;
      case MessageId.Tlopen:
        return frame.length < HEADER_SIZE + 8 || (frame.readUInt32LE(HEADER_SIZE + 4) & OpenFlags.TRUNC) !== 0;
      case MessageId.Tclunk: {
        // Only an xattr write commits on clunk.
        const f = frame.length >= HEADER_SIZE + 4 ? this.fids.get(frame.readUInt32LE(HEADER_SIZE)) : undefined;
        return f?.xattr?.kind === 'write';
      }
      default:
        return true;
    }
  }

  private invalidateAttrs(): void {
    this.generation++;
    if (this.attrs.size > 0) this.attrs.clear();
  }

  /** backend.getattr through the short-lived attr cache. */
  private async getattrPath(path: string): Promise<NinepAttr> {
    if (this.attrTtl === 0) return this.backend.getattr(path);
    const hit = this.attrs.get(path);
    if (hit !== undefined && hit.gen === this.generation && hit.expires > performance.now()) {
      if (typeof hit.attr === 'function') hit.attr = hit.attr();
      return hit.attr;
    }
    const gen = this.generation;
    const attr = await this.backend.getattr(path);
    this.remember(path, attr, gen);
    return attr;
  }

  /** `now`: performance.now(), passed in by a listing that remembers thousands at once. */
  private remember(path: string, attr: LazyAttr, gen: number, now = performance.now()): void {
    if (this.attrTtl === 0 || gen !== this.generation) return;
    if (this.attrs.size >= ATTR_CACHE_ENTRIES) this.attrs.clear();
    this.attrs.set(path, { attr, gen, expires: now + this.attrTtl });
  }

  private errnoOf(e: unknown, frame: Buffer): number {
    if (e instanceof DecodeError) {
      this.log(`9p: bad ${messageName(frame[4]!) ?? `type ${frame[4]}`}: ${e.message}`);
      return e.errno;
    }
    const mapped = ErrnoError.fromNode(e);
    if (mapped.errno === Errno.EIO) this.log(`9p: ${messageName(frame[4]!)} failed: ${failureWithoutNames(e)}`);
    return mapped.errno;
  }

  private version(frame: Buffer, tag: number): void {
    let reply: Buffer;
    try {
      const msg = decode(frame) as Message<'Tversion'>;
      // A new version aborts the session: every fid is gone.
      this.clunkAll();
      if (msg.msize < MIN_MSIZE) throw err(Errno.EINVAL, `msize ${msg.msize} below ${MIN_MSIZE}`);
      const msize = Math.min(msg.msize, this.maxMsize);
      if (msg.version === PROTOCOL_VERSION || msg.version.startsWith(`${PROTOCOL_VERSION}.`)) {
        this.msize = msize;
        reply = encode({ type: 'Rversion', tag, msize, version: PROTOCOL_VERSION });
      } else {
        this.msize = 0;
        reply = encode({ type: 'Rversion', tag, msize, version: 'unknown' });
      }
    } catch (e) {
      reply = rlerror(tag, this.errnoOf(e, frame));
    }
    this.send(reply);
  }

  private async flush(frame: Buffer, tag: number): Promise<void> {
    let oldtag: number;
    try {
      if (frame.length < HEADER_SIZE + 2) throw new DecodeError('Tflush truncated');
      oldtag = frame.readUInt16LE(HEADER_SIZE);
    } catch (e) {
      return this.send(rlerror(tag, this.errnoOf(e, frame)));
    }
    const queued = this.queuedTags.has(oldtag) ? this.queue.findIndex((q) => q.readUInt16LE(5) === oldtag) : -1;
    if (queued >= 0) {
      // Not started: drop it; no reply for the old tag.
      this.queue.splice(queued, 1);
      this.queuedTags.delete(oldtag);
    } else {
      const r = this.running.get(oldtag);
      // Started: the backend call cannot be cancelled; its reply goes out first.
      if (r !== undefined && oldtag !== tag) await new Promise<void>((resolve) => (r.waiters ??= []).push(resolve));
    }
    this.send(encode({ type: 'Rflush', tag }));
    this.maybeResume();
  }

  // -------------------------------------------------------------------------
  // Fids.

  private use(id: number, held: FidState[]): FidState {
    const f = this.fids.get(id);
    if (f === undefined || f.pending) throw err(Errno.EBADF, `unknown fid ${id}`);
    f.refs++;
    held.push(f);
    return f;
  }

  private release(f: FidState): void {
    f.refs--;
    if (f.clunked && f.refs === 0) this.closeHandle(f);
  }

  private setHandle(f: FidState, h: NinepHandle): void {
    f.handle = h;
    this.counters.openFiles++;
  }

  private checkOpenLimit(): void {
    if (this.counters.openFiles >= this.maxOpenFiles) throw err(Errno.EMFILE, `${this.maxOpenFiles} files open`);
  }

  private closeHandle(f: FidState): void {
    const h = f.handle;
    if (h === undefined) return;
    f.handle = undefined;
    this.counters.openFiles--;
    h.close().catch((e: unknown) => this.log(`9p: close failed: ${String(e)}`));
  }

  /** Reserve a new fid number (EBADF if it is taken). */
  private reserve(id: number, path: string, qid: Qid): FidState {
    if (this.fids.has(id)) throw err(Errno.EBADF, `fid ${id} already in use`);
    if (this.fids.size >= this.maxFids) throw err(Errno.EMFILE, `${this.maxFids} fids in use`);
    const f: FidState = { path, qid, pending: true, handle: undefined, opening: false, xattr: undefined, refs: 0, clunked: false };
    this.fids.set(id, f);
    this.counters.fids = this.fids.size;
    return f;
  }

  private drop(id: number, f: FidState): void {
    if (this.fids.get(id) === f) this.fids.delete(id);
    this.counters.fids = this.fids.size;
    f.clunked = true;
    if (f.refs === 0) this.closeHandle(f);
  }

  private clunkAll(): void {
    for (const [id, f] of this.fids) this.drop(id, f);
  }

  /** After a rename, every fid below the old path follows it. */
  private movePaths(from: string, to: string): void {
    const prefix = from + '/';
    for (const f of this.fids.values()) {
      if (f.path === from) f.path = to;
      else if (f.path.startsWith(prefix)) f.path = to + f.path.slice(from.length);
    }
  }

  private openHandle(f: FidState): NinepHandle {
    if (f.handle === undefined) throw err(Errno.EBADF, 'fid is not open');
    return f.handle;
  }

  private dirFid(id: number, held: FidState[]): FidState {
    const f = this.use(id, held);
    if (!isDir(f.qid)) throw err(Errno.ENOTDIR);
    return f;
  }

  // -------------------------------------------------------------------------
  // Hot paths, decoded in place.

  private async read(frame: Buffer, tag: number, held: FidState[]): Promise<Buffer> {
    if (frame.length < HEADER_SIZE + 16) throw new DecodeError('Tread truncated');
    const f = this.use(frame.readUInt32LE(7), held);
    const offset = frame.readUInt32LE(11) + frame.readUInt32LE(15) * 4294967296;
    const count = Math.min(frame.readUInt32LE(19), this.msize - IO_HEADER_SIZE);
    checkOffset(offset);
    let n: number;
    let reply: Buffer;
    if (f.xattr !== undefined) {
      if (f.xattr.kind !== 'read') throw err(Errno.EBADF);
      const data = f.xattr.data;
      const from = Math.min(offset, data.length);
      n = Math.min(count, data.length - from);
      reply = Buffer.allocUnsafe(IO_HEADER_SIZE + n);
      data.copy(reply, IO_HEADER_SIZE, from, from + n);
    } else {
      const h = this.openHandle(f);
      reply = readBuffers.take(IO_HEADER_SIZE + count); // see message-buffers.ts
      n = await h.read(reply.subarray(IO_HEADER_SIZE), offset);
      if (!(n >= 0 && n <= count)) throw err(Errno.EIO, `backend read returned ${n}`);
      if (n < count) reply = reply.subarray(0, IO_HEADER_SIZE + n);
    }
    writeHeader(reply, IO_HEADER_SIZE + n, MessageId.Rread, tag);
    reply.writeUInt32LE(n, HEADER_SIZE);
    this.counters.readBytes += n;
    return reply;
  }

  private async write(frame: Buffer, tag: number, held: FidState[]): Promise<Buffer> {
    if (frame.length < TWRITE_HEADER_SIZE) throw new DecodeError('Twrite truncated');
    const count = frame.readUInt32LE(19);
    if (TWRITE_HEADER_SIZE + count > frame.length) throw new DecodeError('Twrite data shorter than its count');
    const f = this.use(frame.readUInt32LE(7), held);
    const offset = frame.readUInt32LE(11) + frame.readUInt32LE(15) * 4294967296;
    checkOffset(offset);
    const data = frame.subarray(TWRITE_HEADER_SIZE, TWRITE_HEADER_SIZE + count);
    let n: number;
    if (f.xattr !== undefined) {
      const x = f.xattr;
      if (x.kind !== 'write') throw err(Errno.EBADF);
      if (offset !== x.written || offset + count > x.size) throw err(Errno.EINVAL, 'xattr write out of order or too long');
      data.copy(x.data, offset);
      x.written += count;
      n = count;
    } else {
      n = await this.openHandle(f).write(data, offset);
      if (!(n >= 0 && n <= count)) throw err(Errno.EIO, `backend write returned ${n}`);
    }
    this.counters.writeBytes += n;
    const reply = Buffer.allocUnsafe(HEADER_SIZE + 4);
    writeHeader(reply, HEADER_SIZE + 4, MessageId.Rwrite, tag);
    reply.writeUInt32LE(n, HEADER_SIZE);
    return reply;
  }

  private async readdir(frame: Buffer, tag: number, held: FidState[]): Promise<Buffer> {
    if (frame.length < HEADER_SIZE + 16) throw new DecodeError('Treaddir truncated');
    const f = this.use(frame.readUInt32LE(7), held);
    const offset = frame.readUInt32LE(11) + frame.readUInt32LE(15) * 4294967296;
    const count = Math.min(frame.readUInt32LE(19), this.msize - IO_HEADER_SIZE);
    checkOffset(offset);
    if (!isDir(f.qid)) throw err(Errno.ENOTDIR);
    const h = this.openHandle(f);
    const reply = Buffer.allocUnsafe(IO_HEADER_SIZE + count);
    const end = IO_HEADER_SIZE + count;
    let pos = IO_HEADER_SIZE;
    // Cookies: 1 after '.', 2 after '..', then 2 + the backend's own cookies.
    let full = false;
    if (offset === 0) {
      if (pos + direntSize('.') > end) full = true;
      else pos = writeDirent(reply, pos, f.qid, 1, 4, '.');
    }
    if (!full && offset <= 1) {
      if (pos + direntSize('..') > end) full = true;
      else {
        let parent = f.qid;
        if (f.path !== '/')
          parent = await this.getattrPath(parentPath(f.path)).then(
            (a) => a.qid,
            () => f.qid,
          );
        pos = writeDirent(reply, pos, parent, 2, 4, '..');
      }
    }
    let cookie = Math.max(0, offset - 2);
    const first = pos;
    while (!full) {
      // Ask only for entries that surely fit (names up to 255 bytes): an
      // entry taken from a streamed listing and not sent would make the
      // guest's next Treaddir a seek back, which re-reads the folder up to
      // it. A reply ends up to one long entry short of full; a request too
      // small for one long entry still gets one (it may not fit: then the seek).
      const fits = Math.floor((end - pos) / MAX_DIRENT_SIZE);
      if (fits === 0 && pos > first) break;
      const want = Math.max(1, Math.min(4096, fits));
      const gen = this.generation;
      const entries = await h.readdir(cookie, want);
      const now = performance.now();
      for (const e of entries) {
        if (pos + direntSize(e.name) > end) {
          full = true;
          break;
        }
        if (!Number.isSafeInteger(e.offset + 2) || e.offset < 0) throw err(Errno.EOVERFLOW, 'bad directory cookie');
        pos = writeDirent(reply, pos, e.qid, e.offset + 2, e.type, e.name);
        cookie = e.offset;
        if (e.attr !== undefined) this.remember(childPath(f.path, e.name), e.attr, gen, now);
      }
      if (entries.length < want) break;
    }
    writeHeader(reply, pos, MessageId.Rreaddir, tag);
    reply.writeUInt32LE(pos - IO_HEADER_SIZE, HEADER_SIZE);
    return pos === end ? reply : reply.subarray(0, pos);
  }

  // -------------------------------------------------------------------------
  // Everything else, decoded by the codec.

  private async handle(m: TMessage, held: FidState[]): Promise<RBody> {
    const b = this.backend;
    switch (m.type) {
      case 'Tattach': {
        if (this.fids.has(m.fid)) throw err(Errno.EBADF, `fid ${m.fid} already in use`);
        const f = this.reserve(m.fid, '/', { type: QidType.DIR, version: 0, path: 0n });
        try {
          f.qid = (await b.getattr('/')).qid;
        } catch (e) {
          this.drop(m.fid, f);
          throw e;
        }
        f.pending = false;
        return { type: 'Rattach', qid: f.qid };
      }
      case 'Tauth':
        throw err(Errno.EOPNOTSUPP, 'no authentication required');
      case 'Twalk':
        return this.walk(m, held);
      case 'Tclunk': {
        const f = this.use(m.fid, held);
        this.drop(m.fid, f);
        const x = f.xattr;
        if (x?.kind === 'write') {
          if (x.written !== x.size) throw err(Errno.EINVAL, 'xattr value shorter than declared');
          await b.xattrSet!(f.path, x.name, x.size === 0 && x.flags === 0 ? null : x.data, x.flags);
        }
        return { type: 'Rclunk' };
      }
      case 'Tremove': {
        const f = this.use(m.fid, held);
        this.drop(m.fid, f);
        if (f.path === '/') throw err(Errno.EBUSY, 'cannot remove the root');
        await b.unlink(parentPath(f.path), baseName(f.path), isDir(f.qid) ? AT_REMOVEDIR : 0);
        return { type: 'Rremove' };
      }
      case 'Tlopen': {
        const f = this.use(m.fid, held);
        if (f.handle !== undefined || f.opening || f.xattr !== undefined) throw err(Errno.EINVAL, 'fid already open');
        this.checkOpenLimit();
        f.opening = true;
        try {
          const h = await b.open(f.path, m.flags & ~(OpenFlags.CREATE | OpenFlags.EXCL));
          if (f.clunked) {
            void h.close().catch(() => {});
            throw err(Errno.EBADF, 'fid clunked while opening');
          }
          this.setHandle(f, h);
          f.qid = h.qid;
          return { type: 'Rlopen', qid: h.qid, iounit: 0 };
        } finally {
          f.opening = false;
        }
      }
      case 'Tlcreate': {
        const f = this.dirFid(m.fid, held);
        checkName(m.name);
        if (f.handle !== undefined || f.opening || f.xattr !== undefined) throw err(Errno.EINVAL, 'fid already open');
        this.checkOpenLimit();
        f.opening = true;
        try {
          const h = await b.create(f.path, m.name, m.flags, m.mode & 0o7777, m.gid);
          if (f.clunked) {
            void h.close().catch(() => {});
            throw err(Errno.EBADF, 'fid clunked while creating');
          }
          // The fid now stands for the new, open file.
          f.path = childPath(f.path, m.name);
          this.setHandle(f, h);
          f.qid = h.qid;
          return { type: 'Rlcreate', qid: h.qid, iounit: 0 };
        } finally {
          f.opening = false;
        }
      }
      case 'Tgetattr': {
        const f = this.use(m.fid, held);
        const a: NinepAttr = f.handle !== undefined ? await f.handle.getattr() : await this.getattrPath(f.path);
        return {
          type: 'Rgetattr',
          valid: GETATTR_VALID,
          qid: a.qid,
          mode: a.mode,
          uid: a.uid,
          gid: a.gid,
          nlink: a.nlink,
          rdev: a.rdev,
          size: a.size,
          blksize: a.blksize,
          blocks: a.blocks,
          atimeSec: a.atimeSec,
          atimeNsec: a.atimeNsec,
          mtimeSec: a.mtimeSec,
          mtimeNsec: a.mtimeNsec,
          ctimeSec: a.ctimeSec,
          ctimeNsec: a.ctimeNsec,
          btimeSec: a.btimeSec,
          btimeNsec: a.btimeNsec,
          gen: 0,
          dataVersion: 0,
        };
      }
      case 'Tsetattr': {
        const f = this.use(m.fid, held);
        if (m.valid & 0x8) checkOffset(m.size);
        await b.setattr(f.path, {
          valid: m.valid,
          mode: m.mode & 0o7777,
          uid: m.uid,
          gid: m.gid,
          size: m.size,
          atimeSec: m.atimeSec,
          atimeNsec: m.atimeNsec,
          mtimeSec: m.mtimeSec,
          mtimeNsec: m.mtimeNsec,
        });
        return { type: 'Rsetattr' };
      }
      case 'Tstatfs': {
        const f = this.use(m.fid, held);
        const s = await b.statfs(f.path);
        return {
          type: 'Rstatfs',
          fsType: s.type,
          bsize: s.bsize,
          blocks: s.blocks,
          bfree: s.bfree,
          bavail: s.bavail,
          files: s.files,
          ffree: s.ffree,
          fsid: s.fsid,
          namelen: s.namelen,
        };
      }
      case 'Tmkdir': {
        const f = this.dirFid(m.dfid, held);
        checkName(m.name);
        return { type: 'Rmkdir', qid: await b.mkdir(f.path, m.name, m.mode & 0o7777, m.gid) };
      }
      case 'Tmknod': {
        const f = this.dirFid(m.dfid, held);
        checkName(m.name);
        return { type: 'Rmknod', qid: await b.mknod(f.path, m.name, m.mode, m.major, m.minor, m.gid) };
      }
      case 'Tsymlink': {
        const f = this.dirFid(m.fid, held);
        checkName(m.name);
        if (m.symtgt.length === 0 || m.symtgt.includes('\0')) throw err(Errno.EINVAL, 'bad symlink target');
        return { type: 'Rsymlink', qid: await b.symlink(f.path, m.name, m.symtgt, m.gid) };
      }
      case 'Treadlink': {
        const f = this.use(m.fid, held);
        return { type: 'Rreadlink', target: await b.readlink(f.path) };
      }
      case 'Tlink': {
        const d = this.dirFid(m.dfid, held);
        const f = this.use(m.fid, held);
        checkName(m.name);
        if (isDir(f.qid)) throw err(Errno.EPERM, 'cannot hard-link a directory');
        await b.link(f.path, d.path, m.name);
        return { type: 'Rlink' };
      }
      case 'Tunlinkat': {
        const d = this.dirFid(m.dirfid, held);
        checkName(m.name);
        await b.unlink(d.path, m.name, m.flags & AT_REMOVEDIR);
        return { type: 'Runlinkat' };
      }
      case 'Trename': {
        const f = this.use(m.fid, held);
        const d = this.dirFid(m.dfid, held);
        checkName(m.name);
        if (f.path === '/') throw err(Errno.EBUSY, 'cannot rename the root');
        await this.rename(parentPath(f.path), baseName(f.path), d.path, m.name);
        return { type: 'Rrename' };
      }
      case 'Trenameat': {
        const from = this.dirFid(m.olddirfid, held);
        const to = this.dirFid(m.newdirfid, held);
        checkName(m.oldname);
        checkName(m.newname);
        await this.rename(from.path, m.oldname, to.path, m.newname);
        return { type: 'Rrenameat' };
      }
      case 'Tfsync': {
        const f = this.use(m.fid, held);
        if (f.handle !== undefined) await f.handle.fsync(m.datasync !== 0);
        return { type: 'Rfsync' };
      }
      case 'Tlock': {
        const f = this.use(m.fid, held);
        const req: LockRequest = { type: m.lockType, flags: m.flags, start: m.start, length: m.length, procId: m.procId, clientId: m.clientId };
        if (m.lockType > LockType.UNLCK) throw err(Errno.EINVAL, 'bad lock type');
        const status = b.lock ? await b.lock(f.path, req) : LockStatus.SUCCESS;
        return { type: 'Rlock', status };
      }
      case 'Tgetlock': {
        const f = this.use(m.fid, held);
        const req: LockRequest = { type: m.lockType, flags: 0, start: m.start, length: m.length, procId: m.procId, clientId: m.clientId };
        const out = b.getlock ? await b.getlock(f.path, req) : { ...req, type: LockType.UNLCK };
        return { type: 'Rgetlock', lockType: out.type, start: out.start, length: out.length, procId: out.procId, clientId: out.clientId };
      }
      case 'Txattrwalk': {
        const f = this.use(m.fid, held);
        if (m.name !== '' && (m.name.includes('\0') || Buffer.byteLength(m.name) > 255)) throw err(Errno.ERANGE);
        const same = m.newfid === m.fid;
        if (same && (f.handle !== undefined || f.opening || f.xattr !== undefined)) throw err(Errno.EINVAL, 'fid is open');
        const nf = same ? f : this.reserve(m.newfid, f.path, f.qid);
        try {
          let data: Buffer;
          if (m.name === '') {
            const names = await b.xattrList(f.path);
            data = Buffer.from(names.map((n) => `${n}\0`).join(''), 'utf8');
          } else {
            const v = await b.xattrGet(f.path, m.name);
            data = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
          }
          if (data.length > XATTR_SIZE_MAX) throw err(Errno.E2BIG);
          nf.xattr = { kind: 'read', data };
          nf.pending = false;
          return { type: 'Rxattrwalk', size: data.length };
        } catch (e) {
          if (!same) this.drop(m.newfid, nf);
          throw e;
        }
      }
      case 'Txattrcreate': {
        const f = this.use(m.fid, held);
        if (!b.xattrSet) throw err(Errno.EOPNOTSUPP, 'extended attributes cannot be set here');
        if (m.attrSize > XATTR_SIZE_MAX) throw err(Errno.E2BIG);
        if (m.name.length === 0 || m.name.includes('\0') || Buffer.byteLength(m.name) > 255) throw err(Errno.EINVAL);
        if (f.handle !== undefined || f.opening || f.xattr !== undefined) throw err(Errno.EINVAL, 'fid already open');
        f.xattr = { kind: 'write', name: m.name, size: m.attrSize, flags: m.flags, data: Buffer.alloc(m.attrSize), written: 0 };
        return { type: 'Rxattrcreate' };
      }
      case 'Tversion':
      case 'Tflush':
      case 'Tread':
      case 'Twrite':
      case 'Treaddir':
      case 'Tlerror':
        throw err(Errno.EOPNOTSUPP, `${m.type} not expected here`);
      default:
        throw err(Errno.EOPNOTSUPP, `${(m as { type: string }).type} not supported`);
    }
  }

  private async walk(m: Message<'Twalk'>, held: FidState[]): Promise<RBody> {
    const f = this.use(m.fid, held);
    const same = m.newfid === m.fid;
    if (same && (f.handle !== undefined || f.opening || f.xattr !== undefined)) throw err(Errno.EBUSY, 'cannot walk an open fid in place');
    if (f.xattr !== undefined) throw err(Errno.EINVAL, 'xattr fid');
    const nf = same ? f : this.reserve(m.newfid, f.path, f.qid);
    let path = f.path;
    let qid = f.qid;
    const wqids: Qid[] = [];
    try {
      for (let i = 0; i < m.wnames.length; i++) {
        const name = m.wnames[i]!;
        try {
          if (!isDir(qid)) throw err(Errno.ENOTDIR);
          let next: string;
          if (name === '..') next = parentPath(path);
          else if (name === '.') next = path;
          else {
            checkName(name);
            next = childPath(path, name);
          }
          qid = (await this.getattrPath(next)).qid;
          path = next;
          wqids.push(qid);
        } catch (e) {
          if (i === 0) throw e;
          break; // partial walk: the qids so far, newfid not created
        }
      }
    } catch (e) {
      if (!same) this.drop(m.newfid, nf);
      throw e;
    }
    if (wqids.length === m.wnames.length) {
      nf.path = path;
      nf.qid = qid;
      nf.pending = false;
    } else if (!same) {
      this.drop(m.newfid, nf);
    }
    return { type: 'Rwalk', wqids };
  }

  private async rename(fromDir: string, fromName: string, toDir: string, toName: string): Promise<void> {
    await this.backend.rename(fromDir, fromName, toDir, toName);
    this.movePaths(childPath(fromDir, fromName), childPath(toDir, toName));
  }
}

/**
 * An EIO for the log on the stick: what failed and where in the code, never
 * the message (fs errors name host paths, the backend's name guest paths;
 * the log must name neither). A sealed store's failure says its problem
 * (tampered, truncated, ...).
 */
export function failureWithoutNames(e: unknown): string {
  if (!(e instanceof Error)) return typeof e;
  const code = (e as { code?: unknown }).code;
  const problem = (e as { problem?: unknown }).problem;
  const frames = (e.stack ?? '')
    .split('\n')
    .filter((line) => line.startsWith('    at '))
    .slice(0, 6);
  return [`${e.name}${typeof code === 'string' ? ` ${code}` : ''}${typeof problem === 'string' ? ` (${problem})` : ''}`, ...frames].join('\n');
}
