// A small writer of Windows registry hives (regf), for the tests only: it
// makes the SOFTWARE and SYSTEM hives of the Windows-like fixture
// (test/images/windows-image.ts) so the reader (src/images/regf.ts) is
// tested on files it did not write itself, and hivexget/hivexsh (Debian's
// libhivex-bin) check them independently. It uses every list form the
// reader follows: lh lists, an ri index of li lists for keys with many
// subkeys, inline values, plain data cells and db (big data) cells.

export interface RegValue {
  name: string;
  type: number;
  data: Buffer;
}

export interface RegKey {
  name: string;
  values?: RegValue[];
  subkeys?: RegKey[];
}

export const sz = (name: string, text: string): RegValue => ({ name, type: 1, data: Buffer.from(`${text}\0`, 'utf16le') });
export const expandSz = (name: string, text: string): RegValue => ({ name, type: 2, data: Buffer.from(`${text}\0`, 'utf16le') });
export const dword = (name: string, n: number): RegValue => {
  const data = Buffer.alloc(4);
  data.writeUInt32LE(n >>> 0);
  return { name, type: 4, data };
};
export const binary = (name: string, data: Buffer): RegValue => ({ name, type: 3, data });

/** Keys with more subkeys than this get an ri index of li lists (as Windows does for big keys). */
const LIST_CHUNK = 8;
const DB_SEGMENT = 16_344;

class Cells {
  // Fixed (never reallocated): cell views handed out stay valid while more cells are made.
  private readonly buffer = Buffer.alloc(8 << 20);
  /** Next free offset, relative to the first hbin; cells start after the hbin's 32-byte header. */
  private next = 0x20;

  alloc(contentBytes: number): number {
    const size = (4 + contentBytes + 7) & ~7;
    if (this.next + size + 16 > this.buffer.length) throw new Error('the test hive is larger than 8 MiB');
    const offset = this.next;
    this.buffer.writeInt32LE(-size, offset);
    this.next += size;
    return offset;
  }

  /** The cell's content (after its size field), to write into. */
  at(offset: number, bytes: number): Buffer {
    return this.buffer.subarray(offset + 4, offset + 4 + bytes);
  }

  /** One hbin holding every cell, the rest of it a free cell. */
  hbin(): Buffer {
    const pageSize = Math.ceil((this.next + 8) / 0x1000) * 0x1000;
    const page = Buffer.alloc(pageSize);
    this.buffer.copy(page, 0, 0, this.next);
    page.write('hbin', 0, 'latin1');
    page.writeUInt32LE(0, 4);
    page.writeUInt32LE(pageSize, 8);
    page.writeInt32LE(pageSize - this.next, this.next);
    return page;
  }
}

/** lh's hash: the name upper-cased, h = h * 37 + char. */
function lhHash(name: string): number {
  let h = 0;
  for (const c of name.toUpperCase()) h = (Math.imul(h, 37) + c.charCodeAt(0)) >>> 0;
  return h;
}

function writeValue(cells: Cells, value: RegValue): number {
  const name = Buffer.from(value.name, 'latin1');
  const vk = cells.alloc(20 + name.length);
  const body = cells.at(vk, 20 + name.length);
  body.write('vk', 0, 'latin1');
  body.writeUInt16LE(name.length, 2);
  body.writeUInt32LE(value.type, 12);
  body.writeUInt16LE(value.name ? 1 : 0, 16);
  name.copy(body, 20);
  const length = value.data.length;
  if (length <= 4) {
    body.writeUInt32LE((length | 0x80000000) >>> 0, 4);
    value.data.copy(body, 8);
  } else if (length <= DB_SEGMENT) {
    body.writeUInt32LE(length, 4);
    const data = cells.alloc(length);
    value.data.copy(cells.at(data, length));
    body.writeUInt32LE(data, 8);
  } else {
    body.writeUInt32LE(length, 4);
    const segments: number[] = [];
    for (let i = 0; i < length; i += DB_SEGMENT) {
      const part = value.data.subarray(i, i + DB_SEGMENT);
      const segment = cells.alloc(part.length);
      part.copy(cells.at(segment, part.length));
      segments.push(segment);
    }
    const list = cells.alloc(segments.length * 4);
    segments.forEach((s, i) => cells.at(list, segments.length * 4).writeUInt32LE(s, i * 4));
    const db = cells.alloc(12);
    const dbBody = cells.at(db, 12);
    dbBody.write('db', 0, 'latin1');
    dbBody.writeUInt16LE(segments.length, 2);
    dbBody.writeUInt32LE(list, 4);
    body.writeUInt32LE(db, 8);
  }
  return vk;
}

function writeList(cells: Cells, id: 'lh' | 'li', children: { name: string; offset: number }[]): number {
  const width = id === 'lh' ? 8 : 4;
  const list = cells.alloc(4 + children.length * width);
  const body = cells.at(list, 4 + children.length * width);
  body.write(id, 0, 'latin1');
  body.writeUInt16LE(children.length, 2);
  children.forEach((child, i) => {
    body.writeUInt32LE(child.offset, 4 + i * width);
    if (id === 'lh') body.writeUInt32LE(lhHash(child.name), 8 + i * width);
  });
  return list;
}

function writeKey(cells: Cells, key: RegKey, parent: number, root: boolean): number {
  const name = Buffer.from(key.name, 'latin1');
  const nk = cells.alloc(76 + name.length);
  const body = cells.at(nk, 76 + name.length);
  body.write('nk', 0, 'latin1');
  // 0x20: the name is Latin-1; the root also has HiveEntry (0x04) and NoDelete (0x08).
  body.writeUInt16LE(root ? 0x2c : 0x20, 2);
  body.writeUInt32LE(parent, 16);
  const subkeys = [...(key.subkeys ?? [])].sort((a, b) => (a.name.toUpperCase() < b.name.toUpperCase() ? -1 : 1));
  const children = subkeys.map((sub) => ({ name: sub.name, offset: writeKey(cells, sub, nk, false) }));
  body.writeUInt32LE(children.length, 20);
  body.writeUInt32LE(0xffffffff, 32);
  if (children.length === 0) body.writeUInt32LE(0xffffffff, 28);
  else if (children.length <= LIST_CHUNK) body.writeUInt32LE(writeList(cells, 'lh', children), 28);
  else {
    const lists: { name: string; offset: number }[] = [];
    for (let i = 0; i < children.length; i += LIST_CHUNK) lists.push({ name: '', offset: writeList(cells, 'li', children.slice(i, i + LIST_CHUNK)) });
    const ri = cells.alloc(4 + lists.length * 4);
    const riBody = cells.at(ri, 4 + lists.length * 4);
    riBody.write('ri', 0, 'latin1');
    riBody.writeUInt16LE(lists.length, 2);
    lists.forEach((l, i) => riBody.writeUInt32LE(l.offset, 4 + i * 4));
    body.writeUInt32LE(ri, 28);
  }
  const values = (key.values ?? []).map((v) => writeValue(cells, v));
  body.writeUInt32LE(values.length, 36);
  if (values.length === 0) body.writeUInt32LE(0xffffffff, 40);
  else {
    const list = cells.alloc(values.length * 4);
    values.forEach((v, i) => cells.at(list, values.length * 4).writeUInt32LE(v, i * 4));
    body.writeUInt32LE(list, 40);
  }
  body.writeUInt32LE(0xffffffff, 44); // no security cell: the reader and hivex do not need one
  body.writeUInt32LE(0xffffffff, 48);
  body.writeUInt16LE(name.length, 72);
  name.copy(body, 76);
  return nk;
}

/** The hive file: the base block (checksummed), then one hbin with every cell. */
export function writeHive(root: RegKey, fileName: string): Buffer {
  const cells = new Cells();
  const rootOffset = writeKey(cells, root, 0xffffffff, true);
  const hbin = cells.hbin();
  const base = Buffer.alloc(0x1000);
  base.write('regf', 0, 'latin1');
  base.writeUInt32LE(1, 4);
  base.writeUInt32LE(1, 8);
  base.writeUInt32LE(1, 0x14);
  base.writeUInt32LE(5, 0x18);
  base.writeUInt32LE(0, 0x1c);
  base.writeUInt32LE(1, 0x20);
  base.writeUInt32LE(rootOffset, 0x24);
  base.writeUInt32LE(hbin.length, 0x28);
  base.writeUInt32LE(1, 0x2c);
  base.write(fileName.slice(0, 31), 0x30, 'utf16le');
  let sum = 0;
  for (let i = 0; i < 0x1fc; i += 4) sum ^= base.readUInt32LE(i);
  base.writeUInt32LE(sum >>> 0, 0x1fc);
  return Buffer.concat([base, hbin]);
}
