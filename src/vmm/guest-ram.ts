// Guest RAM as a file the launcher also holds, so that the 9P transport can
// write a read's data straight into the guest reader's pages (placed reads,
// payload/kmod/9pnet_pocketvm): under TCG the guest CPU's own copy of reply
// data capped reads at a quarter of QEMU's virtio-9p, which writes from the
// host the same way. Placed writes are the mirror image: a Twrite's data is
// read from the writer's pages instead of crossing as Ethernet frames.
//
// The file lives in /dev/shm (memory, never the disk) and never has a name
// (O_TMPFILE): nothing else can open it, and it is gone with its last
// descriptor, whatever happens to the launcher. QEMU maps it through the inherited descriptor
// (`mem-path=/proc/self/fd/N`, share=on) with prealloc=on, so a /dev/shm too
// small fails QEMU's start instead of killing the guest with SIGBUS later.
// When /dev/shm is missing or short the machine gets ordinary RAM and reads
// are copied in the guest, as before.
//
// The backend's id is QEMU's default RAM id for q35 (`pc.ram`): a saved state
// names its RAM block by that id, so a state saved with or without a RAM
// file resumes into either.
import { closeSync, constants, ftruncateSync, openSync, readSync, statfsSync, writeSync } from 'node:fs';
import { platformOf } from '../platform/current.ts';

/** q35's default RAM id: what the memory backend must be called for saved states to match. */
export const RAM_BACKEND_ID = 'pc.ram';
const FOUR_GIB = 0x1_0000_0000;
/**
 * Below 1 MiB lie the real-mode IVT, the BIOS data area, the VGA window and
 * the shadowed BIOS: no reader's page is ever there (Linux reserves the
 * first megabyte for firmware), so a segment reaching into it is refused.
 */
export const LOWEST_PLACEMENT = 0x10_0000;
/** /dev/shm keeps this much free beyond the guest's RAM (the host's own users of it). */
const SHM_MARGIN = 64 * 1024 * 1024;
/** Linux's O_TMPFILE (with O_DIRECTORY, as open(2) wants it); Node does not export it. */
const O_TMPFILE = 0o20200000;

/** One run of guest-physical memory. */
export interface RamSegment {
  phys: number;
  len: number;
}

/** What the 9P transport needs of guest RAM: write (placed reads) and read (placed writes) bytes at guest-physical segments. */
export interface GuestRamWriter {
  /** Writes `data` across `segments` in order; false (nothing promised written) when any is out of RAM. */
  write(segments: readonly RamSegment[], data: Buffer): boolean;
  /** Fills `into` from `segments` in order; false (its contents undefined) when any segment it needs is out of RAM. */
  read(segments: readonly RamSegment[], into: Buffer): boolean;
}

/**
 * Where q35 maps guest RAM: below 4 GiB up to `below4g` (all of it when it
 * is under 2.75 GiB, else 2 GiB, the rest of the low space being the PCI
 * hole), the remainder from 4 GiB up. File offset of `phys`, or undefined
 * when [phys, phys + len) is not wholly inside one RAM range, or starts
 * below 1 MiB (LOWEST_PLACEMENT).
 */
export function q35RamOffset(phys: number, len: number, ramBytes: number): number | undefined {
  if (!Number.isSafeInteger(phys) || !Number.isSafeInteger(len) || phys < LOWEST_PLACEMENT || len < 0) return undefined;
  const below4g = ramBytes < 0xb000_0000 ? ramBytes : 0x8000_0000;
  if (phys + len <= below4g) return phys;
  if (phys < FOUR_GIB) return undefined; // in or across the hole
  const offset = below4g + (phys - FOUR_GIB);
  return offset + len <= ramBytes ? offset : undefined;
}

export type GuestRamUnavailable = { reason: string };

export class GuestRamFile implements GuestRamWriter {
  readonly sizeBytes: number;
  #fd: number | undefined;

  private constructor(fd: number, sizeBytes: number) {
    this.#fd = fd;
    this.sizeBytes = sizeBytes;
  }

  /**
   * An unnamed RAM file of `memoryMiB` in `dir` (default /dev/shm); or why
   * there is none (not Linux, no such folder, not enough room, no O_TMPFILE).
   */
  static create(memoryMiB: number, options: { dir?: string; platform?: NodeJS.Platform } = {}): GuestRamFile | GuestRamUnavailable {
    if (!platformOf(options.platform)?.guestRamInDevShm) return { reason: 'guest RAM in /dev/shm is for Linux hosts' };
    const dir = options.dir ?? '/dev/shm';
    const sizeBytes = memoryMiB * 1024 * 1024;
    let free: number;
    try {
      const fs = statfsSync(dir);
      free = fs.bavail * fs.bsize;
    } catch (error) {
      return { reason: `${dir}: ${(error as Error).message}` };
    }
    if (free < sizeBytes + SHM_MARGIN) return { reason: `${dir} has ${Math.floor(free / 1048576)} MiB free, the guest needs ${memoryMiB} MiB` };
    let fd: number | undefined;
    try {
      fd = openSync(dir, O_TMPFILE | constants.O_RDWR, 0o600);
      ftruncateSync(fd, sizeBytes);
      return new GuestRamFile(fd, sizeBytes);
    } catch (error) {
      if (fd !== undefined) closeSync(fd);
      return { reason: `${dir}: ${(error as Error).message}` };
    }
  }

  /** The launcher's descriptor (QEMU inherits it); undefined once closed. */
  get fd(): number | undefined {
    return this.#fd;
  }

  /** File offsets of the segments that `length` bytes need, or undefined when one is out of RAM or they are too short. */
  #offsets(segments: readonly RamSegment[], length: number): number[] | undefined {
    const offsets: number[] = [];
    let room = 0;
    for (const segment of segments) {
      if (room >= length) break;
      const offset = q35RamOffset(segment.phys, segment.len, this.sizeBytes);
      if (offset === undefined) return undefined;
      offsets.push(offset);
      room += segment.len;
    }
    return room < length ? undefined : offsets;
  }

  read(segments: readonly RamSegment[], into: Buffer): boolean {
    const fd = this.#fd;
    // Closed: the number may belong to another file by now.
    if (fd === undefined) return false;
    const offsets = this.#offsets(segments, into.length);
    if (offsets === undefined) return false;
    let at = 0;
    try {
      for (let i = 0; i < offsets.length && at < into.length; i++) {
        const n = Math.min(segments[i]!.len, into.length - at);
        let done = 0;
        while (done < n) {
          const got = readSync(fd, into, at + done, n - done, offsets[i]! + done);
          if (got === 0) return false; // the file is shorter than RAM: never, but no endless loop
          done += got;
        }
        at += n;
      }
    } catch {
      return false;
    }
    return true;
  }

  write(segments: readonly RamSegment[], data: Buffer): boolean {
    const fd = this.#fd;
    // Closed: the number may belong to another file by now.
    if (fd === undefined) return false;
    const offsets = this.#offsets(segments, data.length);
    if (offsets === undefined) return false;
    let at = 0;
    try {
      for (let i = 0; i < offsets.length && at < data.length; i++) {
        const n = Math.min(segments[i]!.len, data.length - at);
        let done = 0;
        while (done < n) done += writeSync(fd, data, at + done, n - done, offsets[i]! + done);
        at += n;
      }
    } catch {
      return false;
    }
    return true;
  }

  close(): void {
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd !== undefined) closeSync(fd);
  }
}
