// A read-only reader of Windows registry hive files (the "regf" format: a
// 4 KiB base block, then hbins of cells), enough for `image inspect` to read
// SOFTWARE and SYSTEM (windows-hives.ts). Written from the layout hivex
// documents (lib/hivex-internal.h): every offset in a cell is relative to
// the first hbin (file offset 0x1000); a used cell's size is negative.
//
// A hive comes from an image a person hands us, so every offset is checked
// against the file before it is followed, lists are bounded, and anything
// out of place throws a HiveError naming what and where — never a crash nor
// an endless walk.

export class HiveError extends Error {
  override name = 'HiveError';
}

export interface HiveValue {
  name: string;
  /** REG_SZ 1, REG_EXPAND_SZ 2, REG_BINARY 3, REG_DWORD 4, REG_DWORD_BIG_ENDIAN 5, REG_LINK 6, REG_MULTI_SZ 7, REG_QWORD 11. */
  type: number;
  data: Buffer;
}

export interface HiveKey {
  name: string;
  /** The nk cell's offset (relative to the first hbin). */
  offset: number;
}

const BASE = 0x1000;
/** hivex's own sanity limits: more than this is a damaged or hostile hive. */
const MAX_SUBKEYS = 70_000;
const MAX_VALUES = 110_000;
const MAX_VALUE_BYTES = 8_000_000;
/** A big-data (db) segment holds at most this many bytes. */
const DB_SEGMENT = 16_344;

export class Hive {
  private readonly bytes: Buffer;
  private readonly end: number;
  readonly minorVersion: number;
  private readonly rootOffset: number;

  /** Checks the base block (signature, version, checksum) and the first hbin; throws HiveError. */
  constructor(bytes: Buffer) {
    this.bytes = bytes;
    if (bytes.length < BASE + 32) throw new HiveError(`too short for a registry hive (${bytes.length} bytes)`);
    if (bytes.toString('latin1', 0, 4) !== 'regf') throw new HiveError('no "regf" signature: not a registry hive');
    const major = bytes.readUInt32LE(0x14);
    this.minorVersion = bytes.readUInt32LE(0x18);
    if (major !== 1) throw new HiveError(`registry hive version ${major}.${this.minorVersion} (expected 1.x)`);
    let sum = 0;
    for (let i = 0; i < 0x1fc; i += 4) sum ^= bytes.readUInt32LE(i);
    if (sum >>> 0 !== bytes.readUInt32LE(0x1fc)) throw new HiveError('bad checksum in the base block');
    // The base block says where the hbins end; a truncated file ends earlier.
    this.end = Math.min(BASE + bytes.readUInt32LE(0x28), bytes.length);
    if (bytes.toString('latin1', BASE, BASE + 4) !== 'hbin') throw new HiveError('no hbin at 0x1000');
    this.rootOffset = bytes.readUInt32LE(0x24);
    if (this.cellId(this.rootOffset) !== 'nk') throw new HiveError(`the root key at 0x${this.rootOffset.toString(16)} is not a key`);
  }

  root(): HiveKey {
    return { name: this.keyName(this.rootOffset), offset: this.rootOffset };
  }

  /** A used cell's content (after its size), bounds-checked. */
  private cell(offset: number, what: string): Buffer {
    const at = BASE + offset;
    if (offset % 4 !== 0 || at < BASE || at + 4 > this.end) throw new HiveError(`${what} at 0x${offset.toString(16)} is outside the hive`);
    const size = this.bytes.readInt32LE(at);
    if (size >= 0) throw new HiveError(`${what} at 0x${offset.toString(16)} is a free cell`);
    if (at - size > this.end || -size < 8) throw new HiveError(`${what} at 0x${offset.toString(16)} has a bad size (${-size})`);
    return this.bytes.subarray(at + 4, at - size);
  }

  private cellId(offset: number): string {
    return this.cell(offset, 'cell').toString('latin1', 0, 2);
  }

  private nk(offset: number): Buffer {
    const nk = this.cell(offset, 'key');
    if (nk.toString('latin1', 0, 2) !== 'nk' || nk.length < 76) throw new HiveError(`the key at 0x${offset.toString(16)} is not an nk cell`);
    return nk;
  }

  private keyName(offset: number): string {
    const nk = this.nk(offset);
    const length = nk.readUInt16LE(72);
    if (76 + length > nk.length) throw new HiveError(`the key at 0x${offset.toString(16)} has a name longer than its cell`);
    const raw = nk.subarray(76, 76 + length);
    // Flag 0x20: the name is Latin-1 ("compressed"), else UTF-16LE.
    return nk.readUInt16LE(2) & 0x20 ? raw.toString('latin1') : raw.toString('utf16le');
  }

  subkeys(key: HiveKey): HiveKey[] {
    const nk = this.nk(key.offset);
    const count = nk.readUInt32LE(20);
    if (count === 0) return [];
    if (count > MAX_SUBKEYS) throw new HiveError(`${key.name}: ${count} subkeys is more than a hive holds`);
    const offsets = this.subkeyList(nk.readUInt32LE(28), true);
    if (offsets.length !== count) throw new HiveError(`${key.name}: its subkey list holds ${offsets.length} keys, the key says ${count}`);
    return offsets.map((offset) => ({ name: this.keyName(offset), offset }));
  }

  /** lf/lh (offset + hash), li (offsets), ri (a list of those lists: one level only). */
  private subkeyList(offset: number, indexAllowed: boolean): number[] {
    const list = this.cell(offset, 'subkey list');
    const id = list.toString('latin1', 0, 2);
    const count = list.readUInt16LE(2);
    const width = id === 'lf' || id === 'lh' ? 8 : id === 'li' || id === 'ri' ? 4 : 0;
    if (width === 0) throw new HiveError(`the subkey list at 0x${offset.toString(16)} is "${id}", not lf, lh, li or ri`);
    if (4 + count * width > list.length) throw new HiveError(`the subkey list at 0x${offset.toString(16)} is longer than its cell`);
    const entries = Array.from({ length: count }, (_, i) => list.readUInt32LE(4 + i * width));
    if (id !== 'ri') return entries;
    if (!indexAllowed) throw new HiveError(`the index at 0x${offset.toString(16)} points at another index`);
    return entries.flatMap((sub) => this.subkeyList(sub, false));
  }

  /** A subkey by name (case-insensitive, as Windows compares them). */
  child(key: HiveKey, name: string): HiveKey | null {
    const wanted = name.toLowerCase();
    return this.subkeys(key).find((k) => k.name.toLowerCase() === wanted) ?? null;
  }

  /** A key by its path from the root (backslashes), or null when any part is missing. */
  key(path: string): HiveKey | null {
    let key: HiveKey | null = this.root();
    for (const part of path.split('\\').filter(Boolean)) {
      key = this.child(key, part);
      if (!key) return null;
    }
    return key;
  }

  values(key: HiveKey): HiveValue[] {
    const nk = this.nk(key.offset);
    const count = nk.readUInt32LE(36);
    if (count === 0) return [];
    if (count > MAX_VALUES) throw new HiveError(`${key.name}: ${count} values is more than a hive holds`);
    const list = this.cell(nk.readUInt32LE(40), 'value list');
    if (count * 4 > list.length) throw new HiveError(`${key.name}: its value list is shorter than its ${count} values`);
    return Array.from({ length: count }, (_, i) => this.value(list.readUInt32LE(i * 4)));
  }

  private value(offset: number): HiveValue {
    const vk = this.cell(offset, 'value');
    if (vk.toString('latin1', 0, 2) !== 'vk' || vk.length < 20) throw new HiveError(`the value at 0x${offset.toString(16)} is not a vk cell`);
    const nameLength = vk.readUInt16LE(2);
    if (20 + nameLength > vk.length) throw new HiveError(`the value at 0x${offset.toString(16)} has a name longer than its cell`);
    const rawName = vk.subarray(20, 20 + nameLength);
    const name = vk.readUInt16LE(16) & 1 ? rawName.toString('latin1') : rawName.toString('utf16le');
    const length = vk.readUInt32LE(4);
    const type = vk.readUInt32LE(12);
    // Top bit: up to 4 bytes held in the data-offset field itself.
    if (length & 0x80000000) return { name, type, data: Buffer.from(vk.subarray(8, 8 + Math.min(length & 0x7fffffff, 4))) };
    if (length > MAX_VALUE_BYTES) throw new HiveError(`the value ${name} is ${length} bytes, more than a hive holds`);
    const dataOffset = vk.readUInt32LE(8);
    const cell = this.cell(dataOffset, `the data of ${name}`);
    if (length > DB_SEGMENT && this.minorVersion >= 4 && cell.toString('latin1', 0, 2) === 'db') return { name, type, data: this.bigData(cell, length, name) };
    if (length > cell.length) throw new HiveError(`the value ${name} says ${length} bytes, its cell holds ${cell.length}`);
    return { name, type, data: Buffer.from(cell.subarray(0, length)) };
  }

  /** A db cell: a list of segments, each up to 16344 bytes, concatenated. */
  private bigData(db: Buffer, length: number, name: string): Buffer {
    const count = db.readUInt16LE(2);
    const list = this.cell(db.readUInt32LE(4), `the segment list of ${name}`);
    if (count * 4 > list.length) throw new HiveError(`the value ${name}: its segment list is shorter than its ${count} segments`);
    const parts: Buffer[] = [];
    let have = 0;
    for (let i = 0; i < count && have < length; i++) {
      const segment = this.cell(list.readUInt32LE(i * 4), `a segment of ${name}`);
      const take = segment.subarray(0, Math.min(DB_SEGMENT, segment.length, length - have));
      parts.push(take);
      have += take.length;
    }
    if (have < length) throw new HiveError(`the value ${name} says ${length} bytes, its segments hold ${have}`);
    return Buffer.concat(parts);
  }

  /** A value by name (case-insensitive; '' is the key's default value). */
  get(key: HiveKey, name: string): HiveValue | null {
    const wanted = name.toLowerCase();
    return this.values(key).find((v) => v.name.toLowerCase() === wanted) ?? null;
  }
}

/** A string value (REG_SZ, REG_EXPAND_SZ, REG_LINK) without its trailing NULs; null for other types. */
export function stringOf(value: HiveValue | null): string | null {
  if (!value || ![1, 2, 6].includes(value.type)) return null;
  const text = value.data.subarray(0, value.data.length - (value.data.length % 2)).toString('utf16le');
  const nul = text.indexOf('\0');
  return nul >= 0 ? text.slice(0, nul) : text;
}

/** A REG_DWORD (little or big endian) or REG_QWORD as a number; null for other types or short data. */
export function numberOf(value: HiveValue | null): number | null {
  if (!value) return null;
  if (value.type === 4 && value.data.length >= 4) return value.data.readUInt32LE(0);
  if (value.type === 5 && value.data.length >= 4) return value.data.readUInt32BE(0);
  if (value.type === 11 && value.data.length >= 8) return Number(value.data.readBigUInt64LE(0));
  return null;
}
