// The catalog of the image store (images/catalog.sqlite on the stick, opened
// under the stick's database policy, src/primitives/stick-database.ts): one
// row per stored image, named by the sha256 of its guest-visible content,
// with its facts (from `image inspect`), and one row per import that brought
// it (provenance: the file, its format and size, when). Every change is one
// transaction, made after the store file is already in place.
import type { DatabaseSync } from 'node:sqlite';
import { openStickDatabase } from '../primitives/stick-database.ts';
import type { TablePartition } from './partition-table.ts';

export interface ImageProvenance {
  source: string;
  format: string;
  /** The OVA member the disk came from. */
  member?: string;
  sourceBytes: number;
  importedAt: string;
}

export interface CatalogImage {
  name: string;
  /** sha256 of the guest-visible content (the whole virtual disk). */
  sha256: string;
  /** The store file, relative to images/store/. */
  file: string;
  /** sha256 of the stored qcow2 file itself. */
  fileSha256: string;
  virtualBytes: number;
  storedBytes: number;
  partitionTable: { kind: string; id?: string; partitions: TablePartition[] };
  /** What `image inspect` found (undefined until it ran). */
  facts?: Record<string, unknown>;
  inspectedAt?: string;
  createdAt: string;
  imports: ImageProvenance[];
  /** An image made from another by `image customize`: its parent and the steps, in order. */
  lineage?: ImageLineage;
  /** What the descriptors it was imported with said (`launcher import`: firmware, memory, CPUs, MACs), as written there. */
  described?: DescribedImport[];
}

export interface DescribedImport {
  source: string;
  descriptor: Record<string, unknown>;
  importedAt: string;
}

export interface ImageLineage {
  parent: string;
  parentName: string;
  steps: string[];
  madeAt: string;
}

/**
 * `image`, then the image it was made from (its lineage's parent), and so on
 * while `byHash` still finds them; a lineage that loops ends at the repeat.
 */
export function* selfAndAncestors(image: CatalogImage, byHash: (sha256: string) => CatalogImage | undefined): Generator<CatalogImage> {
  const seen = new Set<string>();
  for (let at: CatalogImage | undefined = image; at && !seen.has(at.sha256); at = at.lineage ? byHash(at.lineage.parent) : undefined) {
    seen.add(at.sha256);
    yield at;
  }
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS images (
  sha256 TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  file TEXT NOT NULL,
  file_sha256 TEXT NOT NULL,
  virtual_bytes INTEGER NOT NULL,
  stored_bytes INTEGER NOT NULL,
  partition_table TEXT NOT NULL,
  facts TEXT,
  inspected_at TEXT,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS imports (
  id INTEGER PRIMARY KEY,
  sha256 TEXT NOT NULL REFERENCES images(sha256) ON DELETE CASCADE,
  source TEXT NOT NULL,
  format TEXT NOT NULL,
  member TEXT,
  source_bytes INTEGER NOT NULL,
  imported_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lineage (
  sha256 TEXT PRIMARY KEY REFERENCES images(sha256) ON DELETE CASCADE,
  parent TEXT NOT NULL,
  parent_name TEXT NOT NULL,
  steps TEXT NOT NULL,
  made_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS described (
  id INTEGER PRIMARY KEY,
  sha256 TEXT NOT NULL REFERENCES images(sha256) ON DELETE CASCADE,
  source TEXT NOT NULL,
  descriptor TEXT NOT NULL,
  imported_at TEXT NOT NULL
);
`;

interface ImageRow {
  sha256: string;
  name: string;
  file: string;
  file_sha256: string;
  virtual_bytes: number;
  stored_bytes: number;
  partition_table: string;
  facts: string | null;
  inspected_at: string | null;
  created_at: string;
}

interface ImportRow {
  source: string;
  format: string;
  member: string | null;
  source_bytes: number;
  imported_at: string;
}

export class ImageCatalog {
  readonly #db: DatabaseSync;

  private constructor(db: DatabaseSync) {
    this.#db = db;
  }

  static open(file: string): ImageCatalog {
    const db = openStickDatabase(file, { access: 'shared' });
    db.exec('PRAGMA foreign_keys = ON');
    db.exec(SCHEMA);
    return new ImageCatalog(db);
  }

  close(): void {
    this.#db.close();
  }

  #image(row: ImageRow): CatalogImage {
    const imports = (
      this.#db
        .prepare('SELECT source, format, member, source_bytes, imported_at FROM imports WHERE sha256 = ? ORDER BY id')
        .all(row.sha256) as unknown as ImportRow[]
    ).map((i) => ({
      source: i.source,
      format: i.format,
      ...(i.member ? { member: i.member } : {}),
      sourceBytes: i.source_bytes,
      importedAt: i.imported_at,
    }));
    const lineage = this.#db.prepare('SELECT parent, parent_name, steps, made_at FROM lineage WHERE sha256 = ?').get(row.sha256) as unknown as
      { parent: string; parent_name: string; steps: string; made_at: string } | undefined;
    const described = (
      this.#db.prepare('SELECT source, descriptor, imported_at FROM described WHERE sha256 = ? ORDER BY id').all(row.sha256) as unknown as Array<{
        source: string;
        descriptor: string;
        imported_at: string;
      }>
    ).map((d) => ({ source: d.source, descriptor: JSON.parse(d.descriptor) as Record<string, unknown>, importedAt: d.imported_at }));
    return {
      name: row.name,
      sha256: row.sha256,
      file: row.file,
      fileSha256: row.file_sha256,
      virtualBytes: row.virtual_bytes,
      storedBytes: row.stored_bytes,
      partitionTable: JSON.parse(row.partition_table) as CatalogImage['partitionTable'],
      ...(row.facts ? { facts: JSON.parse(row.facts) as Record<string, unknown> } : {}),
      ...(row.inspected_at ? { inspectedAt: row.inspected_at } : {}),
      createdAt: row.created_at,
      imports,
      ...(lineage
        ? { lineage: { parent: lineage.parent, parentName: lineage.parent_name, steps: JSON.parse(lineage.steps) as string[], madeAt: lineage.made_at } }
        : {}),
      ...(described.length > 0 ? { described } : {}),
    };
  }

  list(): CatalogImage[] {
    return (this.#db.prepare('SELECT * FROM images ORDER BY name').all() as unknown as ImageRow[]).map((row) => this.#image(row));
  }

  /** By name, full sha256, or a unique sha256 prefix of at least 8 hex digits. */
  find(ref: string): CatalogImage | undefined {
    const byName = this.#db.prepare('SELECT * FROM images WHERE name = ?').get(ref) as unknown as ImageRow | undefined;
    if (byName) return this.#image(byName);
    if (!/^[0-9a-f]{8,64}$/.test(ref)) return undefined;
    const rows = this.#db.prepare('SELECT * FROM images WHERE sha256 LIKE ?').all(`${ref}%`) as unknown as ImageRow[];
    return rows.length === 1 ? this.#image(rows[0]!) : undefined;
  }

  byHash(sha256: string): CatalogImage | undefined {
    const row = this.#db.prepare('SELECT * FROM images WHERE sha256 = ?').get(sha256) as unknown as ImageRow | undefined;
    return row ? this.#image(row) : undefined;
  }

  nameTaken(name: string): boolean {
    return this.#db.prepare('SELECT 1 FROM images WHERE name = ?').get(name) !== undefined;
  }

  #transaction(work: () => void): void {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      work();
      this.#db.exec('COMMIT');
    } catch (error) {
      this.#db.exec('ROLLBACK');
      throw error;
    }
  }

  #addImport(sha256: string, provenance: ImageProvenance): void {
    this.#db
      .prepare('INSERT INTO imports (sha256, source, format, member, source_bytes, imported_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(sha256, provenance.source, provenance.format, provenance.member ?? null, provenance.sourceBytes, provenance.importedAt);
  }

  /** A new image and its first import, in one transaction. */
  add(image: Omit<CatalogImage, 'imports' | 'facts' | 'inspectedAt'>, provenance: ImageProvenance): void {
    this.#transaction(() => {
      this.#db
        .prepare(
          'INSERT INTO images (sha256, name, file, file_sha256, virtual_bytes, stored_bytes, partition_table, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        )
        .run(
          image.sha256,
          image.name,
          image.file,
          image.fileSha256,
          image.virtualBytes,
          image.storedBytes,
          JSON.stringify(image.partitionTable),
          image.createdAt,
        );
      this.#addImport(image.sha256, provenance);
    });
  }

  /** Another import of an image already stored (the same content): provenance only. */
  addImport(sha256: string, provenance: ImageProvenance): void {
    this.#transaction(() => this.#addImport(sha256, provenance));
  }

  /** Where a customized image came from (kept once: the same content made again keeps its first lineage). */
  setLineage(sha256: string, lineage: ImageLineage): void {
    this.#transaction(() => {
      this.#db
        .prepare('INSERT OR IGNORE INTO lineage (sha256, parent, parent_name, steps, made_at) VALUES (?, ?, ?, ?, ?)')
        .run(sha256, lineage.parent, lineage.parentName, JSON.stringify(lineage.steps), lineage.madeAt);
    });
  }

  /** What an import's descriptor said of the machine the image came from (`launcher import`). */
  addDescribed(sha256: string, described: DescribedImport): void {
    this.#transaction(() => {
      this.#db
        .prepare('INSERT INTO described (sha256, source, descriptor, imported_at) VALUES (?, ?, ?, ?)')
        .run(sha256, described.source, JSON.stringify(described.descriptor), described.importedAt);
    });
  }

  setFacts(sha256: string, facts: Record<string, unknown>, at: string): void {
    this.#transaction(() => {
      this.#db.prepare('UPDATE images SET facts = ?, inspected_at = ? WHERE sha256 = ?').run(JSON.stringify(facts), at, sha256);
    });
  }

  remove(sha256: string): void {
    this.#transaction(() => {
      this.#db.prepare('DELETE FROM imports WHERE sha256 = ?').run(sha256);
      this.#db.prepare('DELETE FROM lineage WHERE sha256 = ?').run(sha256);
      this.#db.prepare('DELETE FROM described WHERE sha256 = ?').run(sha256);
      this.#db.prepare('DELETE FROM images WHERE sha256 = ?').run(sha256);
    });
  }
}
