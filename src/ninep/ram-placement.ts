// Placed reads (payload/kmod/9pnet_pocketvm, "Placed reads"): a Tread frame
// flagged PLACE carries, after the 9P message, the guest-physical segments
// of the reader's pinned pages:
//   count u32, then count × { phys u64, len u32 }   (little-endian)
// The Rread's data is then written into guest RAM there and only the Rread's
// 11-byte header goes back, flagged PLACED. The 9P server never knows.
//
// Nothing here trusts the guest: a list that does not parse, or a segment
// outside guest RAM (GuestRamWriter checks), only means the reply goes the
// ordinary way. What the guest can aim a write at is its own RAM.
import type { GuestRamWriter, RamSegment } from '../vmm/guest-ram.ts';
import { IO_HEADER_SIZE, MessageId } from './codec.ts';
import { readBuffers } from './message-buffers.ts';
import { NAMESPACE_MSIZE } from './msize.ts';

/** Frame flags (the u16 after the tag in the transport header). */
export const FrameFlag = {
  /** Guest: a Tread followed by the reader's page segments. */
  place: 1,
  /** Launcher: the Rread's data is in the reader's pages; the frame carries its header alone. */
  placed: 2,
  /** Launcher, on every frame: it can write guest RAM (the guest then asks for placement). */
  canPlace: 4,
  /**
   * Guest: its kernel is going away (reboot, power-off, kexec: the module's
   * reboot notifier), a frame of the header alone; launcher: the same frame
   * back once every placement is cancelled and every connection retired.
   */
  retire: 8,
  /**
   * Guest: a Tclunk it has answered itself (the module's "Round trips
   * saved"): its tag may already be in use again, so no reply goes back.
   */
  noReply: 16,
  /** Launcher, on every frame: it sends no reply to a Tclunk flagged noReply (the guest then answers its clunks itself). */
  canQuiet: 32,
} as const;

/** What a placed Rread's frame carries: size[4] type[1] tag[2] count[4]. */
export const RREAD_HEADER = IO_HEADER_SIZE;
const SEGMENT_SIZE = 12;
/**
 * The most pages one Tread's data can touch: the largest msize the guest
 * module allows (1 MiB + 4 KiB, NAMESPACE_MSIZE) in 4 KiB pages, plus one
 * for a buffer that does not start on a page. A longer list is broken.
 */
export const MAX_SEGMENTS = NAMESPACE_MSIZE / 4096 + 1;

/** The segment list after a Tread, or undefined when it does not parse. */
export function parseSegments(list: Buffer): RamSegment[] | undefined {
  if (list.length < 4) return undefined;
  const count = list.readUInt32LE(0);
  if (count === 0 || count > MAX_SEGMENTS || list.length !== 4 + count * SEGMENT_SIZE) return undefined;
  const segments: RamSegment[] = [];
  for (let at = 4; at < list.length; at += SEGMENT_SIZE) {
    const phys = list.readBigUInt64LE(at);
    const len = list.readUInt32LE(at + 8);
    if (phys > BigInt(Number.MAX_SAFE_INTEGER) || len === 0) return undefined;
    segments.push({ phys: Number(phys), len });
  }
  return segments;
}

/** Reads answered in place, those that asked but went the ordinary way, and the milliseconds spent writing guest RAM (summed). */
export interface PlacementCounters {
  placed: number;
  declined: number;
  placeMs: number;
}

/** One mount's placements, by the tag of the Tread that asked. */
export class ReadPlacements {
  readonly #ram: GuestRamWriter;
  readonly #byTag = new Map<number, RamSegment[]>();
  /** Cancelled (a reset, a suspend): no request is remembered, no reply placed. */
  #held = false;
  /** Shared with the transport. */
  readonly counters: PlacementCounters;

  constructor(ram: GuestRamWriter, counters: PlacementCounters = { placed: 0, declined: 0, placeMs: 0 }) {
    this.#ram = ram;
    this.counters = counters;
  }

  /**
   * A request arrived on `tag` (the guest reuses a tag only after its reply):
   * remembers its segments, or forgets an older request's. A Tflush drops
   * the placement of the request it flushes, before its Rflush can go out:
   * the guest unpins a killed reader's pages on Rflush.
   */
  request(message: Buffer, segments: RamSegment[] | undefined): void {
    const tag = message.readUInt16LE(5);
    if (segments && !this.#held && message[4] === MessageId.Tread) this.#byTag.set(tag, segments);
    else this.#byTag.delete(tag);
    if (message[4] === MessageId.Tflush && message.length >= 9) this.#byTag.delete(message.readUInt16LE(7));
  }

  /**
   * A reply about to go out. For an Rread whose data could be written into
   * the reader's pages: the 11-byte header to send instead (flag PLACED).
   * Otherwise undefined: the reply goes whole, the guest copies its data.
   */
  reply(message: Buffer): Buffer | undefined {
    const tag = message.readUInt16LE(5);
    const segments = this.#byTag.get(tag);
    if (segments === undefined || this.#held) return undefined;
    this.#byTag.delete(tag);
    if (message[4] !== MessageId.Rread || message.length < RREAD_HEADER) return undefined;
    const count = message.readUInt32LE(7);
    if (count === 0 || RREAD_HEADER + count !== message.length) return undefined;
    const started = performance.now();
    const written = this.#ram.write(segments, message.subarray(RREAD_HEADER));
    this.counters.placeMs += performance.now() - started;
    if (!written) {
      this.counters.declined++;
      return undefined;
    }
    this.counters.placed++;
    // The frame gets a copy of the header: nothing of the reply is needed any more.
    const header = Buffer.from(message.subarray(0, RREAD_HEADER));
    readBuffers.giveBack(message);
    return header;
  }

  /** Placed reads asked for and not yet answered. */
  get pending(): number {
    return this.#byTag.size;
  }

  /**
   * Cancels every pending placement: their replies, if they still come, go
   * the ordinary way (or nowhere, once the connection is retired). Nothing
   * more is written to guest RAM through this object until `allow()`.
   */
  cancel(): void {
    this.#byTag.clear();
    this.#held = true;
  }

  /** After a suspend that did not finish: reads may be placed again. */
  allow(): void {
    this.#held = false;
  }

  clear(): void {
    this.#byTag.clear();
  }
}
