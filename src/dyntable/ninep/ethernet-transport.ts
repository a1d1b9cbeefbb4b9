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
import { type Duplex, duplexPair } from 'node:stream';
import { Errno } from './backend.ts';
import { ByteQueue } from './byte-queue.ts';
import type { GuestRamWriter, RamSegment } from '../../vmm/guest-ram.ts';
import { HEADER_SIZE, MessageId, rlerror } from './codec.ts';
import { FrameFlag, parseSegments, ReadPlacements } from './ram-placement.ts';

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
}

export interface EthernetTransport {
  /** placed: Rreads written into the reader's pages; declined: asked for, sent in frames. */
  readonly counters: { frames: number; sent: number; dropped: number; sessions: number; stale: number; placed: number; declined: number };
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
}

export function serveEthernetTransport(socket: Duplex, options: EthernetTransportOptions): EthernetTransport {
  return new Transport(socket, options);
}

class Transport implements EthernetTransport {
  readonly counters = { frames: 0, sent: 0, dropped: 0, sessions: 0, stale: 0, placed: 0, declined: 0 };
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

  constructor(socket: Duplex, options: EthernetTransportOptions) {
    this.socket = socket;
    this.options = options;
    this.maxSessions = Math.max(1, options.maxSessions ?? 4);
    this.maxPartial = Math.max(1, options.maxPartial ?? 64);
    this.log = options.log ?? (() => {});
    this.baseFlags = options.guestRam ? FrameFlag.canPlace : 0;
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
      await Promise.all(sessions.map((c) => this.retire(c)));
      this.resolveClosed();
    }
    return this.closed;
  }

  // ---------------------------------------------------------------------------
  // QEMU's stream: length-prefixed frames.

  private onData(chunk: Buffer): void {
    if (this.ended) return;
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
      this.onFrame(this.input.take(size));
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
    const fragment = frame.subarray(ETH_HEADER + PVM_HEADER);
    const key = `${conn}:${tag}`;
    if (offset === 0) {
      if (this.partials.delete(key)) this.drop(`request ${key} cut short`);
      if (fragment.length < HEADER_SIZE) return this.drop(`fragment too short for a 9P header (${key})`);
      const size = fragment.readUInt32LE(0);
      if (size < HEADER_SIZE || size > this.options.maxMessage || fragment.readUInt16LE(5) !== tag) return this.drop(`bad 9P header (${key}, size ${size})`);
      if (fragment.length > size) {
        // A placed read: the reader's page segments follow the Tread in its only fragment.
        if (!(flags & FrameFlag.place)) return this.drop(`fragment longer than its message (${key})`);
        const segments = parseSegments(fragment.subarray(size));
        if (!segments) this.drop(`bad page list after ${key} (read sent in frames)`);
        return this.onMessage(conn, frame.subarray(6, 12), fragment.subarray(0, size), segments);
      }
      if (fragment.length === size) return this.onMessage(conn, frame.subarray(6, 12), fragment);
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

  private drop(reason: string): void {
    this.counters.dropped++;
    this.log(`9p transport: ${reason}`);
  }

  private onMessage(conn: number, peer: Buffer, message: Buffer, segments?: RamSegment[]): void {
    let c = this.connections.get(conn);
    if (c === undefined) {
      if (message[4] !== MessageId.Tversion) {
        // A mount this launcher never saw begin (one from before a suspend).
        this.counters.stale++;
        this.sendMessage(conn, Buffer.from(peer), rlerror(message.readUInt16LE(5), Errno.ESTALE));
        return;
      }
      c = this.open(conn, Buffer.from(peer));
    }
    c.placements?.request(message, segments);
    if (!c.end.write(message) && !this.blocked.has(c.end)) {
      // The server is busy: stop reading the socket until it drains (QEMU
      // then stops taking frames from the guest, and the guest waits).
      this.blocked.add(c.end);
      this.socket.pause();
      c.end.once('drain', () => {
        this.blocked.delete(c.end);
        if (this.blocked.size === 0 && !this.ended) this.socket.resume();
      });
    }
  }

  private open(conn: number, peer: Buffer): Connection {
    if (this.connections.size >= this.maxSessions) {
      const [oldest, retired] = this.connections.entries().next().value!;
      this.connections.delete(oldest);
      this.log(`9p transport: ${this.maxSessions} mounts at once: the oldest (${oldest}) is retired`);
      void this.retire(retired);
    }
    const [end, serverEnd] = duplexPair();
    const placements = this.options.guestRam ? new ReadPlacements(this.options.guestRam, this.counters) : undefined;
    const c: Connection = { conn, peer, end, session: this.options.openSession(serverEnd), replies: new ByteQueue(), placements };
    this.connections.set(conn, c);
    this.counters.sessions++;
    end.on('data', (chunk: Buffer) => this.onReplyBytes(c, chunk));
    end.on('error', () => {});
    end.on('close', () => {
      if (this.connections.get(conn) === c) this.connections.delete(conn);
    });
    return c;
  }

  private async retire(c: Connection): Promise<void> {
    c.end.destroy();
    // A retired session no longer holds the socket back.
    if (this.blocked.delete(c.end) && this.blocked.size === 0 && !this.ended) this.socket.resume();
    await c.session.close().catch(() => {});
  }

  // ---------------------------------------------------------------------------
  // 9P replies → frames.

  private onReplyBytes(c: Connection, chunk: Buffer): void {
    c.replies.push(chunk);
    // The server only writes well-formed replies (size >= 7).
    while (c.replies.length >= 4 && c.replies.length >= c.replies.peekUInt32('le')) {
      const message = c.replies.take(c.replies.peekUInt32('le'));
      const placedHeader = c.placements?.reply(message);
      if (placedHeader) {
        this.sendMessage(c.conn, c.peer, placedHeader, FrameFlag.placed);
      } else {
        this.sendMessage(c.conn, c.peer, message);
      }
    }
    if (this.socket.writableNeedDrain) c.end.pause();
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
