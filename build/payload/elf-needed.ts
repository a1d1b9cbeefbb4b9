// A minimal ELF reader: just enough to list what a binary needs at run time
// (DT_NEEDED, PT_INTERP) and to read one named section (a kernel module's
// .modinfo). Reading the file ourselves keeps the build independent of
// binutils and of the host's loader (ldd would resolve against the host's
// libraries, not the guest's).

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_SONAME = 14n;
const DT_RUNPATH = 29n;

export interface ElfDynamicInfo {
  /** DT_NEEDED entries, in file order. */
  needed: string[];
  /** The program interpreter (dynamic loader), absent for libraries and static binaries. */
  interpreter: string | undefined;
  soname: string | undefined;
  runpath: string | undefined;
}

export class ElfFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ElfFormatError';
  }
}

interface Segment {
  type: number;
  offset: number;
  vaddr: bigint;
  filesz: number;
}

interface Section {
  name: string;
  type: number;
  offset: number;
  size: number;
}

/** Field access that hides ELF32/ELF64 and byte-order differences. */
class ElfView {
  readonly buf: Buffer;
  readonly is64: boolean;
  readonly little: boolean;

  constructor(buf: Buffer) {
    if (buf.length < 52 || buf.readUInt32BE(0) !== 0x7f454c46) throw new ElfFormatError('not an ELF file');
    const cls = buf[4];
    const data = buf[5];
    if (cls !== 1 && cls !== 2) throw new ElfFormatError(`unknown ELF class ${cls}`);
    if (data !== 1 && data !== 2) throw new ElfFormatError(`unknown ELF byte order ${data}`);
    this.buf = buf;
    this.is64 = cls === 2;
    this.little = data === 1;
  }

  u16(off: number): number {
    this.check(off, 2);
    return this.little ? this.buf.readUInt16LE(off) : this.buf.readUInt16BE(off);
  }

  u32(off: number): number {
    this.check(off, 4);
    return this.little ? this.buf.readUInt32LE(off) : this.buf.readUInt32BE(off);
  }

  /** An address-sized word (32 or 64 bits). */
  word(off: number): bigint {
    if (!this.is64) return BigInt(this.u32(off));
    this.check(off, 8);
    return this.little ? this.buf.readBigUInt64LE(off) : this.buf.readBigUInt64BE(off);
  }

  offsetWord(off: number): number {
    const value = this.word(off);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ElfFormatError('offset out of range');
    return Number(value);
  }

  cstring(off: number): string {
    if (off < 0 || off >= this.buf.length) throw new ElfFormatError('string offset out of range');
    const end = this.buf.indexOf(0, off);
    return this.buf.toString('utf8', off, end < 0 ? this.buf.length : end);
  }

  private check(off: number, size: number): void {
    if (off < 0 || off + size > this.buf.length) throw new ElfFormatError('truncated ELF file');
  }
}

function segments(elf: ElfView): Segment[] {
  const phoff = elf.offsetWord(elf.is64 ? 32 : 28);
  const phentsize = elf.u16(elf.is64 ? 54 : 42);
  const phnum = elf.u16(elf.is64 ? 56 : 44);
  const result: Segment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    result.push(
      elf.is64
        ? { type: elf.u32(at), offset: elf.offsetWord(at + 8), vaddr: elf.word(at + 16), filesz: elf.offsetWord(at + 32) }
        : { type: elf.u32(at), offset: elf.offsetWord(at + 4), vaddr: elf.word(at + 8), filesz: elf.offsetWord(at + 16) },
    );
  }
  return result;
}

function sections(elf: ElfView): Section[] {
  const shoff = elf.offsetWord(elf.is64 ? 40 : 32);
  const shentsize = elf.u16(elf.is64 ? 58 : 46);
  const shnum = elf.u16(elf.is64 ? 60 : 48);
  const shstrndx = elf.u16(elf.is64 ? 62 : 50);
  if (shoff === 0 || shnum === 0) return [];
  const raw: Array<{ nameOff: number; type: number; offset: number; size: number }> = [];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * shentsize;
    raw.push(
      elf.is64
        ? { nameOff: elf.u32(at), type: elf.u32(at + 4), offset: elf.offsetWord(at + 24), size: elf.offsetWord(at + 32) }
        : { nameOff: elf.u32(at), type: elf.u32(at + 4), offset: elf.offsetWord(at + 16), size: elf.offsetWord(at + 20) },
    );
  }
  const names = raw[shstrndx];
  if (!names) throw new ElfFormatError('section name table index out of range');
  return raw.map((s) => ({ name: elf.cstring(names.offset + s.nameOff), type: s.type, offset: s.offset, size: s.size }));
}

/** Dynamic-section addresses are virtual; map one back to a file offset through the PT_LOAD segments. */
function fileOffset(loads: Segment[], vaddr: bigint): number {
  for (const load of loads) {
    if (vaddr >= load.vaddr && vaddr < load.vaddr + BigInt(load.filesz)) return load.offset + Number(vaddr - load.vaddr);
  }
  throw new ElfFormatError(`address 0x${vaddr.toString(16)} is not in any loaded segment`);
}

export function readElfDynamic(buf: Buffer): ElfDynamicInfo {
  const elf = new ElfView(buf);
  const segs = segments(elf);
  const interpSeg = segs.find((s) => s.type === PT_INTERP);
  const interpreter = interpSeg ? elf.cstring(interpSeg.offset) : undefined;
  const dynamic = segs.find((s) => s.type === PT_DYNAMIC);
  const info: ElfDynamicInfo = { needed: [], interpreter, soname: undefined, runpath: undefined };
  if (!dynamic) return info;

  const entrySize = elf.is64 ? 16 : 8;
  const entries: Array<{ tag: bigint; value: bigint }> = [];
  for (let at = dynamic.offset; at + entrySize <= dynamic.offset + dynamic.filesz; at += entrySize) {
    const tag = elf.word(at);
    if (tag === DT_NULL) break;
    entries.push({ tag, value: elf.word(at + entrySize / 2) });
  }
  const strtab = entries.find((e) => e.tag === DT_STRTAB);
  if (!strtab) throw new ElfFormatError('dynamic section has no string table');
  const strBase = fileOffset(segs.filter((s) => s.type === PT_LOAD), strtab.value);
  const str = (value: bigint) => elf.cstring(strBase + Number(value));
  for (const entry of entries) {
    if (entry.tag === DT_NEEDED) info.needed.push(str(entry.value));
    else if (entry.tag === DT_SONAME) info.soname = str(entry.value);
    else if (entry.tag === DT_RUNPATH) info.runpath = str(entry.value);
  }
  return info;
}

/** The raw bytes of a named section, or undefined when the file has none by that name. */
export function readElfSection(buf: Buffer, name: string): Buffer | undefined {
  const section = sections(new ElfView(buf)).find((s) => s.name === name);
  if (!section) return undefined;
  if (section.offset + section.size > buf.length) throw new ElfFormatError(`section ${name} is truncated`);
  return buf.subarray(section.offset, section.offset + section.size);
}

export function isElf(buf: Buffer): boolean {
  return buf.length >= 4 && buf.readUInt32BE(0) === 0x7f454c46;
}
