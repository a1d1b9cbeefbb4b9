// The launcher's end of the guest's 9pnet_pocketvm transport
// (payload/kmod/9pnet_pocketvm): 9P messages in raw Ethernet frames on a
// virtio-net card whose QEMU backend is a socketpair (-netdev socket,fd=N).
// QEMU's stream framing is a 4-byte big-endian length before each frame.
//
// Frame after the Ethernet header (ethertype 0x88B5), little-endian:
//   conn u32 · tag u16 · flags u16 · offset u32 · fragment bytes
// flags (FrameFlag, ram-placement.ts) are for placed reads: with guest RAM
// to write (options.guestRam) every frame out says canPlace, a Tread may come
// with the reader's page segments after it (place), and its Rread's data
// then goes into those pages, the frame carrying the header alone (placed).
// Placed writes mirror them: a Twrite flagged place carries its 23-byte
// header (size still counting the data) and the writer's page segments
// instead of the data; the data is read from guest RAM as the frame is
// taken, and the Twrite is served as if it had come in frames. A page list
// that does not parse or reaches outside RAM fails that request alone
// (Rlerror EIO); the guest keeps the pages pinned until the reply.
// `conn` is the mount's random connection id: each mount is its own 9P
// session (serveNinep on its own in-process stream), so a mount left over
// from a suspended session, whose fids this launcher never issued, gets
// ESTALE for everything but a fresh Tversion instead of using someone else's
// fids. Fragments of one request may interleave with another's (two guest
// CPUs), so requests are reassembled by (conn, tag); replies go out whole,
// one after another, as the guest module expects.
//
// Nothing here trusts the guest: frame and message sizes are checked before
// anything is buffered, partial messages and sessions are bounded, and a
// broken fragment drops its message (the 9P server never sees it).
//
// Guest life events (src/vmm/guest-life.ts): placed reads write guest RAM
// behind QEMU's back, so they must stop before the guest's memory changes
// owner or is copied. `retire()` (reset, reboot, panic, shutdown) cancels
// every placement and ends every connection at once, then reads and drops
// whatever the old guest still had in the socket until it is quiet (the
// vCPUs are stopped meanwhile, so nothing new can come): no frame sent
// before the reset can open a connection or place a read in the next
// kernel's pages. `quiesce()` (suspend) stops taking requests, lets the
// placed reads under way finish, then places no more until `resume()`.
// kexec starts a new kernel without a reset QEMU sees, so the guest says so
// itself: the module's reboot notifier (every reboot, power-off and kexec)
// sends a frame flagged retire and waits; `onGuestRetire` cancels every
// placement and ends every connection, synchronously, and only then sends
// the frame back. The module asks for no placement after sending it.
// Placed writes need nothing more: guest RAM is read only while the frame
// is taken, so a frame dropped by a retirement, or held in the socket by a
// quiesce, reads nothing.
//
// Quiet requests: every frame out says canQuiet; the guest module then
// answers a Tclunk, and a Twalk with no names (a clone), itself and sends
// it flagged noReply (a round trip saved per file looked up or opened).
// Its tag may be in use again at once, so the first reply with that tag,
// which is its own (the server answers these two in order, before the next
// request: server.ts), goes nowhere. noReply on anything else is dropped.
import { type Duplex, duplexPair } from 'node:stream';
import { Errno } from './backend.ts';
import { ByteQueue } from '../primitives/byte-queue.ts';
import type { GuestRamWriter, RamSegment } from '../vmm/guest-ram.ts';
import { HEADER_SIZE, MessageId, rlerror, TWRITE_HEADER_SIZE } from './codec.ts';
import { FrameFlag, parseSegments, ReadPlacements } from './ram-placement.ts';
import { writeBuffers } from './message-buffers.ts';

export const ETHERTYPE_POCKETVM_9P = 0x88b5;
const ETH_HEADER = 14;
const PVM_HEADER = 12;
/** What one frame carries of a message: 16 pages, as the guest module sends. */
export const FRAGMENT_MAX = 65536;
/** QEMU's net/socket frame buffer (NET_BUFSIZE): a longer frame ends the connection. */
const QEMU_FRAME_MAX = 4096 + 65536;
/** The launcher's own address on the link (locally administered). */
const HOST_MAC = Buffer.from([0x02, 0x70, 0x76, 0x6d, 0x39, 0x70]);

export interface EthernetSession {
  /** Resolves when the session's server has released everything. */
  close(): Promise<void>;
}

export interface EthernetTransportOptions {
  /** Starts a 9P server on `stream` for a new mount (a fresh Tversion on a new connection id). */
  openSession: (stream: Duplex) => EthernetSession;
  /** Largest 9P message accepted from the guest (the server's msize cap). */
  maxMessage: number;
  /** Mounts served at once; a newer one retires the oldest (default 4). */
  maxSessions?: number;
  /** Requests being reassembled at once (default 64). */
  maxPartial?: number;
  log?: (message: string) => void;
  /** Guest RAM, for placed reads; without it every read's data goes in frames. */
  guestRam?: GuestRamWriter;
  /** How long the socket must stay silent before a retirement ends (default 200 ms). */
  retireQuietMs?: number;
}

/** What a guest life event asks of the transport (src/vmm/guest-life.ts). */
export interface TransportLife {
  /**
   * The guest is being reset or is going away: every pending placement is
   * cancelled and every connection retired before this returns its promise;
   * the promise resolves once what the old guest sent has been read and dropped.
   */
  retire(): Promise<void>;
  /** Before the vCPUs stop for a save: no new requests, placed reads under way finish, then none is placed. */
  quiesce(timeoutMs?: number): Promise<void>;
  /** The save did not happen: requests are taken and reads placed again. */
  resume(): void;
}

export interface EthernetTransport extends TransportLife {
  /**
   * placed: Rreads written into the reader's pages; declined: asked for, sent
   * in frames; retired: frames from before a reset, dropped unread;
   * placeMs: time spent writing placed reads into guest RAM;
   * writesPlaced: Twrites whose data was read from the writer's pages
   * (writeReadMs: the time spent reading it);
   * writesRefused: placed Twrites failed with EIO (bad page list, no RAM).
   */
  readonly counters: {
    frames: number;
    sent: number;
    dropped: number;
    sessions: number;
    stale: number;
    placed: number;
    declined: number;
    retired: number;
    guestRetires: number;
    placeMs: number;
    writesPlaced: number;
    writeReadMs: number;
    writesRefused: number;
    /** Tclunks and clone Twalks the guest answered itself (flagged noReply): their replies were not sent. */
    quietRequests: number;
  };
  /** Closes every session and the socket. */
  close(): Promise<void>;
  readonly closed: Promise<void>;
}

interface Partial {
  buf: Buffer;
  got: number;
}

interface Connection {
  conn: number;
  peer: Buffer;
  /** Our end of the session's stream: requests in, replies out. */
  end: Duplex;
  session: EthernetSession;
  /** Reply bytes not yet framed (replies are cut out of the stream by their size field). */
  replies: ByteQueue;
  placements: ReadPlacements | undefined;
  /**
   * Quiet Tclunks whose reply is still to come (and be dropped), by tag:
   * how many (the guest sends clunk after clunk with the same tag).
   */
  quiet: Map<number, number>;
}

/** The requests the 9P server answers in order (server.ts): the only ones a guest may send quietly. */
function answeredInOrder(message: Buffer): boolean {
  if (message[4] === MessageId.Tclunk) return true;
  return message[4] === MessageId.Twalk && message.length === HEADER_SIZE + 10 && message.readUInt16LE(HEADER_SIZE + 8) === 0;
}

export function serveEthernetTransport(socket: Duplex, options: EthernetTransportOptions): EthernetTransport {
  return new Transport(socket, options);
}

class Transport implements EthernetTransport {
  readonly counters = {
    frames: 0,
    sent: 0,
    dropped: 0,
    sessions: 0,
    stale: 0,
    placed: 0,
    declined: 0,
    retired: 0,
    guestRetires: 0,
    placeMs: 0,
    writesPlaced: 0,
    writeReadMs: 0,
    writesRefused: 0,
    quietRequests: 0,
  };
  readonly closed: Promise<void>;
  private readonly socket: Duplex;
  private readonly options: EthernetTransportOptions;
  private readonly maxSessions: number;
  private readonly maxPartial: number;
  private readonly log: (message: string) => void;
  /** On every frame out: whether the guest may ask for placed reads. */
  private readonly baseFlags: number;
  private readonly connections = new Map<number, Connection>();
  private readonly partials = new Map<string, Partial>();
  private readonly input = new ByteQueue();
  private ended = false;
  /** Streams that refused more input: the socket stays paused until each drains. */
  private readonly blocked = new Set<Duplex>();
  private resolveClosed!: () => void;
  /** Retiring: frames are parsed (the stream's framing) and dropped, none served. */
  private fenced = false;
  /** Quiesced for a save: the socket stays paused, no read is placed. */
  private holding = false;
  /** Connection ids retired by a reset: a frame naming one is from the old guest. */
  private readonly retiredIds = new Set<number>();
  private lastInput = 0;

  constructor(socket: Duplex, options: EthernetTransportOptions) {
    this.socket = socket;
    this.options = options;
    this.maxSessions = Math.max(1, options.maxSessions ?? 4);
    this.maxPartial = Math.max(1, options.maxPartial ?? 64);
    this.log = options.log ?? (() => {});
    this.baseFlags = FrameFlag.canQuiet | (options.guestRam ? FrameFlag.canPlace : 0);
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      for (const c of this.connections.values()) c.end.resume();
    });
    socket.on('end', () => void this.close());
    socket.on('close', () => void this.close());
    socket.on('error', (e: Error) => {
      this.log(`9p transport: ${e.message}`);
      void this.close();
    });
  }

  async close(): Promise<void> {
    if (!this.ended) {
      this.ended = true;
      this.partials.clear();
      this.input.clear();
      const sessions = [...this.connections.values()];
      this.connections.clear();
      this.socket.destroy();
      await Promise.all(sessions.map((c) => this.endConnection(c)));
      this.resolveClosed();
    }
    return this.closed;
  }

  // ---------------------------------------------------------------------------
  // Guest life events.

  async retire(): Promise<void> {
    if (this.ended) return;
    // Synchronously: from here on nothing is written to guest RAM for any
    // connection that exists now, and no frame is served until quiet.
    this.fenced = true;
    this.holding = false;
    const sessions = this.retireConnections();
    const closing = Promise.all(sessions.map((c) => this.endConnection(c)));
    this.blocked.clear();
    this.socket.resume();
    if (sessions.length > 0) this.log(`9p transport: guest reset: ${sessions.length} mount(s) retired, their placed reads cancelled`);
    // Read out (and drop) whatever the old guest sent until the socket is silent.
    const quietMs = this.options.retireQuietMs ?? 200;
    const deadline = Date.now() + 10_000;
    this.lastInput = Date.now();
    while (!this.ended && Date.now() < deadline) {
      const silentFor = Date.now() - this.lastInput;
      if (silentFor >= quietMs) break;
      await new Promise((resolve) => setTimeout(resolve, quietMs - silentFor));
    }
    this.fenced = false;
    await closing;
  }

  async quiesce(timeoutMs = 5_000): Promise<void> {
    if (this.ended) return;
    this.holding = true;
    this.socket.pause();
    // The placed reads asked for before the pause are answered (placed) as usual.
    const deadline = Date.now() + timeoutMs;
    while (!this.ended && this.pendingPlacements() > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    for (const c of this.connections.values()) c.placements?.cancel();
  }

  resume(): void {
    if (this.ended || !this.holding) return;
    this.holding = false;
    for (const c of this.connections.values()) c.placements?.allow();
    if (this.blocked.size === 0) this.socket.resume();
  }

  private pendingPlacements(): number {
    let n = 0;
    for (const c of this.connections.values()) n += c.placements?.pending ?? 0;
    return n;
  }

  private rememberRetired(conn: number): void {
    // Bounded: a guest that mounts in a loop cannot grow it without end.
    if (this.retiredIds.size >= 1024) this.retiredIds.delete(this.retiredIds.values().next().value!);
    this.retiredIds.add(conn);
  }

  // ---------------------------------------------------------------------------
  // QEMU's stream: length-prefixed frames.

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    this.lastInput = Date.now();
    this.input.push(chunk);
    while (this.input.length >= 4 && !this.ended) {
      const size = this.input.peekUInt32('be');
      if (size > QEMU_FRAME_MAX) {
        this.log(`9p transport: frame of ${size} bytes from QEMU: closing`);
        void this.close();
        return;
      }
      if (this.input.length < 4 + size) break;
      this.input.take(4);
      const frame = this.input.take(size);
      if (this.fenced) this.counters.retired++;
      else this.onFrame(frame);
    }
  }

  // ---------------------------------------------------------------------------
  // Frames → 9P messages.

  private onFrame(frame: Buffer): void {
    this.counters.frames++;
    if (frame.length < ETH_HEADER + PVM_HEADER || frame.readUInt16BE(12) !== ETHERTYPE_POCKETVM_9P) return; // the link's own chatter
    const conn = frame.readUInt32LE(ETH_HEADER);
    const tag = frame.readUInt16LE(ETH_HEADER + 4);
    const flags = frame.readUInt16LE(ETH_HEADER + 6);
    const offset = frame.readUInt32LE(ETH_HEADER + 8);
    if (flags & FrameFlag.retire) return this.onGuestRetire(conn, frame.subarray(6, 12));
    const fragment = frame.subarray(ETH_HEADER + PVM_HEADER);
    const key = `${conn}:${tag}`;
    if (offset === 0) {
      if (this.partials.delete(key)) this.drop(`request ${key} cut short`);
      if (fragment.length < HEADER_SIZE) return this.drop(`fragment too short for a 9P header (${key})`);
      const size = fragment.readUInt32LE(0);
      if (size < HEADER_SIZE || size > this.options.maxMessage || fragment.readUInt16LE(5) !== tag) return this.drop(`bad 9P header (${key}, size ${size})`);
      if (flags & FrameFlag.place && fragment[4] === MessageId.Twrite) return this.onPlacedWrite(conn, frame.subarray(6, 12), tag, size, fragment);
      if (fragment.length > size) {
        // A placed read: the reader's page segments follow the Tread in its only fragment.
        if (!(flags & FrameFlag.place)) return this.drop(`fragment longer than its message (${key})`);
        const segments = parseSegments(fragment.subarray(size));
        if (!segments) this.drop(`bad page list after ${key} (read sent in frames)`);
        return this.onMessage(conn, frame.subarray(6, 12), fragment.subarray(0, size), segments);
      }
      if (fragment.length === size) {
        if (flags & FrameFlag.noReply && !answeredInOrder(fragment)) return this.drop(`noReply on a request not answered in order (${key})`);
        return this.onMessage(conn, frame.subarray(6, 12), fragment, undefined, (flags & FrameFlag.noReply) !== 0);
      }
      if (this.partials.size >= this.maxPartial) {
        const oldest = this.partials.keys().next().value!;
        this.partials.delete(oldest);
        this.drop(`too many requests in pieces: ${oldest} dropped`);
      }
      const buf = Buffer.allocUnsafe(size);
      fragment.copy(buf);
      this.partials.set(key, { buf, got: fragment.length });
      return;
    }
    const partial = this.partials.get(key);
    if (partial === undefined || partial.got !== offset || offset + fragment.length > partial.buf.length) {
      this.partials.delete(key);
      return this.drop(`fragment out of order (${key} at ${offset})`);
    }
    fragment.copy(partial.buf, offset);
    partial.got += fragment.length;
    if (partial.got === partial.buf.length) {
      this.partials.delete(key);
      this.onMessage(conn, frame.subarray(6, 12), partial.buf);
    }
  }

  /**
   * Takes every connection out of service at once (a guest reset, or the
   * guest kernel saying it is going away): pieces of requests dropped, each
   * connection's placements cancelled and its id remembered as retired, so a
   * late frame is dropped unread. The caller ends them.
   */
  private retireConnections(): Connection[] {
    this.partials.clear();
    const sessions = [...this.connections.values()];
    this.connections.clear();
    for (const c of sessions) {
      c.placements?.cancel();
      this.rememberRetired(c.conn);
    }
    return sessions;
  }

  /**
   * The guest kernel is going away (its module's reboot notifier: reboot,
   * power-off, kexec). Every placement is cancelled and every connection
   * ended before the answer goes back, so once the module has it nothing
   * the launcher does writes guest RAM for that kernel's requests; its
   * connection ids stay retired (a late frame is dropped unread).
   */
  private onGuestRetire(conn: number, peer: Buffer): void {
    this.counters.guestRetires++;
    const sessions = this.retireConnections();
    for (const c of sessions) void this.endConnection(c);
    this.log(`9p transport: the guest kernel is going away (reboot, power-off or kexec): ${sessions.length} mount(s) retired, their placed reads cancelled`);
    this.sendControl(conn, Buffer.from(peer), FrameFlag.retire);
  }

  /**
   * A placed write: the Twrite's header, then the writer's page segments
   * (its only fragment). The data is read from guest RAM now, while the
   * guest holds the pages pinned (until the reply), and the Twrite goes to
   * the server whole. Only this request fails when the list is bad.
   */
  private onPlacedWrite(conn: number, peer: Buffer, tag: number, size: number, fragment: Buffer): void {
    // Retired or never begun: as for any other request (dropped unread, or ESTALE).
    if (!this.connections.has(conn)) return this.onMessage(conn, peer, fragment.subarray(0, HEADER_SIZE));
    const count = fragment.length >= TWRITE_HEADER_SIZE ? fragment.readUInt32LE(TWRITE_HEADER_SIZE - 4) : -1;
    const segments = count > 0 && size === TWRITE_HEADER_SIZE + count ? parseSegments(fragment.subarray(TWRITE_HEADER_SIZE)) : undefined;
    const ram = this.options.guestRam;
    // From the pool the server gives it back to once the Twrite is answered (message-buffers.ts).
    const message = segments && ram && !this.holding ? writeBuffers.take(size) : undefined;
    const started = performance.now();
    const read = message !== undefined && ram!.read(segments!, message.subarray(TWRITE_HEADER_SIZE));
    this.counters.writeReadMs += performance.now() - started;
    if (!read) {
      if (message) writeBuffers.giveBack(message);
      this.counters.writesRefused++;
      this.log(
        `9p transport: placed write ${conn}:${tag} refused (${!ram ? 'no guest RAM to read' : !segments ? 'bad page list' : this.holding ? 'held for a suspend' : 'pages outside guest RAM'}): EIO`,
      );
      this.sendMessage(conn, Buffer.from(peer), rlerror(tag, Errno.EIO));
      return;
    }
    fragment.copy(message, 0, 0, TWRITE_HEADER_SIZE);
    this.counters.writesPlaced++;
    this.onMessage(conn, peer, message);
  }

  private drop(reason: string): void {
    this.counters.dropped++;
    this.log(`9p transport: ${reason}`);
  }

  private onMessage(conn: number, peer: Buffer, message: Buffer, segments?: RamSegment[], quiet = false): void {
    let c = this.connections.get(conn);
    if (c === undefined) {
      if (this.retiredIds.has(conn)) {
        // The guest before a reset used this id; this guest never did.
        this.counters.retired++;
        return;
      }
      if (message[4] !== MessageId.Tversion) {
        // A mount this launcher never saw begin (one from before a suspend).
        // A quiet request's tag may be another request's already: no answer.
        this.counters.stale++;
        if (quiet) return;
        this.sendMessage(conn, Buffer.from(peer), rlerror(message.readUInt16LE(5), Errno.ESTALE));
        return;
      }
      c = this.open(conn, Buffer.from(peer));
    }
    c.placements?.request(message, segments);
    if (quiet) {
      const tag = message.readUInt16LE(5);
      c.quiet.set(tag, (c.quiet.get(tag) ?? 0) + 1);
      this.counters.quietRequests++;
    }
    if (!c.end.write(message) && !this.blocked.has(c.end)) {
      // The server is busy: stop reading the socket until it drains (QEMU
      // then stops taking frames from the guest, and the guest waits).
      this.blocked.add(c.end);
      this.socket.pause();
      c.end.once('drain', () => {
        this.blocked.delete(c.end);
        if (this.blocked.size === 0 && !this.ended && !this.holding) this.socket.resume();
      });
    }
  }

  private open(conn: number, peer: Buffer): Connection {
    if (this.connections.size >= this.maxSessions) {
      const [oldest, retired] = this.connections.entries().next().value!;
      this.connections.delete(oldest);
      this.log(`9p transport: ${this.maxSessions} mounts at once: the oldest (${oldest}) is retired`);
      void this.endConnection(retired);
    }
    const [end, serverEnd] = duplexPair();
    const placements = this.options.guestRam ? new ReadPlacements(this.options.guestRam, this.counters) : undefined;
    if (this.holding) placements?.cancel();
    const c: Connection = { conn, peer, end, session: this.options.openSession(serverEnd), replies: new ByteQueue(), placements, quiet: new Map() };
    this.connections.set(conn, c);
    this.counters.sessions++;
    end.on('data', (chunk: Buffer) => this.onReplyBytes(c, chunk));
    end.on('error', () => {});
    end.on('close', () => {
      if (this.connections.get(conn) === c) this.connections.delete(conn);
    });
    return c;
  }

  /** Ends one connection and its 9P session. */
  private async endConnection(c: Connection): Promise<void> {
    c.placements?.cancel();
    c.end.destroy();
    // A retired session no longer holds the socket back.
    if (this.blocked.delete(c.end) && this.blocked.size === 0 && !this.ended && !this.holding) this.socket.resume();
    await c.session.close().catch(() => {});
  }

  // ---------------------------------------------------------------------------
  // 9P replies → frames.

  private onReplyBytes(c: Connection, chunk: Buffer): void {
    // A retired connection's late replies go nowhere (its guest is gone).
    if (this.connections.get(c.conn) !== c) return;
    c.replies.push(chunk);
    // The server only writes well-formed replies (size >= 7).
    while (c.replies.length >= 4 && c.replies.length >= c.replies.peekUInt32('le')) {
      const message = c.replies.take(c.replies.peekUInt32('le'));
      if (c.quiet.size > 0 && this.quietAnswer(c, message.readUInt16LE(5))) continue; // the guest gave it already
      const placedHeader = c.placements?.reply(message);
      if (placedHeader) {
        this.sendMessage(c.conn, c.peer, placedHeader, FrameFlag.placed);
      } else {
        this.sendMessage(c.conn, c.peer, message);
      }
    }
    if (this.socket.writableNeedDrain) c.end.pause();
  }

  /** Whether a reply with `tag` is a quiet clunk's (then it is counted off). */
  private quietAnswer(c: Connection, tag: number): boolean {
    const left = c.quiet.get(tag);
    if (left === undefined) return false;
    if (left > 1) c.quiet.set(tag, left - 1);
    else c.quiet.delete(tag);
    return true;
  }

  /** A frame of the header alone (no 9P message). */
  private sendControl(conn: number, peer: Buffer, flags: number): void {
    if (this.ended || this.socket.destroyed) return;
    const head = Buffer.alloc(4 + ETH_HEADER + PVM_HEADER);
    head.writeUInt32BE(ETH_HEADER + PVM_HEADER, 0);
    peer.copy(head, 4);
    HOST_MAC.copy(head, 10);
    head.writeUInt16BE(ETHERTYPE_POCKETVM_9P, 16);
    head.writeUInt32LE(conn, 18);
    head.writeUInt16LE(0xffff, 22);
    head.writeUInt16LE(this.baseFlags | flags, 24);
    this.counters.sent++;
    this.socket.write(head);
  }

  private sendMessage(conn: number, peer: Buffer, message: Buffer, flags = 0): void {
    if (this.ended || this.socket.destroyed) return;
    const tag = message.readUInt16LE(5);
    this.socket.cork();
    for (let offset = 0; offset < message.length; offset += FRAGMENT_MAX) {
      const fragment = message.subarray(offset, offset + FRAGMENT_MAX);
      const head = Buffer.allocUnsafe(4 + ETH_HEADER + PVM_HEADER);
      head.writeUInt32BE(ETH_HEADER + PVM_HEADER + fragment.length, 0);
      peer.copy(head, 4);
      HOST_MAC.copy(head, 10);
      head.writeUInt16BE(ETHERTYPE_POCKETVM_9P, 16);
      head.writeUInt32LE(conn, 18);
      head.writeUInt16LE(tag, 22);
      head.writeUInt16LE(this.baseFlags | flags, 24);
      head.writeUInt32LE(offset, 26);
      this.counters.sent++;
      this.socket.write(head);
      this.socket.write(fragment);
    }
    this.socket.uncork();
  }
}
