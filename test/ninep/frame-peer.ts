// The guest's side of the Ethernet transport, in TypeScript, for tests: what
// QEMU hands the launcher (4-byte big-endian length, then an Ethernet frame)
// and what 9pnet_pocketvm puts in the frame (conn, tag, flags, offset,
// fragment). Each connection is a 9P byte stream a NinepClient can use.
import { type Duplex, duplexPair } from 'node:stream';
import { ETHERTYPE_POCKETVM_9P, FRAGMENT_MAX } from '../../src/ninep/ethernet-transport.ts';
import { FrameFlag } from '../../src/ninep/ram-placement.ts';
import type { GuestRamWriter, RamSegment } from '../../src/vmm/guest-ram.ts';

export const GUEST_MAC = Buffer.from([0x02, 0x70, 0x76, 0x6d, 0x39, 0x01]);

export interface ReceivedFrame {
  dst: Buffer;
  conn: number;
  tag: number;
  flags: number;
  offset: number;
  fragment: Buffer;
}

/** A placed read's page list as the guest module appends it to the Tread. */
export function segmentList(segments: RamSegment[]): Buffer {
  const out = Buffer.alloc(4 + segments.length * 12);
  out.writeUInt32LE(segments.length, 0);
  segments.forEach((s, i) => {
    out.writeBigUInt64LE(BigInt(s.phys), 4 + i * 12);
    out.writeUInt32LE(s.len, 12 + i * 12);
  });
  return out;
}

/** Guest RAM as the list of writes made into it. */
export class RecordingRam implements GuestRamWriter {
  readonly writes: Array<{ segments: readonly RamSegment[]; data: Buffer }> = [];
  accept = true;
  write(segments: readonly RamSegment[], data: Buffer): boolean {
    if (!this.accept) return false;
    this.writes.push({ segments, data: Buffer.from(data) });
    return true;
  }
  /** Holds nothing to read: a placed write through it is refused. */
  read(): boolean {
    return false;
  }
}

export class FramePeer {
  /** Every frame the launcher sent, in order. */
  readonly frames: ReceivedFrame[] = [];
  private readonly streams = new Map<number, { ours: Duplex; partial: Buffer | undefined; got: number }>();
  private chunks = Buffer.alloc(0);
  readonly qemu: Duplex;

  constructor(qemu: Duplex) {
    this.qemu = qemu;
    qemu.on('data', (chunk: Buffer) => this.onData(chunk));
    qemu.on('error', () => {});
  }

  /** A 9P byte stream on connection `conn`: what it writes goes out in fragments of `fragment` bytes. */
  connection(conn: number, fragment = FRAGMENT_MAX): Duplex {
    const [ours, theirs] = duplexPair();
    const state = { ours, partial: undefined as Buffer | undefined, got: 0 };
    this.streams.set(conn, state);
    let pending = Buffer.alloc(0);
    ours.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4 && pending.length >= pending.readUInt32LE(0)) {
        const size = pending.readUInt32LE(0);
        this.sendMessage(conn, pending.subarray(0, size), fragment);
        pending = pending.subarray(size);
      }
    });
    return theirs;
  }

  /** Splits a 9P message into frames (in order) as the guest module does. */
  framesOf(conn: number, message: Buffer, fragment = FRAGMENT_MAX): Buffer[] {
    const tag = message.readUInt16LE(5);
    const out: Buffer[] = [];
    for (let offset = 0; offset < message.length; offset += fragment) out.push(this.frame(conn, tag, offset, message.subarray(offset, offset + fragment)));
    return out;
  }

  frame(conn: number, tag: number, offset: number, fragment: Buffer, ethertype = ETHERTYPE_POCKETVM_9P, flags = 0): Buffer {
    const head = Buffer.alloc(4 + 14 + 12);
    head.writeUInt32BE(14 + 12 + fragment.length, 0);
    Buffer.alloc(6, 0xff).copy(head, 4);
    GUEST_MAC.copy(head, 10);
    head.writeUInt16BE(ethertype, 16);
    head.writeUInt32LE(conn, 18);
    head.writeUInt16LE(tag, 22);
    head.writeUInt16LE(flags, 24);
    head.writeUInt32LE(offset, 26);
    return Buffer.concat([head, fragment]);
  }

  sendMessage(conn: number, message: Buffer, fragment = FRAGMENT_MAX): void {
    for (const f of this.framesOf(conn, message, fragment)) this.qemu.write(f);
  }

  private onData(chunk: Buffer): void {
    this.chunks = Buffer.concat([this.chunks, chunk]);
    while (this.chunks.length >= 4 && this.chunks.length >= 4 + this.chunks.readUInt32BE(0)) {
      const size = this.chunks.readUInt32BE(0);
      const frame = this.chunks.subarray(4, 4 + size);
      this.chunks = this.chunks.subarray(4 + size);
      const received: ReceivedFrame = {
        dst: frame.subarray(0, 6),
        conn: frame.readUInt32LE(14),
        tag: frame.readUInt16LE(18),
        flags: frame.readUInt16LE(20),
        offset: frame.readUInt32LE(22),
        fragment: Buffer.from(frame.subarray(26)),
      };
      this.frames.push(received);
      const state = this.streams.get(received.conn);
      // A placed read's header says data the frames do not carry: the test reads it from peer.frames.
      // A retire answer is a header alone, no 9P message.
      if (!state || received.flags & (FrameFlag.placed | FrameFlag.retire)) continue;
      // Replies arrive whole and in order: reassemble by offset.
      if (received.offset === 0) {
        state.partial = Buffer.alloc(received.fragment.readUInt32LE(0));
        state.got = 0;
      }
      if (!state.partial || received.offset !== state.got) throw new Error(`reply fragment out of order (offset ${received.offset}, expected ${state.got})`);
      received.fragment.copy(state.partial, received.offset);
      state.got += received.fragment.length;
      if (state.got === state.partial.length) {
        state.ours.write(state.partial);
        state.partial = undefined;
      }
    }
  }
}
