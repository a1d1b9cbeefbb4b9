// An OVA is a tar (ustar) holding an OVF descriptor and the disks it names.
// The disks are not extracted: qemu-img reads each one in place, through a
// raw node with the member's offset and size inside the tar (a `json:`
// filename), so an import needs no scratch space for the unpacked archive.
import { open } from 'node:fs/promises';
import { ImageError } from '../errors.ts';
import { type DiskFormat, formatOfBytes, looksLikeRawDisk } from './disk-format.ts';

export interface TarMember {
  name: string;
  offset: number;
  bytes: number;
}

/** The regular files of a ustar archive: name, where the data starts, size. */
export function tarMembers(read: (offset: number, length: number) => Buffer, total: number): TarMember[] {
  const members: TarMember[] = [];
  let at = 0;
  let longName: string | undefined;
  while (at + 512 <= total) {
    const header = read(at, 512);
    if (header.every((byte) => byte === 0)) break;
    if (header.subarray(257, 262).toString('latin1') !== 'ustar') throw new Error(`no tar header at ${at}`);
    const field = (start: number, length: number) =>
      header
        .subarray(start, start + length)
        .toString('utf8')
        .replace(/\0.*$/s, '');
    const bytes = parseInt(field(124, 12).trim() || '0', 8);
    const type = String.fromCharCode(header[156] || 0x30);
    const prefix = field(345, 155);
    const name = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = undefined;
    const data = at + 512;
    if (type === 'L') longName = read(data, bytes).toString('utf8').replace(/\0.*$/s, '');
    else if (type === '0' || type === '\0') members.push({ name, offset: data, bytes });
    at = data + Math.ceil(bytes / 512) * 512;
  }
  return members;
}

/** The disk files an OVF names, in its order (References/File, used by a Disk). */
export function ovfDiskFiles(ovf: string): string[] {
  const files = new Map<string, string>();
  for (const match of ovf.matchAll(/<(?:\w+:)?File\b([^>]*)>/g)) {
    const id = /\bovf:id="([^"]+)"/.exec(match[1]!)?.[1];
    const href = /\bovf:href="([^"]+)"/.exec(match[1]!)?.[1];
    if (id && href) files.set(id, href);
  }
  const disks: string[] = [];
  for (const match of ovf.matchAll(/<(?:\w+:)?Disk\b([^>]*)>/g)) {
    const ref = /\bovf:fileRef="([^"]+)"/.exec(match[1]!)?.[1];
    if (ref && files.has(ref)) disks.push(files.get(ref)!);
  }
  return disks;
}

export interface OvaDisk {
  member: string;
  format: DiskFormat;
  /** A qemu-img filename that reads the member in place. */
  spec: string;
  bytes: number;
}

export interface OvaContents {
  ovf: string;
  /** The descriptor's text (its first 4 MiB), for what it says of the machine (src/export/import-descriptor.ts). */
  ovfText: string;
  /** The OVF's virtual system name, when it has one. */
  system?: string;
  disks: OvaDisk[];
}

export async function readOva(path: string): Promise<OvaContents> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const readAt = async (offset: number, length: number) => {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, offset);
      return buffer.subarray(0, bytesRead);
    };
    // Walk the headers (each read on demand: members are skipped, not read).
    const headers = new Map<number, Buffer>();
    let at = 0;
    while (at + 512 <= size) {
      const header = await readAt(at, 512);
      headers.set(at, header);
      if (header.every((byte) => byte === 0)) break;
      const bytes = parseInt(header.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
      if (String.fromCharCode(header[156] || 0x30) === 'L') headers.set(at + 512, await readAt(at + 512, Math.ceil(bytes / 512) * 512));
      if (!Number.isFinite(bytes)) break;
      at += 512 + Math.ceil(bytes / 512) * 512;
    }
    let members: TarMember[];
    try {
      members = tarMembers((offset, length) => {
        const cached = headers.get(offset);
        return cached ? cached.subarray(0, length) : Buffer.alloc(length);
      }, size);
    } catch (cause) {
      throw new ImageError('imageFormat', `${path} is not a whole OVA: its tar is damaged`, { cause, details: { reason: 'corrupt' } });
    }
    const ovfMember = members.find((m) => m.name.toLowerCase().endsWith('.ovf'));
    if (!ovfMember) throw new ImageError('imageFormat', `${path} is a tar without an OVF descriptor, not an OVA`, { details: { reason: 'unknown-format' } });
    const ovf = (await readAt(ovfMember.offset, Math.min(ovfMember.bytes, 4 << 20))).toString('utf8');
    const disks: OvaDisk[] = [];
    for (const href of ovfDiskFiles(ovf)) {
      const member = members.find((m) => m.name === href || m.name.endsWith(`/${href}`));
      if (!member) throw new ImageError('imageFormat', `${path}: its OVF names ${href}, which is not in the archive`, { details: { reason: 'corrupt' } });
      const head = await readAt(member.offset, Math.min(member.bytes, 0x10100));
      const tail = member.bytes >= 512 ? await readAt(member.offset + member.bytes - 512, 512) : Buffer.alloc(0);
      const found = formatOfBytes(head, tail);
      const format = found && found !== 'ova' ? found : looksLikeRawDisk(head) ? 'raw' : undefined;
      if (!format) throw new ImageError('imageFormat', `${path}: ${href} is not a disk image pocketvm knows`, { details: { reason: 'unknown-format' } });
      const file = { driver: 'raw', offset: member.offset, size: member.bytes, file: { driver: 'file', filename: path } };
      disks.push({ member: member.name, format, spec: `json:${JSON.stringify({ driver: format, file })}`, bytes: member.bytes });
    }
    if (disks.length === 0) throw new ImageError('imageFormat', `${path}: its OVF names no disk`, { details: { reason: 'unknown-format' } });
    const system = /<(?:\w+:)?VirtualSystem\b[^>]*\bovf:id="([^"]+)"/.exec(ovf)?.[1];
    return { ovf: ovfMember.name, ovfText: ovf, ...(system ? { system } : {}), disks };
  } finally {
    await handle.close();
  }
}
