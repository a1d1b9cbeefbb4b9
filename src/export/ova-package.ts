// An OVA: a ustar archive of the OVF descriptor first, then its manifest
// (SHA256 of every other member, the form VMware's ovftool and VirtualBox
// both check), then the disks, in the order OVF 1.0 requires (descriptor
// first). Written to FILE.partial and renamed, so a failed export leaves no
// half archive under the name asked for.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { basename } from 'node:path';

export interface OvaMember {
  name: string;
  /** In memory (descriptor, manifest), or a file streamed in. */
  data: Buffer | { path: string };
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

export function ustarHeader(name: string, bytes: number, mtime: number): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`internal: the OVA member name ${name} is longer than 100 bytes`);
  const header = Buffer.alloc(512);
  header.write(name, 0, 'utf8');
  header.write(octal(0o644, 8), 100, 'latin1');
  header.write(octal(0, 8), 108, 'latin1');
  header.write(octal(0, 8), 116, 'latin1');
  header.write(octal(bytes, 12), 124, 'latin1');
  header.write(octal(mtime, 12), 136, 'latin1');
  header.write('        ', 148, 'latin1');
  header.write('0', 156, 'latin1');
  header.write('ustar\0', 257, 'latin1');
  header.write('00', 263, 'latin1');
  const sum = header.reduce((total, byte) => total + byte, 0);
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return header;
}

export async function sha256Of(data: Buffer | { path: string }): Promise<string> {
  const hash = createHash('sha256');
  if (Buffer.isBuffer(data)) return hash.update(data).digest('hex');
  for await (const chunk of createReadStream(data.path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The `.mf` of an OVF package: one `SHA256(name)= hex` line per member. */
export async function ovfManifest(members: OvaMember[]): Promise<Buffer> {
  const lines: string[] = [];
  for (const member of members) lines.push(`SHA256(${member.name})= ${await sha256Of(member.data)}`);
  return Buffer.from(`${lines.join('\n')}\n`);
}

export async function writeOva(file: string, members: OvaMember[]): Promise<number> {
  const partial = `${file}.partial`;
  const out = await open(partial, 'wx');
  const mtime = Math.floor(Date.now() / 1000);
  let at = 0;
  const put = async (buffer: Buffer) => {
    await out.write(buffer, 0, buffer.length, at);
    at += buffer.length;
  };
  try {
    for (const member of members) {
      const bytes = Buffer.isBuffer(member.data) ? member.data.length : (await stat(member.data.path)).size;
      await put(ustarHeader(basename(member.name), bytes, mtime));
      if (Buffer.isBuffer(member.data)) await put(member.data);
      else for await (const chunk of createReadStream(member.data.path, { highWaterMark: 1 << 20 })) await put(chunk as Buffer);
      if (bytes % 512) await put(Buffer.alloc(512 - (bytes % 512)));
    }
    await put(Buffer.alloc(1024));
    await out.sync();
  } catch (error) {
    await out.close();
    await rm(partial, { force: true });
    throw error;
  }
  await out.close();
  await rename(partial, file);
  return at;
}
