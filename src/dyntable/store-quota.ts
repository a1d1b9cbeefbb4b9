// How much of the stick the guest may fill through /host: what it writes to
// users/<name>/files/ and users/<name>/upper/ (layer-store.ts) counts against
// one per-user quota, and the stick always keeps a reserve for the personal
// disk's growth and a suspend. A growth past either fails that one request
// with ENOSPC ("No space left on device" in the guest); nothing written
// before is touched, and once files are deleted writing works again.
//
// What counts: every node (file, folder, symlink, device) NODE_BYTES for its
// rows, a symlink its target, a regular file its length (holes included:
// a sparse file counts as long as it reads). The totals are kept running
// (a charge per growth, a release per shrink or delete, no walk per write);
// each store adds what it holds when it opens and takes it back when it
// closes, so the figure is recomputed at every open and survives a restart.
// Sealing's few bytes per block and SQLite's pages are left to the reserve.
// Sealed writes answered and not yet on the stick (written behind,
// sealed-file.ts) are taken off the free space statfs reports.
import { statfsSync } from 'node:fs';
import { ErrnoError } from '../ninep/backend.ts';
import { sealedBytesBehind } from './sealed/sealed-file.ts';

/** What one node's rows cost, whatever its content. */
export const NODE_BYTES = 1024;
/** The stick's free space is read again after this long, or after this much was charged. */
const FREE_REFRESH_MS = 1_000;
const FREE_REFRESH_BYTES = 16 * 1024 ** 2;
/** A person is told again at most this often. */
const TELL_AGAIN_MS = 60_000;

const mib = (bytes: number) => Math.floor(bytes / 1024 ** 2);

export interface StoreQuotaOptions {
  /** Most bytes files/ and upper/ may hold together. */
  capBytes: number;
  /** Free space the stick keeps whatever the guest writes through /host (0: none). */
  reserveBytes?: number;
  /** A folder on the stick, whose file system's free space is checked. */
  stickDir?: string;
  /** Told in one line when writes start being refused (at most once a minute). */
  onFull?: (message: string) => void;
  /** Free bytes on the stick (default: statfs of stickDir); undefined where the host cannot tell. */
  freeBytes?: () => number | undefined;
}

export interface StoreQuotaFull {
  since: string;
  message: string;
  reason: 'quota' | 'reserve';
}

export interface StoreQuotaStatus {
  usedBytes: number;
  capBytes: number;
  reserveBytes: number;
  /** Set while writes through /host are refused. */
  full?: StoreQuotaFull;
}

export class StoreQuota {
  readonly capBytes: number;
  /** Settable: the session knows the guest's RAM (a suspend's size) only after sizing. */
  reserveBytes: number;
  readonly #onFull: (message: string) => void;
  readonly #freeBytes: () => number | undefined;
  #used = 0;
  #free: number | undefined;
  #freeAt = 0;
  #chargedSinceFree = 0;
  #full: StoreQuotaFull | undefined;
  #toldAt = -Infinity;

  constructor(options: StoreQuotaOptions) {
    if (!(options.capBytes >= 0)) throw new RangeError(`a quota of ${options.capBytes} bytes`);
    this.capBytes = options.capBytes;
    this.reserveBytes = options.reserveBytes ?? 0;
    this.#onFull = options.onFull ?? (() => {});
    const dir = options.stickDir;
    this.#freeBytes =
      options.freeBytes ??
      (() => {
        if (dir === undefined) return undefined;
        try {
          const fs = statfsSync(dir);
          // Less what sealed files have answered and not yet written (their writes behind).
          return fs.bavail * fs.bsize - sealedBytesBehind();
        } catch {
          return undefined;
        }
      });
  }

  get usedBytes(): number {
    return this.#used;
  }

  status(): StoreQuotaStatus {
    return { usedBytes: this.#used, capBytes: this.capBytes, reserveBytes: this.reserveBytes, ...(this.#full ? { full: this.#full } : {}) };
  }

  /** What a store holds as it opens: counted, never refused (it is on the stick already). */
  adopt(bytes: number): void {
    this.#used += bytes;
  }

  /** A growth by `bytes`: counted, or refused with ENOSPC (nothing counted then). */
  charge(bytes: number): void {
    if (bytes <= 0) return;
    if (this.#used + bytes > this.capBytes)
      this.#refuse(
        'quota',
        `the guest's files on the stick are at their quota (${mib(this.#used)} of ${mib(this.capBytes)} MiB): writes to /host fail with "No space left on device" until files there are deleted`,
      );
    if (this.reserveBytes > 0) {
      let free = this.#currentFree(false);
      // A refusal is always on a fresh figure (space may have been freed since).
      if (free !== undefined && free - bytes < this.reserveBytes) free = this.#currentFree(true);
      if (free !== undefined && free - bytes < this.reserveBytes) {
        this.#refuse(
          'reserve',
          `the stick is nearly full (${mib(Math.max(0, free))} MiB free, ${mib(this.reserveBytes)} MiB kept for the personal disk and a suspend): writes to /host fail with "No space left on device" until space is freed`,
        );
      }
    }
    this.#used += bytes;
    this.#chargedSinceFree += bytes;
    // Writing works again: the next refusal is a new episode.
    if (this.#full) this.#full = undefined;
  }

  /** A shrink or delete of `bytes`. */
  release(bytes: number): void {
    if (bytes <= 0) return;
    this.#used = Math.max(0, this.#used - bytes);
    this.#chargedSinceFree -= bytes;
    if (this.#full?.reason === 'quota' && this.#used < this.capBytes) this.#full = undefined;
  }

  /** Free bytes on the stick: statfs at most once a second or per 16 MiB charged, in between an estimate. */
  #currentFree(fresh: boolean): number | undefined {
    const now = Date.now();
    if (fresh || this.#free === undefined || now - this.#freeAt >= FREE_REFRESH_MS || this.#chargedSinceFree >= FREE_REFRESH_BYTES) {
      this.#free = this.#freeBytes();
      this.#freeAt = now;
      this.#chargedSinceFree = 0;
    }
    return this.#free === undefined ? undefined : this.#free - this.#chargedSinceFree;
  }

  #refuse(reason: StoreQuotaFull['reason'], message: string): never {
    if (!this.#full) {
      this.#full = { since: new Date().toISOString(), message, reason };
      const now = Date.now();
      if (now - this.#toldAt >= TELL_AGAIN_MS) {
        this.#toldAt = now;
        this.#onFull(message);
      }
    }
    throw ErrnoError.of('ENOSPC', message);
  }
}
