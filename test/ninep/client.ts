// A small 9P2000.L client for the tests: frames T messages with the shared
// codec, matches replies by tag, turns Rlerror into NinepClientError.

import type { Duplex } from 'node:stream';
import { HEADER_SIZE, NOFID, NOTAG, decode, decodeDirents, encode } from '../../src/ninep/codec.ts';
import type { AnyMessage, Message, MessageName, RMessage, TName, WireDirent } from '../../src/ninep/codec.ts';
import type { Qid } from '../../src/ninep/backend.ts';

export class NinepClientError extends Error {
  readonly errno: number;
  constructor(errno: number, request: string) {
    super(`${request} failed: errno ${errno}`);
    this.errno = errno;
  }
}

type RFor<N extends TName> = N extends `T${infer X}` ? (`R${X}` extends MessageName ? Message<`R${X}`> : never) : never;
type TBody<N extends TName> = Omit<Message<N>, 'tag'>;

interface Pending {
  resolve: (m: RMessage) => void;
  reject: (e: Error) => void;
}

export class NinepClient {
  readonly stream: Duplex;
  private readonly pending = new Map<number, Pending>();
  private nextTag = 1;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private closedError: Error | undefined;
  /** Replies received, raw, for tests that inspect framing. */
  readonly received: Buffer[] = [];
  keepRaw = false;
  nextFid = 100;

  constructor(stream: Duplex) {
    this.stream = stream;
    stream.on('data', (c: Buffer) => this.onData(c));
    const fail = (why: string) => {
      this.closedError ??= new Error(`channel closed: ${why}`);
      for (const p of this.pending.values()) p.reject(this.closedError);
      this.pending.clear();
    };
    stream.on('close', () => fail('close'));
    stream.on('end', () => fail('end'));
    stream.on('error', (e) => fail(e.message));
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  private onData(c: Buffer): void {
    this.chunks.push(c);
    this.buffered += c.length;
    for (;;) {
      if (this.buffered < 4) return;
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      this.chunks = [all];
      const size = all.readUInt32LE(0);
      if (all.length < size) return;
      const frame = all.subarray(0, size);
      this.chunks = size === all.length ? [] : [all.subarray(size)];
      this.buffered -= size;
      if (this.keepRaw) this.received.push(Buffer.from(frame));
      const tag = frame.readUInt16LE(5);
      const p = this.pending.get(tag);
      if (p === undefined) continue;
      this.pending.delete(tag);
      try {
        p.resolve(decode(frame) as RMessage);
      } catch (e) {
        p.reject(e as Error);
      }
    }
  }

  allocTag(): number {
    for (;;) {
      const t = this.nextTag;
      this.nextTag = (this.nextTag + 1) % NOTAG;
      if (t !== NOTAG && !this.pending.has(t)) return t;
    }
  }

  /** Send a raw frame expecting a reply with `tag`. */
  sendRaw(frame: Buffer, tag: number): Promise<RMessage> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise<RMessage>((resolve, reject) => {
      this.pending.set(tag, { resolve, reject });
      this.stream.write(frame);
    });
  }

  /** Send a T message; resolves with the matching R message (Rlerror included). */
  raw<N extends TName>(msg: TBody<N>, tag?: number): Promise<RMessage> {
    const t = tag ?? (msg.type === 'Tversion' ? NOTAG : this.allocTag());
    return this.sendRaw(encode({ ...msg, tag: t } as AnyMessage), t);
  }

  /** Send a T message; throws NinepClientError on Rlerror. */
  async call<N extends TName>(msg: TBody<N>): Promise<RFor<N>> {
    const r = await this.raw(msg);
    if (r.type === 'Rlerror') throw new NinepClientError(r.ecode, msg.type);
    const expected = `R${msg.type.slice(1)}`;
    if (r.type !== expected) throw new Error(`expected ${expected}, got ${r.type}`);
    return r as RFor<N>;
  }

  // Conveniences.

  fid(): number {
    return this.nextFid++;
  }

  async version(msize = 512 * 1024): Promise<Message<'Rversion'>> {
    return this.call({ type: 'Tversion', msize, version: '9P2000.L' });
  }

  async attach(fid = 1): Promise<Qid> {
    return (await this.call({ type: 'Tattach', fid, afid: NOFID, uname: 'root', aname: '', nUname: 0 })).qid;
  }

  async walk(fid: number, names: string[], newfid = this.fid()): Promise<{ fid: number; qids: Qid[] }> {
    const r = await this.call({ type: 'Twalk', fid, newfid, wnames: names });
    return { fid: newfid, qids: r.wqids };
  }

  async open(root: number, path: string[], flags: number): Promise<number> {
    const { fid } = await this.walk(root, path);
    await this.call({ type: 'Tlopen', fid, flags });
    return fid;
  }

  async create(root: number, dir: string[], name: string, flags = 2, mode = 0o644): Promise<number> {
    const { fid } = await this.walk(root, dir);
    await this.call({ type: 'Tlcreate', fid, name, flags, mode, gid: 0 });
    return fid;
  }

  async read(fid: number, offset: number, count: number): Promise<Buffer> {
    return Buffer.from((await this.call({ type: 'Tread', fid, offset, count })).data);
  }

  async write(fid: number, offset: number, data: Uint8Array): Promise<number> {
    return (await this.call({ type: 'Twrite', fid, offset, data })).count;
  }

  async readAll(fid: number, chunk = 65536): Promise<Buffer> {
    const parts: Buffer[] = [];
    let off = 0;
    for (;;) {
      const b = await this.read(fid, off, chunk);
      if (b.length === 0) break;
      parts.push(b);
      off += b.length;
    }
    return Buffer.concat(parts);
  }

  async readdirAll(fid: number, count = 8192): Promise<WireDirent[]> {
    const out: WireDirent[] = [];
    let offset = 0;
    for (;;) {
      const r = await this.call({ type: 'Treaddir', fid, offset, count });
      const entries = decodeDirents(r.data);
      if (entries.length === 0) break;
      out.push(...entries);
      offset = entries[entries.length - 1]!.offset;
    }
    return out;
  }

  async getattr(fid: number): Promise<Message<'Rgetattr'>> {
    return this.call({ type: 'Tgetattr', fid, requestMask: 0x3fff });
  }

  async clunk(fid: number): Promise<void> {
    await this.call({ type: 'Tclunk', fid });
  }

  /** Frame header size, re-exported for raw-frame tests. */
  static readonly HEADER_SIZE = HEADER_SIZE;
}
