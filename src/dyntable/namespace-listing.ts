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
// Memory per handle: two batches of at most LISTING_BATCH entries each
// (about 200 bytes an entry with its attributes' thunk), whatever the size
// of the folder. See README "Memory bounds of the namespace".
import type { NinepDirent } from './ninep/backend.ts';

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
}

export class StreamedListing {
  readonly #open: () => ListingPhase[];
  #phases: ListingPhase[] | undefined;
  #phase = 0;
  /** Cookie of the last entry handed out (0: none yet). */
  #pos = 0;
  #prefetch: Prefetch | undefined;
  #closed = false;

  /** `open` makes fresh phases: at the first read and at every restart. */
  constructor(open: () => ListingPhase[]) {
    this.#open = open;
  }

  /** Entries after cookie `offset`, at most `max`; [] at the end. */
  async read(offset: number, max: number): Promise<NinepDirent[]> {
    if (this.#closed) return [];
    if (this.#phases === undefined || offset !== this.#pos) await this.#restart(offset);
    const prefetch = this.#prefetch;
    this.#prefetch = undefined;
    let batch: ListedEntry[];
    if (prefetch && prefetch.pos === this.#pos) {
      batch = await prefetch.entries;
    } else {
      await prefetch?.entries.catch(() => {});
      batch = await this.#take(this.#pos === 0 ? FIRST_LISTING_BATCH : LISTING_BATCH);
    }
    // The caller may take fewer than a batch: what it leaves is read again later.
    const given = batch.length > max ? batch.slice(0, max) : batch;
    const first = this.#pos;
    this.#pos += given.length;
    const out = given.map((e, i) => ({ ...e, offset: first + i + 1 }));
    if (given.length < batch.length) {
      const rest = batch.slice(given.length);
      this.#prefetch = { pos: this.#pos, entries: Promise.resolve(rest) };
    } else if (!this.#finished()) {
      // The guest works through this batch meanwhile: the next is prepared.
      const entries = this.#take(LISTING_BATCH);
      entries.catch(() => {}); // a failed prefetch is redone (and reported) by the read that needs it
      this.#prefetch = { pos: this.#pos, entries };
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
