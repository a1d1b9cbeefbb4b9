// 9P2000.L wire format: every message is size[4] type[1] tag[2] body, all
// integers little-endian, strings as len[2] + UTF-8 bytes, qids as
// type[1] version[4] path[8]. Messages are described once, as field lists
// (schema below), and one generic reader/writer handles both directions, so
// the server (T in, R out) and the tests' client (T out, R in) share it.
//
// Decoding never reads past the frame: every read is bounds-checked and a
// short or inconsistent body throws DecodeError (with the errno to answer).
// Trailing bytes after the last field are ignored, as Linux and QEMU do
// (newer kernels append fields, e.g. Tfsync's datasync).

import { isUtf8 } from 'node:buffer';
import { Errno } from './backend.ts';
import type { Qid } from './backend.ts';

export const HEADER_SIZE = 7;
export const NOTAG = 0xffff;
export const NOFID = 0xffffffff;
/** Most names a Twalk may carry (MAXWELEM). */
export const MAX_WALK_NAMES = 16;
/** Rread/Rreaddir header: size[4] type[1] tag[2] count[4]. */
export const IO_HEADER_SIZE = 11;
/** Twrite header: size[4] type[1] tag[2] fid[4] offset[8] count[4]. */
export const TWRITE_HEADER_SIZE = 23;

export class DecodeError extends Error {
  readonly errno: number;
  constructor(message: string, errno: number = Errno.EPROTO) {
    super(message);
    this.name = 'DecodeError';
    this.errno = errno;
  }
}

type Kind = 'u8' | 'u16' | 'u32' | 'u32opt' | 'u64' | 'u64b' | 'str' | 'qid' | 'wnames' | 'qids' | 'data';

interface KindTypes {
  u8: number;
  u16: number;
  u32: number;
  /** A trailing u32 that older peers omit (decodes as 0 when absent). */
  u32opt: number;
  /** u64 as a JS number (exact up to 2^53; larger values are approximated). */
  u64: number;
  u64b: bigint;
  str: string;
  qid: Qid;
  wnames: string[];
  qids: Qid[];
  /** count[4] + bytes. */
  data: Uint8Array;
}

type Field = readonly [string, Kind];

const qidField = ['qid', 'qid'] as const;

/** Every 9P2000.L message this implementation knows: [id, fields]. */
export const schema = {
  Tlerror: [6, []],
  Rlerror: [7, [['ecode', 'u32']]],
  Tstatfs: [8, [['fid', 'u32']]],
  Rstatfs: [
    9,
    [
      ['fsType', 'u32'],
      ['bsize', 'u32'],
      ['blocks', 'u64'],
      ['bfree', 'u64'],
      ['bavail', 'u64'],
      ['files', 'u64'],
      ['ffree', 'u64'],
      ['fsid', 'u64b'],
      ['namelen', 'u32'],
    ],
  ],
  Tlopen: [
    12,
    [
      ['fid', 'u32'],
      ['flags', 'u32'],
    ],
  ],
  Rlopen: [13, [qidField, ['iounit', 'u32']]],
  Tlcreate: [
    14,
    [
      ['fid', 'u32'],
      ['name', 'str'],
      ['flags', 'u32'],
      ['mode', 'u32'],
      ['gid', 'u32'],
    ],
  ],
  Rlcreate: [15, [qidField, ['iounit', 'u32']]],
  Tsymlink: [
    16,
    [
      ['fid', 'u32'],
      ['name', 'str'],
      ['symtgt', 'str'],
      ['gid', 'u32'],
    ],
  ],
  Rsymlink: [17, [qidField]],
  Tmknod: [
    18,
    [
      ['dfid', 'u32'],
      ['name', 'str'],
      ['mode', 'u32'],
      ['major', 'u32'],
      ['minor', 'u32'],
      ['gid', 'u32'],
    ],
  ],
  Rmknod: [19, [qidField]],
  Trename: [
    20,
    [
      ['fid', 'u32'],
      ['dfid', 'u32'],
      ['name', 'str'],
    ],
  ],
  Rrename: [21, []],
  Treadlink: [22, [['fid', 'u32']]],
  Rreadlink: [23, [['target', 'str']]],
  Tgetattr: [
    24,
    [
      ['fid', 'u32'],
      ['requestMask', 'u64'],
    ],
  ],
  Rgetattr: [
    25,
    [
      ['valid', 'u64'],
      qidField,
      ['mode', 'u32'],
      ['uid', 'u32'],
      ['gid', 'u32'],
      ['nlink', 'u64'],
      ['rdev', 'u64'],
      ['size', 'u64'],
      ['blksize', 'u64'],
      ['blocks', 'u64'],
      ['atimeSec', 'u64'],
      ['atimeNsec', 'u64'],
      ['mtimeSec', 'u64'],
      ['mtimeNsec', 'u64'],
      ['ctimeSec', 'u64'],
      ['ctimeNsec', 'u64'],
      ['btimeSec', 'u64'],
      ['btimeNsec', 'u64'],
      ['gen', 'u64'],
      ['dataVersion', 'u64'],
    ],
  ],
  Tsetattr: [
    26,
    [
      ['fid', 'u32'],
      ['valid', 'u32'],
      ['mode', 'u32'],
      ['uid', 'u32'],
      ['gid', 'u32'],
      ['size', 'u64'],
      ['atimeSec', 'u64'],
      ['atimeNsec', 'u64'],
      ['mtimeSec', 'u64'],
      ['mtimeNsec', 'u64'],
    ],
  ],
  Rsetattr: [27, []],
  Txattrwalk: [
    30,
    [
      ['fid', 'u32'],
      ['newfid', 'u32'],
      ['name', 'str'],
    ],
  ],
  Rxattrwalk: [31, [['size', 'u64']]],
  Txattrcreate: [
    32,
    [
      ['fid', 'u32'],
      ['name', 'str'],
      ['attrSize', 'u64'],
      ['flags', 'u32'],
    ],
  ],
  Rxattrcreate: [33, []],
  Treaddir: [
    40,
    [
      ['fid', 'u32'],
      ['offset', 'u64'],
      ['count', 'u32'],
    ],
  ],
  Rreaddir: [41, [['data', 'data']]],
  Tfsync: [
    50,
    [
      ['fid', 'u32'],
      ['datasync', 'u32opt'],
    ],
  ],
  Rfsync: [51, []],
  Tlock: [
    52,
    [
      ['fid', 'u32'],
      ['lockType', 'u8'],
      ['flags', 'u32'],
      ['start', 'u64'],
      ['length', 'u64'],
      ['procId', 'u32'],
      ['clientId', 'str'],
    ],
  ],
  Rlock: [53, [['status', 'u8']]],
  Tgetlock: [
    54,
    [
      ['fid', 'u32'],
      ['lockType', 'u8'],
      ['start', 'u64'],
      ['length', 'u64'],
      ['procId', 'u32'],
      ['clientId', 'str'],
    ],
  ],
  Rgetlock: [
    55,
    [
      ['lockType', 'u8'],
      ['start', 'u64'],
      ['length', 'u64'],
      ['procId', 'u32'],
      ['clientId', 'str'],
    ],
  ],
  Tlink: [
    70,
    [
      ['dfid', 'u32'],
      ['fid', 'u32'],
      ['name', 'str'],
    ],
  ],
  Rlink: [71, []],
  Tmkdir: [
    72,
    [
      ['dfid', 'u32'],
      ['name', 'str'],
      ['mode', 'u32'],
      ['gid', 'u32'],
    ],
  ],
  Rmkdir: [73, [qidField]],
  Trenameat: [
    74,
    [
      ['olddirfid', 'u32'],
      ['oldname', 'str'],
      ['newdirfid', 'u32'],
      ['newname', 'str'],
    ],
  ],
  Rrenameat: [75, []],
  Tunlinkat: [
    76,
    [
      ['dirfid', 'u32'],
      ['name', 'str'],
      ['flags', 'u32'],
    ],
  ],
  Runlinkat: [77, []],
  Tversion: [
    100,
    [
      ['msize', 'u32'],
      ['version', 'str'],
    ],
  ],
  Rversion: [
    101,
    [
      ['msize', 'u32'],
      ['version', 'str'],
    ],
  ],
  Tauth: [
    102,
    [
      ['afid', 'u32'],
      ['uname', 'str'],
      ['aname', 'str'],
      ['nUname', 'u32'],
    ],
  ],
  Rauth: [103, [['aqid', 'qid']]],
  Tattach: [
    104,
    [
      ['fid', 'u32'],
      ['afid', 'u32'],
      ['uname', 'str'],
      ['aname', 'str'],
      ['nUname', 'u32'],
    ],
  ],
  Rattach: [105, [qidField]],
  Tflush: [108, [['oldtag', 'u16']]],
  Rflush: [109, []],
  Twalk: [
    110,
    [
      ['fid', 'u32'],
      ['newfid', 'u32'],
      ['wnames', 'wnames'],
    ],
  ],
  Rwalk: [111, [['wqids', 'qids']]],
  Tread: [
    116,
    [
      ['fid', 'u32'],
      ['offset', 'u64'],
      ['count', 'u32'],
    ],
  ],
  Rread: [117, [['data', 'data']]],
  Twrite: [
    118,
    [
      ['fid', 'u32'],
      ['offset', 'u64'],
      ['data', 'data'],
    ],
  ],
  Rwrite: [119, [['count', 'u32']]],
  Tclunk: [120, [['fid', 'u32']]],
  Rclunk: [121, []],
  Tremove: [122, [['fid', 'u32']]],
  Rremove: [123, []],
} as const satisfies Record<string, readonly [number, readonly Field[]]>;

type Schema = typeof schema;
export type MessageName = keyof Schema;
type FieldsOf<F extends readonly Field[]> = { [E in F[number] as E[0]]: KindTypes[E[1]] };
export type Message<N extends MessageName> = { type: N; tag: number } & FieldsOf<Schema[N][1]>;
export type AnyMessage = { [N in MessageName]: Message<N> }[MessageName];
export type TName = Extract<MessageName, `T${string}`>;
export type RName = Extract<MessageName, `R${string}`>;
export type TMessage = { [N in TName]: Message<N> }[TName];
export type RMessage = { [N in RName]: Message<N> }[RName];
/** An R message without its tag (what a request handler produces). */
export type RBody = { [N in RName]: Omit<Message<N>, 'tag'> }[RName];

const nameById: Array<MessageName | undefined> = [];
const fieldsById: Array<readonly Field[] | undefined> = [];
export const MessageId = {} as { readonly [N in MessageName]: Schema[N][0] };
for (const [name, [id, fields]] of Object.entries(schema) as Array<[MessageName, readonly [number, readonly Field[]]]>) {
  nameById[id] = name;
  fieldsById[id] = fields;
  (MessageId as Record<string, number>)[name] = id;
}

/** The message name for a type byte, or undefined. */
export function messageName(id: number): MessageName | undefined {
  return nameById[id];
}

// ---------------------------------------------------------------------------
// Reading.

const TWO32 = 4294967296;

/** Bounds-checked little-endian reader over one frame. */
export class Reader {
  private readonly buf: Buffer;
  pos: number;
  private readonly end: number;

  constructor(buf: Buffer, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number): number {
    const p = this.pos;
    if (p + n > this.end) throw new DecodeError(`message truncated (need ${n} bytes at ${p}, frame ends at ${this.end})`);
    this.pos = p + n;
    return p;
  }

  u8(): number {
    return this.buf[this.need(1)]!;
  }
  u16(): number {
    return this.buf.readUInt16LE(this.need(2));
  }
  u32(): number {
    return this.buf.readUInt32LE(this.need(4));
  }
  u64(): number {
    const p = this.need(8);
    return this.buf.readUInt32LE(p) + this.buf.readUInt32LE(p + 4) * TWO32;
  }
  u64b(): bigint {
    return this.buf.readBigUInt64LE(this.need(8));
  }
  bytes(n: number): Buffer {
    const p = this.need(n);
    return this.buf.subarray(p, p + n);
  }
  str(): string {
    const n = this.u16();
    const b = this.bytes(n);
    if (n === 0) return '';
    if (!isUtf8(b)) throw new DecodeError('string is not valid UTF-8', Errno.EILSEQ);
    return b.toString('utf8');
  }
  qid(): Qid {
    const p = this.need(13);
    return {
      type: this.buf[p]!,
      version: this.buf.readUInt32LE(p + 1),
      path: this.buf.readBigUInt64LE(p + 5),
    };
  }
}

function readField(r: Reader, kind: Kind): unknown {
  switch (kind) {
    case 'u8':
      return r.u8();
    case 'u16':
      return r.u16();
    case 'u32':
      return r.u32();
    case 'u32opt':
      return r.remaining >= 4 ? r.u32() : 0;
    case 'u64':
      return r.u64();
    case 'u64b':
      return r.u64b();
    case 'str':
      return r.str();
    case 'qid':
      return r.qid();
    case 'wnames': {
      const n = r.u16();
      if (n > MAX_WALK_NAMES) throw new DecodeError(`walk of ${n} names (most is ${MAX_WALK_NAMES})`, Errno.E2BIG);
      const out: string[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = r.str();
      return out;
    }
    case 'qids': {
      const n = r.u16();
      if (n > MAX_WALK_NAMES) throw new DecodeError(`${n} qids (most is ${MAX_WALK_NAMES})`, Errno.E2BIG);
      const out: Qid[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = r.qid();
      return out;
    }
    case 'data':
      return r.bytes(r.u32());
  }
}

/**
 * Decode one whole frame (size[4] included). The frame's size field must
 * match its length. Unknown types throw DecodeError with EOPNOTSUPP.
 */
export function decode(frame: Buffer): AnyMessage {
  if (frame.length < HEADER_SIZE) throw new DecodeError('frame shorter than its header');
  const size = frame.readUInt32LE(0);
  if (size !== frame.length) throw new DecodeError(`frame size ${size} does not match its length ${frame.length}`);
  const id = frame[4]!;
  const fields = fieldsById[id];
  if (fields === undefined) throw new DecodeError(`unknown message type ${id}`, Errno.EOPNOTSUPP);
  const msg: Record<string, unknown> = { type: nameById[id], tag: frame.readUInt16LE(5) };
  const r = new Reader(frame, HEADER_SIZE, size);
  for (const [name, kind] of fields) msg[name] = readField(r, kind);
  return msg as AnyMessage;
}

// ---------------------------------------------------------------------------
// Writing.

function fieldSize(kind: Kind, value: unknown): number {
  switch (kind) {
    case 'u8':
      return 1;
    case 'u16':
      return 2;
    case 'u32':
    case 'u32opt':
      return 4;
    case 'u64':
    case 'u64b':
      return 8;
    case 'str':
      return 2 + Buffer.byteLength(value as string);
    case 'qid':
      return 13;
    case 'wnames': {
      let n = 2;
      for (const s of value as string[]) n += 2 + Buffer.byteLength(s);
      return n;
    }
    case 'qids':
      return 2 + 13 * (value as Qid[]).length;
    case 'data':
      return 4 + (value as Uint8Array).length;
  }
}

/** Write a u64 given as a JS number (clamped to [0, 2^64-1], fraction dropped). */
export function writeU64(buf: Buffer, value: number, pos: number): void {
  let v = Math.trunc(value);
  if (!(v > 0)) v = 0;
  let hi = Math.floor(v / TWO32);
  let lo = v - hi * TWO32;
  if (hi >= TWO32) {
    hi = TWO32 - 1;
    lo = TWO32 - 1;
  }
  buf.writeUInt32LE(lo >>> 0, pos);
  buf.writeUInt32LE(hi >>> 0, pos + 4);
}

export function writeQid(buf: Buffer, qid: Qid, pos: number): number {
  buf[pos] = qid.type & 0xff;
  buf.writeUInt32LE(qid.version >>> 0, pos + 1);
  buf.writeBigUInt64LE(BigInt.asUintN(64, qid.path), pos + 5);
  return pos + 13;
}

function writeString(buf: Buffer, s: string, pos: number): number {
  const n = buf.write(s, pos + 2, 'utf8');
  if (n > 0xffff) throw new RangeError('string longer than 65535 bytes');
  buf.writeUInt16LE(n, pos);
  return pos + 2 + n;
}

function writeField(buf: Buffer, kind: Kind, value: unknown, pos: number): number {
  switch (kind) {
    case 'u8':
      buf[pos] = (value as number) & 0xff;
      return pos + 1;
    case 'u16':
      buf.writeUInt16LE((value as number) & 0xffff, pos);
      return pos + 2;
    case 'u32':
    case 'u32opt':
      buf.writeUInt32LE((value as number) >>> 0, pos);
      return pos + 4;
    case 'u64':
      writeU64(buf, value as number, pos);
      return pos + 8;
    case 'u64b':
      buf.writeBigUInt64LE(BigInt.asUintN(64, value as bigint), pos);
      return pos + 8;
    case 'str':
      return writeString(buf, value as string, pos);
    case 'qid':
      return writeQid(buf, value as Qid, pos);
    case 'wnames': {
      const names = value as string[];
      buf.writeUInt16LE(names.length, pos);
      pos += 2;
      for (const s of names) pos = writeString(buf, s, pos);
      return pos;
    }
    case 'qids': {
      const qids = value as Qid[];
      buf.writeUInt16LE(qids.length, pos);
      pos += 2;
      for (const q of qids) pos = writeQid(buf, q, pos);
      return pos;
    }
    case 'data': {
      const d = value as Uint8Array;
      buf.writeUInt32LE(d.length, pos);
      buf.set(d, pos + 4);
      return pos + 4 + d.length;
    }
  }
}

/** Encode a message (T or R) into a fresh frame. */
export function encode(msg: AnyMessage | (RBody & { tag: number })): Buffer {
  const id = schema[msg.type][0];
  const fields = fieldsById[id]!;
  const m = msg as unknown as Record<string, unknown>;
  let size = HEADER_SIZE;
  for (const [name, kind] of fields) size += fieldSize(kind, m[name]);
  if (size > 0xffffffff) throw new RangeError('message too large');
  const buf = Buffer.allocUnsafe(size);
  buf.writeUInt32LE(size, 0);
  buf[4] = id;
  buf.writeUInt16LE(msg.tag & 0xffff, 5);
  let pos = HEADER_SIZE;
  for (const [name, kind] of fields) pos = writeField(buf, kind, m[name], pos);
  return buf;
}

/** Write the 7-byte header in place (for replies built directly into a buffer). */
export function writeHeader(buf: Buffer, size: number, id: number, tag: number): void {
  buf.writeUInt32LE(size, 0);
  buf[4] = id;
  buf.writeUInt16LE(tag, 5);
}

/** An Rlerror reply, built directly (the server's error path and the transport's ESTALE). */
export function rlerror(tag: number, errno: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_SIZE + 4);
  writeHeader(buf, HEADER_SIZE + 4, MessageId.Rlerror, tag);
  buf.writeUInt32LE(errno >>> 0, HEADER_SIZE);
  return buf;
}

// ---------------------------------------------------------------------------
// Readdir entries: qid[13] offset[8] type[1] name[s].

export interface WireDirent {
  qid: Qid;
  offset: number;
  type: number;
  name: string;
}

/** Bytes one directory entry takes on the wire. */
export function direntSize(name: string): number {
  return 13 + 8 + 1 + 2 + Buffer.byteLength(name);
}

/** Write one entry at pos; returns the new position. The caller checks space with direntSize. */
export function writeDirent(buf: Buffer, pos: number, qid: Qid, offset: number, type: number, name: string): number {
  pos = writeQid(buf, qid, pos);
  writeU64(buf, offset, pos);
  buf[pos + 8] = type & 0xff;
  return writeString(buf, name, pos + 9);
}

/** Parse Rreaddir data into entries (bounds-checked). */
export function decodeDirents(data: Uint8Array): WireDirent[] {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const r = new Reader(buf);
  const out: WireDirent[] = [];
  while (r.remaining > 0) {
    const qid = r.qid();
    const offset = r.u64();
    const type = r.u8();
    const name = r.str();
    out.push({ qid, offset, type, name });
  }
  return out;
}
