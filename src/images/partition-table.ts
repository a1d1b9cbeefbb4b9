// The partition table of an image, read by the launcher before the image
// enters the catalog: an MBR (its four primary entries) or a GPT (header and
// entry array, both CRCs checked), or none (a file system on the whole disk).
// A table that is there but damaged (bad CRC, a partition past the disk's
// end) refuses the import: such a disk would not boot or mount as it was.
import { crc32 } from 'node:zlib';

export interface TablePartition {
  number: number;
  /** First byte and size in bytes. */
  start: number;
  bytes: number;
  /** GPT: the type GUID (lower case); MBR: the type byte as two hex digits. */
  type: string;
  /** GPT: the partition's own GUID. */
  guid?: string;
  name?: string;
  bootable?: boolean;
}

export interface PartitionTable {
  kind: 'gpt' | 'dos' | 'none';
  /** GPT: the disk GUID; MBR: the disk signature as 8 hex digits. */
  id?: string;
  partitions: TablePartition[];
}

export class PartitionTableError extends Error {}

function guid(bytes: Buffer): string {
  const hex = (b: Buffer) => b.toString('hex');
  const le = (b: Buffer) => Buffer.from(b).reverse().toString('hex');
  return `${le(bytes.subarray(0, 4))}-${le(bytes.subarray(4, 6))}-${le(bytes.subarray(6, 8))}-${hex(bytes.subarray(8, 10))}-${hex(bytes.subarray(10, 16))}`;
}

/**
 * Parses the table from the disk's first bytes (`read(offset, length)` reads
 * the virtual disk). `diskBytes` bounds every partition.
 */
export async function readPartitionTable(read: (offset: number, length: number) => Promise<Buffer>, diskBytes: number): Promise<PartitionTable> {
  const mbr = await read(0, 512);
  if (mbr[510] !== 0x55 || mbr[511] !== 0xaa) return { kind: 'none', partitions: [] };
  const entries = [0, 1, 2, 3].map((i) => mbr.subarray(446 + i * 16, 462 + i * 16));
  if (entries.some((e) => e[4] === 0xee)) return readGpt(read, diskBytes);
  // A boot sector of a file system on the whole disk (FAT, NTFS) also ends in 55 aa: it has a BPB, not a table.
  const fsBoot =
    ['NTFS    ', 'MSDOS5.0', 'mkfs.fat', 'EXFAT   '].includes(mbr.subarray(3, 11).toString('latin1')) || mbr.subarray(82, 87).toString('latin1') === 'FAT32';
  if (fsBoot) return { kind: 'none', partitions: [] };
  const partitions: TablePartition[] = [];
  entries.forEach((entry, i) => {
    const type = entry[4]!;
    const first = entry.readUInt32LE(8);
    const sectors = entry.readUInt32LE(12);
    if (type === 0 || sectors === 0) return;
    if ((first + sectors) * 512 > diskBytes) throw new PartitionTableError(`MBR partition ${i + 1} ends past the end of the disk`);
    partitions.push({ number: i + 1, start: first * 512, bytes: sectors * 512, type: type.toString(16).padStart(2, '0'), bootable: entry[0] === 0x80 });
  });
  return { kind: 'dos', id: mbr.readUInt32LE(440).toString(16).padStart(8, '0'), partitions };
}

async function readGpt(read: (offset: number, length: number) => Promise<Buffer>, diskBytes: number): Promise<PartitionTable> {
  const header = await read(512, 512);
  if (header.subarray(0, 8).toString('latin1') !== 'EFI PART') throw new PartitionTableError('a protective MBR without a GPT header');
  const headerSize = header.readUInt32LE(12);
  if (headerSize < 92 || headerSize > 512) throw new PartitionTableError('the GPT header has an impossible size');
  const copy = Buffer.from(header.subarray(0, headerSize));
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== header.readUInt32LE(16)) throw new PartitionTableError("the GPT header's CRC is wrong");
  const entriesAt = Number(header.readBigUInt64LE(72)) * 512;
  const count = header.readUInt32LE(80);
  const size = header.readUInt32LE(84);
  if (count > 1024 || size < 128 || size > 4096) throw new PartitionTableError('the GPT entry array has an impossible size');
  const array = await read(entriesAt, count * size);
  if (crc32(array) !== header.readUInt32LE(88)) throw new PartitionTableError("the GPT partition entries' CRC is wrong");
  const partitions: TablePartition[] = [];
  for (let i = 0; i < count; i++) {
    const entry = array.subarray(i * size, (i + 1) * size);
    if (entry.subarray(0, 16).every((b) => b === 0)) continue;
    const first = Number(entry.readBigUInt64LE(32));
    const last = Number(entry.readBigUInt64LE(40));
    if (last < first || (last + 1) * 512 > diskBytes) throw new PartitionTableError(`GPT partition ${i + 1} ends past the end of the disk`);
    const name = entry.subarray(56, 128).toString('utf16le').replace(/\0.*$/s, '');
    partitions.push({
      number: i + 1,
      start: first * 512,
      bytes: (last - first + 1) * 512,
      type: guid(entry.subarray(0, 16)),
      guid: guid(entry.subarray(16, 32)),
      ...(name ? { name } : {}),
    });
  }
  return { kind: 'gpt', id: guid(header.subarray(56, 72)), partitions };
}
