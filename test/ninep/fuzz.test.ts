// Fuzzing the decoder and the server with random and mutated messages.
// Reproducible: the seed comes from NINEP_FUZZ_SEED (default below) and is
// printed on failure. The server must never throw, never hang (every intact
// frame gets a reply, or the channel closes), and memory must stay bounded.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { duplexPair } from 'node:stream';
import { DecodeError, HEADER_SIZE, NOFID, decode, encode, schema } from '../../src/ninep/codec.ts';
import type { AnyMessage, MessageName } from '../../src/ninep/codec.ts';
import { serveNinep } from '../../src/ninep/server.ts';
import { LocalDirBackend } from './local-backend.ts';

const SEED = Number(process.env.NINEP_FUZZ_SEED ?? 0x9e3779b9);
const SERVER_MESSAGES = Number(process.env.NINEP_FUZZ_MESSAGES ?? 20_000);
const DECODER_MESSAGES = 100_000;

/** mulberry32: small, seedable, good enough for fuzzing. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  readonly rnd: () => number;
  constructor(seed: number) {
    this.rnd = prng(seed);
  }
  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.rnd() < p;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

const NAMES = ['a', 'b', 'c', 'dir', 'file', 'x.txt', '..', '.', '', 'a/b', 'ü', 'x'.repeat(300), 'link', 'fifo'];
const T_NAMES = (Object.keys(schema) as MessageName[]).filter((n) => n.startsWith('T'));
/** Every T message, with the ones real sessions are made of weighted up. */
const T_WEIGHTED: MessageName[] = [
  ...T_NAMES,
  ...(
    ['Twalk', 'Twalk', 'Tlopen', 'Tlcreate', 'Tread', 'Twrite', 'Treaddir', 'Tgetattr', 'Tclunk', 'Tmkdir', 'Tsymlink', 'Trenameat', 'Tunlinkat'] as const
  ).flatMap((n) => [n, n, n] as MessageName[]),
];

function value(g: Gen, msg: MessageName, field: string, kind: string): unknown {
  switch (kind) {
    case 'u8':
      return g.chance(0.7) ? g.int(4) : g.int(256);
    case 'u16':
      return g.int(65536);
    case 'u32':
    case 'u32opt':
      // Keep the root fid 1 alive: what clunks or repurposes a fid gets a walked one.
      if (field === 'fid' && (msg === 'Tclunk' || msg === 'Tremove' || msg === 'Tlcreate' || msg === 'Tlopen' || msg === 'Txattrcreate')) {
        return g.chance(0.97) ? 2 + g.int(7) : 1;
      }
      if (field === 'fid' || field === 'dfid' || field === 'dirfid' || field === 'olddirfid' || field === 'newdirfid') {
        return g.chance(0.4) ? 1 : g.chance(0.9) ? 1 + g.int(8) : g.pick([NOFID, g.int(2 ** 32)]);
      }
      if (/fid$/.test(field)) return g.chance(0.95) ? 2 + g.int(7) : g.pick([NOFID, g.int(2 ** 32)]);
      if (field === 'msize') return g.pick([4096, 8192, 65536, 512 * 1024, 1 << 20, g.int(2 ** 32)]);
      if (field === 'mode') return g.pick([0o100644, 0o040755, 0o010644, 0o020644, 0o644, g.int(2 ** 32)]);
      if (field === 'count') return g.pick([0, 1, 100, 8192, 8192, 1 << 20, g.int(2 ** 32)]);
      if (field === 'flags') return g.pick([0, 0, 2, 2, 1, 0o100, 0o1000, 0o2000, 0o200000, 0x200, g.int(2 ** 32)]);
      return g.chance(0.5) ? g.int(16) : g.int(2 ** 32);
    case 'u64':
      return g.pick([0, 0, 0, 1, 4096, 1 << 30, 2 ** 40, 2 ** 53 - 1, 2 ** 60, g.int(1 << 20)]);
    case 'u64b':
      return BigInt(g.int(2 ** 32));
    case 'str':
      if (field === 'version') return g.pick(['9P2000.L', '9P2000', '9P2000.u', '']);
      return g.pick(NAMES);
    case 'qid':
      return { type: g.int(256), version: g.int(2 ** 32), path: BigInt(g.int(2 ** 32)) };
    case 'wnames':
      return Array.from({ length: g.chance(0.95) ? g.int(4) : g.int(20) }, () => (g.chance(0.7) ? g.pick(['dir', 'file', 'a', 'b', '..']) : g.pick(NAMES)));
    case 'qids':
      return Array.from({ length: g.int(4) }, () => ({ type: 0, version: 0, path: 0n }));
    case 'data':
      return g.bytes(g.chance(0.9) ? g.int(200) : g.int(20_000));
  }
  throw new Error(`kind ${kind}`);
}

function randomMessage(g: Gen, name: MessageName, tag: number): Buffer {
  const [, fields] = schema[name];
  const msg: Record<string, unknown> = { type: name, tag };
  for (const [f, kind] of fields as ReadonlyArray<readonly [string, string]>) msg[f] = value(g, name, f, kind);
  try {
    return encode(msg as AnyMessage);
  } catch {
    return encode({ type: 'Tclunk', tag, fid: 9 });
  }
}

/** Mutate a frame, keeping it intact (size field = length) and its tag. */
function mutate(g: Gen, frame: Buffer, tag: number): Buffer {
  let f = Buffer.from(frame);
  const op = g.int(5);
  if (op === 0 && f.length > HEADER_SIZE) {
    for (let i = 0, n = 1 + g.int(4); i < n; i++) f[HEADER_SIZE + g.int(f.length - HEADER_SIZE)] = g.int(256);
  } else if (op === 1) {
    f = f.subarray(0, HEADER_SIZE + g.int(Math.max(1, f.length - HEADER_SIZE)));
  } else if (op === 2) {
    f = Buffer.concat([f, g.bytes(g.int(64))]);
  } else if (op === 3) {
    f[4] = g.int(256);
  } else if (f.length > HEADER_SIZE + 4) {
    // Corrupt an embedded length (string or count) to something large.
    f.writeUInt16LE(0xffff, HEADER_SIZE + g.int(f.length - HEADER_SIZE - 2));
  }
  f = Buffer.from(f);
  f.writeUInt32LE(f.length, 0);
  f.writeUInt16LE(tag, 5);
  return f;
}

describe('ninep fuzz', function () {
  this.timeout(600_000);
  let tmp: string;

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ninep-fuzz-'));
  });

  after(() => {
    // Fuzzed chmods may have locked directories; open them up before removing.
    const unlock = (p: string): void => {
      try {
        const st = fs.lstatSync(p);
        if (st.isDirectory()) {
          fs.chmodSync(p, 0o700);
          for (const e of fs.readdirSync(p)) unlock(path.join(p, e));
        }
      } catch {
        /* gone */
      }
    };
    unlock(tmp);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it(`decoder: ${DECODER_MESSAGES} random and mutated frames only ever raise DecodeError (seed ${SEED})`, () => {
    const g = new Gen(SEED);
    for (let i = 0; i < DECODER_MESSAGES; i++) {
      const tag = g.int(65535);
      let frame: Buffer;
      if (g.chance(0.2)) {
        frame = g.bytes(HEADER_SIZE + g.int(100));
        frame.writeUInt32LE(frame.length, 0);
      } else {
        frame = randomMessage(g, g.pick(T_NAMES), tag);
        if (g.chance(0.7)) frame = mutate(g, frame, tag);
      }
      try {
        decode(frame);
      } catch (e) {
        if (!(e instanceof DecodeError)) assert.fail(`seed ${SEED} frame ${i} ${frame.toString('hex')}: ${String(e)}`);
      }
    }
  });

  it(`server: ${SERVER_MESSAGES} random and mutated messages, no throw, no hang, bounded memory (seed ${SEED})`, async () => {
    const share = path.join(tmp, 'share');
    fs.mkdirSync(share);
    fs.mkdirSync(path.join(share, 'dir'));
    fs.writeFileSync(path.join(share, 'file'), 'content');
    const backend = await LocalDirBackend.open(share);
    const g = new Gen(SEED + 1);
    const uncaught: unknown[] = [];
    const internal: string[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    process.on('unhandledRejection', onUncaught);
    let sent = 0;
    let sessions = 0;
    let replies = 0;
    let errorReplies = 0;
    const hist = new Map<string, number>();
    const sentType = new Map<number, string>();
    let closes = 0;
    let peakHeap = 0;
    const heapAtStart = process.memoryUsage().heapUsed;
    try {
      while (sent < SERVER_MESSAGES) {
        sessions++;
        const [a, b] = duplexPair();
        const server = serveNinep(a, backend, {
          concurrency: 1 + g.int(8),
          maxMsize: g.pick([65536, 512 * 1024]),
          logLimitPerMinute: Infinity,
          log: (m) => {
            if (process.env.NINEP_FUZZ_LOG) console.log(m);
            if (/failed: (TypeError|RangeError|ReferenceError|AssertionError)/.test(m)) internal.push(m);
          },
        });
        const waiting = new Map<number, () => void>();
        let closed = false;
        let buf = Buffer.alloc(0);
        b.on('data', (c: Buffer) => {
          buf = Buffer.concat([buf, c]);
          while (buf.length >= 4 && buf.length >= buf.readUInt32LE(0)) {
            const size = buf.readUInt32LE(0);
            assert.ok(size >= HEADER_SIZE, 'server sent a short frame');
            const tag = buf.readUInt16LE(5);
            if (buf[4] === 109) {
              // Rflush: the flushed request may legitimately get no reply.
              const old = flushed.get(tag);
              if (old !== undefined) waiting.get(old)?.();
            }
            waiting.get(tag)?.();
            replies++;
            if (buf[4] === 7) errorReplies++;
            if (process.env.NINEP_FUZZ_HIST)
              hist.set(
                `${sentType.get(tag)} ${buf[4] === 7 ? buf.readUInt32LE(7) : 'ok'}`,
                (hist.get(`${sentType.get(tag)} ${buf[4] === 7 ? buf.readUInt32LE(7) : 'ok'}`) ?? 0) + 1,
              );
            buf = buf.subarray(size);
          }
        });
        const onClose = () => {
          closed = true;
          for (const w of [...waiting.values()]) w();
        };
        b.on('close', onClose);
        b.on('end', onClose);
        const flushed = new Map<number, number>();
        const expect = (tag: number) =>
          new Promise<void>((resolve) => {
            if (closed) return resolve();
            waiting.set(tag, () => {
              waiting.delete(tag);
              resolve();
            });
          });
        const prelude = [
          encode({ type: 'Tversion', tag: 0xffff, msize: 512 * 1024, version: '9P2000.L' }),
          encode({ type: 'Tattach', tag: 1, fid: 1, afid: NOFID, uname: '', aname: '', nUname: 0 }),
        ];
        for (const [i, f] of prelude.entries()) {
          const p = expect(i === 0 ? 0xffff : 1);
          b.write(f);
          await p;
        }
        // Batches of pipelined requests with unique tags, until the session closes.
        let resetting = false;
        for (let batch = 0; batch < 40 && !closed && !resetting && sent < SERVER_MESSAGES; batch++) {
          const n = 1 + g.int(24);
          const tags: number[] = [];
          const promises: Array<Promise<void>> = [];
          for (let i = 0; i < n; i++) {
            const tag = 2 + batch * 32 + i;
            let name = g.pick(T_WEIGHTED);
            // A Tversion resets the session (fids gone, maybe no protocol): rare, and the session ends after it.
            if (name === 'Tversion' && g.chance(0.7)) name = 'Twalk';
            if (name === 'Tversion') resetting = true;
            let frame: Buffer;
            if (name === 'Tflush' && tags.length > 0) {
              const old = g.pick(tags);
              frame = encode({ type: 'Tflush', tag, oldtag: old });
              flushed.set(tag, old);
            } else {
              frame = randomMessage(g, name, tag);
              if (g.chance(0.3)) frame = mutate(g, frame, tag);
            }
            tags.push(tag);
            sentType.set(tag, String(frame[4]));
            promises.push(expect(tag));
            b.write(frame);
            sent++;
          }
          let timer: NodeJS.Timeout | undefined;
          const hang = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`seed ${SEED}: server hung in session ${sessions} batch ${batch}`)), 20_000);
          });
          await Promise.race([Promise.all(promises), hang]);
          clearTimeout(timer);
          peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
        }
        if (closed) closes++;
        b.destroy();
        await server.closed;
      }
    } finally {
      process.off('uncaughtException', onUncaught);
      process.off('unhandledRejection', onUncaught);
    }
    if (process.env.NINEP_FUZZ_HIST) console.log([...hist].sort((a, b) => b[1] - a[1]).slice(0, 40));
    assert.deepEqual(uncaught, [], `seed ${SEED}: uncaught errors`);
    assert.deepEqual(internal, [], `seed ${SEED}: internal errors became EIO`);
    assert.ok(replies >= sent * 0.5, `only ${replies} replies for ${sent} messages`);
    const growthMiB = (peakHeap - heapAtStart) / 2 ** 20;
    assert.ok(growthMiB < 256, `heap grew by ${growthMiB.toFixed(0)} MiB`);
    console.log(
      `      ${sent} messages, ${replies} replies (${replies - errorReplies} successful), ${sessions} sessions (${closes} closed by the server), heap +${growthMiB.toFixed(1)} MiB`,
    );
  });

  it('server: random byte streams get replies or a closed channel, never a hang', async () => {
    const share = path.join(tmp, 'garbage');
    fs.mkdirSync(share);
    const backend = await LocalDirBackend.open(share);
    const g = new Gen(SEED + 2);
    for (let i = 0; i < 200; i++) {
      const [a, b] = duplexPair();
      const server = serveNinep(a, backend, {});
      b.on('data', () => {});
      b.write(encode({ type: 'Tversion', tag: 0xffff, msize: 8192, version: '9P2000.L' }));
      b.write(g.bytes(g.int(4096)));
      b.end();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([server.closed, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`seed ${SEED}: stream ${i} hung`)), 10_000)))]);
      clearTimeout(timer);
      b.destroy();
    }
  });
});
