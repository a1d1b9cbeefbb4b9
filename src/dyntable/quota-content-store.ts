// A layer store's contents, counted against the user's quota
// (store-quota.ts): a write or truncate that makes a file longer is charged
// before it reaches the stick, and refused with ENOSPC (that request alone)
// when it does not fit; a shrink or a removal gives the bytes back. Each
// file's length is kept here, so a write costs a comparison, not a stat.
import type { ContentStore, NodeContent } from './content-store.ts';
import type { StoreQuota } from './store-quota.ts';

export class QuotaContentStore implements ContentStore {
  readonly #inner: ContentStore;
  readonly #quota: StoreQuota;
  /** Length of every regular file's content this store counts. */
  readonly #sizes = new Map<number, number>();

  constructor(inner: ContentStore, quota: StoreQuota) {
    this.#inner = inner;
    this.#quota = quota;
  }

  /** Counts an existing file's content (at open; never refused). */
  adopt(id: number): void {
    const { size } = this.#inner.statSync(id);
    this.#sizes.set(id, size);
    this.#quota.adopt(size);
  }

  /** Bytes of content this store counts (given back at close). */
  countedBytes(): number {
    let total = 0;
    for (const size of this.#sizes.values()) total += size;
    return total;
  }

  /** The file at `id` becomes `size` long: charge (or refuse) a growth, release a shrink. */
  resize(id: number, size: number): () => void {
    const before = this.#sizes.get(id) ?? 0;
    if (size > before) this.#quota.charge(size - before);
    this.#sizes.set(id, size);
    if (size < before) this.#quota.release(before - size);
    // Undo, for a growth whose write failed (if nothing grew it further meanwhile).
    return () => {
      if (size > before && this.#sizes.get(id) === size) {
        this.#sizes.set(id, before);
        this.#quota.release(size - before);
      }
    };
  }

  lengthOf(id: number): number {
    return this.#sizes.get(id) ?? 0;
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
    this.#inner.remove(id);
    const size = this.#sizes.get(id);
    if (size === undefined) return;
    this.#sizes.delete(id);
    this.#quota.release(size);
  }

  close(): Promise<void> {
    return this.#inner.close();
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
