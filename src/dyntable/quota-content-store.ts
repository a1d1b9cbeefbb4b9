// A layer store's contents, counted against the user's quota
// (store-quota.ts): a write or truncate that makes a file longer is charged
// before it reaches the stick, and refused with ENOSPC (that request alone)
// when it does not fit; a shrink or a removal gives the bytes back. Each
// changed file's length is kept here, so a write costs a comparison, not a
// stat.
//
// At open the store's total comes from what its last clean close saved
// (layer-store.ts keeps it in its meta table and removes it as it opens, so
// a crash leaves none); a file's own length is read only when it first
// changes. Without a saved total (a first open, or after a crash) every
// file's length is read: a sealed file's from its header, an open and a read
// each (about 0.3 ms a file on a busy machine).
import type { ContentStore, ContentVersions, NodeContent } from './content-store.ts';
import type { StoreQuota } from './store-quota.ts';

export class QuotaContentStore implements ContentStore {
  readonly #inner: ContentStore;
  readonly #quota: StoreQuota;
  /** Length of every file this store counts whose length is known here. */
  readonly #sizes = new Map<number, number>();
  /** Files in the saved total whose own length is not read yet. */
  readonly #unread = new Set<number>();
  /** Bytes of content this store counts against the quota. */
  #total = 0;

  constructor(inner: ContentStore, quota: StoreQuota) {
    this.#inner = inner;
    this.#quota = quota;
  }

  /**
   * Counts the files already on the stick (at open; never refused): `saved`,
   * the total a clean close left, or else each file's length.
   */
  adopt(ids: Iterable<number>, saved: number | undefined): void {
    let total = 0;
    if (saved === undefined) {
      for (const id of ids) {
        const { size } = this.#inner.statSync(id);
        this.#sizes.set(id, size);
        total += size;
      }
    } else {
      for (const id of ids) this.#unread.add(id);
      total = saved;
    }
    this.#total += total;
    this.#quota.adopt(total);
  }

  /** Bytes of content this store counts (saved at a clean close, given back to the quota then). */
  countedBytes(): number {
    return this.#total;
  }

  /** A file's counted length, read once if the saved total held it. */
  lengthOf(id: number): number {
    if (this.#unread.delete(id)) {
      const { size } = this.#inner.statSync(id);
      this.#sizes.set(id, size);
      return size;
    }
    return this.#sizes.get(id) ?? 0;
  }

  /** The file at `id` becomes `size` long: charge (or refuse) a growth, release a shrink. */
  resize(id: number, size: number): () => void {
    const before = this.lengthOf(id);
    if (size > before) {
      this.#quota.charge(size - before);
      this.#total += size - before;
    }
    this.#sizes.set(id, size);
    if (size < before) this.#release(before - size);
    // Undo, for a growth whose write failed (if nothing grew it further meanwhile).
    return () => {
      if (size > before && this.#sizes.get(id) === size) {
        this.#sizes.set(id, before);
        this.#release(size - before);
      }
    };
  }

  #release(bytes: number): void {
    this.#total -= bytes;
    this.#quota.release(bytes);
  }

  createSync(id: number): void {
    this.#inner.createSync(id);
    this.#sizes.set(id, 0);
  }

  async open(id: number): Promise<NodeContent> {
    return new QuotaContent(this, id, await this.#inner.open(id));
  }

  statSync(id: number): { size: number; blocks: number } {
    return this.#inner.statSync(id);
  }

  async truncate(id: number, size: number): Promise<void> {
    const undo = this.resize(id, size);
    try {
      await this.#inner.truncate(id, size);
    } catch (error) {
      undo();
      throw error;
    }
  }

  remove(id: number): void {
    const size = this.lengthOf(id);
    this.#inner.remove(id);
    this.#sizes.delete(id);
    this.#release(size);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  // The inner store's optional members, forwarded: a sealed store tells its
  // rows through them (an unwritten file's first write, content versions,
  // checkpoints), so they must reach it through this wrapper.

  get rowChanged(): ((id: number) => void) | undefined {
    return this.#inner.rowChanged;
  }

  set rowChanged(tell: ((id: number) => void) | undefined) {
    this.#inner.rowChanged = tell;
  }

  attachVersions(versions: ContentVersions): void {
    this.#inner.attachVersions?.(versions);
  }

  checkpointed(): void {
    this.#inner.checkpointed?.();
  }
}

class QuotaContent implements NodeContent {
  readonly #store: QuotaContentStore;
  readonly #id: number;
  readonly #inner: NodeContent;

  constructor(store: QuotaContentStore, id: number, inner: NodeContent) {
    this.#store = store;
    this.#id = id;
    this.#inner = inner;
  }

  read(target: Uint8Array, position: number): Promise<number> {
    return this.#inner.read(target, position);
  }

  async write(data: Uint8Array, position: number): Promise<number> {
    const end = position + data.length;
    // Within the file's length a write costs nothing more: no charge, no undo.
    if (end <= this.#store.lengthOf(this.#id)) return this.#inner.write(data, position);
    const undo = this.#store.resize(this.#id, end);
    try {
      return await this.#inner.write(data, position);
    } catch (error) {
      undo();
      throw error;
    }
  }

  size(): Promise<number> {
    return this.#inner.size();
  }

  async truncate(size: number): Promise<void> {
    const undo = this.#store.resize(this.#id, size);
    try {
      await this.#inner.truncate(size);
    } catch (error) {
      undo();
      throw error;
    }
  }

  sync(datasync: boolean): Promise<void> {
    return this.#inner.sync(datasync);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
