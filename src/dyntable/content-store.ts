// Where a layer store keeps the content of its regular files: one file per
// node under <dir>/data/<xx>/<id> (fanned out: FAT32 allows ~65k names per
// folder). The namespace reads and writes content only through this
// interface, so whether it is sealed (sealed/sealed-content-store.ts, the
// session's stores) or plain (tests and benchmarks that hold no key) is
// decided in one place, LayerStore.open.
import { closeSync, lstatSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { open, truncate, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrnoError } from '../ninep/backend.ts';

/** One open regular file's content. */
export interface NodeContent {
  read(target: Uint8Array, position: number): Promise<number>;
  /** Writes all of `data` (or throws). */
  write(data: Uint8Array, position: number): Promise<number>;
  size(): Promise<number>;
  truncate(size: number): Promise<void>;
  sync(datasync: boolean): Promise<void>;
  close(): Promise<void>;
}

/**
 * Where a sealed store records each file's content version (the node's
 * sealed row, LayerStore): an older copy of a whole file then no longer
 * opens (sealed/sealed-file.ts).
 */
export interface ContentVersions {
  /** The version recorded for node `id` (0: none yet). */
  recorded(id: number): number;
  /** Node `id`'s file is on the stick at `version`: record it. */
  record(id: number, version: number): void;
}

export interface ContentStore {
  /**
   * Empty content for a new node, synchronously: a metadata write on the
   * stick takes microseconds, a trip through libuv's pool tens, and a
   * guest's create stays one transaction (namespace-backend.ts).
   */
  createSync(id: number): void;
  open(id: number): Promise<NodeContent>;
  /** Size in bytes and 512-byte blocks used, synchronously (getattr's hot path). */
  statSync(id: number): { size: number; blocks: number };
  truncate(id: number, size: number): Promise<void>;
  /** The node is gone: its content too (never called while it is open). */
  remove(id: number): void;
  /**
   * Set by LayerStore: called when what the node's row must say about its
   * content changed (sealed: its first write), so the row is saved again.
   */
  rowChanged?: (id: number) => void;
  close(): Promise<void>;
  /** A sealed store checks and records content versions through this (plain stores have none). */
  attachVersions?(versions: ContentVersions): void;
  /** layer.sqlite's rows so far are durable (after a checkpoint). */
  checkpointed?(): void;
}

export function contentPath(dir: string, id: number): string {
  return join(dir, 'data', (id & 0xff).toString(16).padStart(2, '0'), String(id));
}

/** data/<xx> folders known to exist, per store. */
export class Fanouts {
  readonly #known = new Set<string>();
  ensure(path: string): void {
    const fanout = join(path, '..');
    if (this.#known.has(fanout)) return;
    mkdirSync(fanout, { recursive: true });
    this.#known.add(fanout);
  }
}

const fsError = (error: unknown): never => {
  throw ErrnoError.fromNode(error);
};

class PlainContent implements NodeContent {
  readonly #fh: FileHandle;
  constructor(fh: FileHandle) {
    this.#fh = fh;
  }
  async read(target: Uint8Array, position: number): Promise<number> {
    return (await this.#fh.read(target, 0, target.length, position).catch(fsError)).bytesRead;
  }
  async write(data: Uint8Array, position: number): Promise<number> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.#fh.write(data, done, data.length - done, position + done).catch(fsError);
      if (bytesWritten <= 0) break;
      done += bytesWritten;
    }
    return done;
  }
  async size(): Promise<number> {
    return (await this.#fh.stat().catch(fsError)).size;
  }
  truncate(size: number): Promise<void> {
    return this.#fh.truncate(size).catch(fsError);
  }
  sync(datasync: boolean): Promise<void> {
    return (datasync ? this.#fh.datasync() : this.#fh.sync()).catch(fsError);
  }
  close(): Promise<void> {
    return this.#fh.close().catch(() => {});
  }
}

/** Content in the clear: what the guest wrote, byte for byte. */
export class PlainContentStore implements ContentStore {
  readonly dir: string;
  readonly #fanouts = new Fanouts();
  constructor(dir: string) {
    this.dir = dir;
  }
  createSync(id: number): void {
    const path = contentPath(this.dir, id);
    this.#fanouts.ensure(path);
    closeSync(openSync(path, 'w'));
  }
  async open(id: number): Promise<NodeContent> {
    return new PlainContent(await open(contentPath(this.dir, id), 'r+').catch(fsError));
  }
  statSync(id: number): { size: number; blocks: number } {
    const st = lstatSync(contentPath(this.dir, id), { throwIfNoEntry: false });
    return { size: st?.size ?? 0, blocks: st?.blocks ?? 0 };
  }
  truncate(id: number, size: number): Promise<void> {
    return truncate(contentPath(this.dir, id), size).catch(fsError);
  }
  remove(id: number): void {
    rmSync(contentPath(this.dir, id), { force: true });
  }
  async close(): Promise<void> {}
}
