// A directory listing of the namespace, streamed: a handle holds at most one
// batch of entries (plus the one being prefetched), never the whole folder.
//
// A listing is a sequence of phases (the entries a table entry reserves, the
// upper store's names, the host folder's names), each read in batches from
// where it left off. The 9P cookie of an entry is its position in that
// sequence (1-based). A guest that goes on from the last cookie (every
// getdents after the first) continues the stream; any other offset (a
// rewind, a seek back) starts the phases again and skips to it, which costs
// a re-read of the names before it, as a seek in a host folder does.
//
// Memory: a handle holds the host folder's read position (its descriptor
// and a small read buffer) and, while it waits for the guest's next read,
// at most one batch read ahead. Read-ahead batches come out of one budget
// per backend (ListingBudget), so thousands of open handles on a huge
// folder cost thousands of descriptors' worth of memory, not thousands of
// batches; without budget left a handle reads its next batch when asked.
// See docs/tables-and-namespace.md, "Memory bounds of the namespace".
import type { NinepDirent } from '../ninep/backend.ts';

/** Entries per batch after the first. */
export const LISTING_BATCH = 1024;
/** The first batch is small: the guest starts on it while the next is prepared. */
export const FIRST_LISTING_BATCH = 256;

/** A listed entry before it has its cookie. */
export type ListedEntry = Omit<NinepDirent, 'offset'>;

/** One part of a listing, read in order. */
export interface ListingPhase {
  /** Up to `max` more entries; fewer (possibly none) only when `done` is then true. */
  next(max: number): Promise<ListedEntry[]>;
  readonly done: boolean;
  close(): Promise<void>;
}

interface Prefetch {
  pos: number;
  entries: Promise<ListedEntry[]>;
  /** Entries it took from the budget (given back when it is used or dropped). */
  reserved: number;
}

/** Entries read ahead by all handles of one backend, at most `limit` at once. */
export class ListingBudget {
  readonly limit: number;
  #used = 0;
  /** Reads that were not from the last cookie handed out (each re-reads the folder up to its offset). */
  seeks = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  get used(): number {
    return this.#used;
  }

  /** Reserve `n` entries if they fit. */
  take(n: number): boolean {
    if (this.#used + n > this.limit) return false;
    this.#used += n;
    return true;
  }

  give(n: number): void {
    this.#used = Math.max(0, this.#used - n);
  }
}

/** Read-ahead entries per backend: about 1 KiB each with their lstat, so some 16 MiB. */
export const LISTING_READ_AHEAD = 16 * LISTING_BATCH;

export class StreamedListing {
  readonly #open: () => ListingPhase[];
  readonly #budget: ListingBudget;
  #phases: ListingPhase[] | undefined;
  #phase = 0;
  /** Cookie of the last entry handed out (0: none yet). */
  #pos = 0;
  #prefetch: Prefetch | undefined;
  #closed = false;

  /** `open` makes fresh phases: at the first read and at every restart. */
  constructor(open: () => ListingPhase[], budget: ListingBudget) {
    this.#open = open;
    this.#budget = budget;
  }

  /**
   * Entries after cookie `offset`: `max` of them, fewer only at the end; []
   * at the end. As many as the caller has room for (a whole Rreaddir): each
   * Treaddir is a round trip the guest waits on, and under TCG that costs
   * more than the entries in it. Entries are taken from the folder exactly
   * as needed; only the batch read ahead can hold more, and it is counted
   * in the budget until it is used.
   */
  async read(offset: number, max: number): Promise<NinepDirent[]> {
    if (this.#closed) return [];
    if (this.#phases === undefined || offset !== this.#pos) await this.#restart(offset);
    const out: NinepDirent[] = [];
    while (out.length < max) {
      const room = max - out.length;
      let batch: ListedEntry[];
      const prefetch = this.#prefetch;
      this.#prefetch = undefined;
      if (prefetch && prefetch.pos === this.#pos) {
        let entries: ListedEntry[];
        try {
          entries = await prefetch.entries;
        } catch (error) {
          this.#budget.give(prefetch.reserved);
          throw error;
        }
        if (entries.length > room) {
          batch = entries.slice(0, room);
          // The rest stays read ahead, still counted in the budget.
          this.#prefetch = { pos: this.#pos + room, entries: Promise.resolve(entries.slice(room)), reserved: prefetch.reserved };
        } else {
          batch = entries;
          this.#budget.give(prefetch.reserved);
        }
      } else {
        if (prefetch) {
          await prefetch.entries.catch(() => {});
          this.#budget.give(prefetch.reserved);
        }
        batch = await this.#take(Math.min(room, this.#pos === 0 ? FIRST_LISTING_BATCH : LISTING_BATCH));
      }
      if (batch.length === 0) break;
      const first = this.#pos;
      this.#pos += batch.length;
      for (let i = 0; i < batch.length; i++) out.push({ ...batch[i]!, offset: first + i + 1 });
    }
    if (this.#prefetch === undefined && !this.#finished() && this.#budget.take(LISTING_BATCH)) {
      // The guest works through this reply meanwhile: the next batch is prepared.
      const entries = this.#take(LISTING_BATCH);
      entries.catch(() => {}); // a failed prefetch is redone (and reported) by the read that needs it
      this.#prefetch = { pos: this.#pos, entries, reserved: LISTING_BATCH };
    }
    return out;
  }

  #finished(): boolean {
    const phases = this.#phases!;
    return this.#phase >= phases.length;
  }

  /** The next up to `count` entries across phases. */
  async #take(count: number): Promise<ListedEntry[]> {
    const phases = this.#phases!;
    const out: ListedEntry[] = [];
    while (out.length < count && this.#phase < phases.length) {
      const phase = phases[this.#phase]!;
      const got = await phase.next(count - out.length);
      for (const e of got) out.push(e);
      if (phase.done) {
        await phase.close();
        this.#phase++;
      }
    }
    return out;
  }

  /** New phases, then skip to `offset`. */
  async #restart(offset: number): Promise<void> {
    if (offset > 0) this.#budget.seeks++;
    await this.#settle();
    await this.#closePhases();
    this.#phases = this.#open();
    this.#phase = 0;
    this.#pos = 0;
    while (this.#pos < offset) {
      const skipped = await this.#take(Math.min(LISTING_BATCH, offset - this.#pos));
      if (skipped.length === 0) break;
      this.#pos += skipped.length;
    }
    // Past the end: the guest asked beyond the last entry.
    this.#pos = offset;
  }

  async #settle(): Promise<void> {
    const pending = this.#prefetch;
    this.#prefetch = undefined;
    await pending?.entries.catch(() => {});
    if (pending) this.#budget.give(pending.reserved);
  }

  async #closePhases(): Promise<void> {
    const phases = this.#phases ?? [];
    this.#phases = undefined;
    for (let i = this.#phase; i < phases.length; i++) await phases[i]!.close().catch(() => {});
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#settle();
    await this.#closePhases();
  }
}

/** A phase over a small, already known list (the entries a table entry reserves). */
export function arrayPhase(load: () => Promise<ListedEntry[]>): ListingPhase {
  let entries: ListedEntry[] | undefined;
  let at = 0;
  return {
    get done() {
      return entries !== undefined && at >= entries.length;
    },
    async next(max) {
      entries ??= await load();
      const out = entries.slice(at, at + max);
      at += out.length;
      return out;
    },
    async close() {
      entries = [];
    },
  };
}
