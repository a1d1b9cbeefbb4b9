// A read-only NBD export on a UNIX socket (the NBD protocol's fixed newstyle
// handshake, NBD_OPT_GO, simple replies): how the launcher hands QEMU a disk
// whose every read it serves itself (src/session/verified-base.ts checks each
// block of an image guest's base before QEMU gets it). Only what QEMU's NBD
// client needs: reads and disconnect; every write-like command is refused with
// EPERM. Protocol: https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md
import { createServer, type Server, type Socket } from 'node:net';

const NBDMAGIC = 0x4e42444d41474943n;
const IHAVEOPT = 0x49484156454f5054n;
const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;

const FLAG_FIXED_NEWSTYLE = 1;
const FLAG_NO_ZEROES = 2;
const OPT_EXPORT_NAME = 1;
const OPT_ABORT = 2;
const OPT_GO = 7;
const OPT_INFO = 6;
const REP_ACK = 1;
const REP_INFO = 3;
const REP_ERR_UNSUP = 0x80000001;
const INFO_EXPORT = 0;
const INFO_BLOCK_SIZE = 3;
const TRANSMISSION_FLAGS = 0x1 /* HAS_FLAGS */ | 0x2 /* READ_ONLY */ | 0x100; /* CAN_MULTI_CONN */
const CMD_READ = 0;
const CMD_DISC = 2;
const EPERM = 1;
const EIO = 5;
const EINVAL = 22;
/** QEMU's own NBD limit: no read is larger. */
const MAX_REQUEST = 32 * 1024 * 1024;

export interface NbdSource {
  bytes: number;
  /** Preferred read size (the block the source checks). */
  preferredBlock: number;
  /** The bytes at [offset, offset+length); a throw is an EIO reply. */
  read(offset: number, length: number): Promise<Buffer>;
}

/** Reads exactly n bytes from a socket as they arrive. */
class SocketReader {
  #chunks: Buffer[] = [];
  #have = 0;
  #waiting: (() => void) | undefined;
  #ended = false;
  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.#chunks.push(chunk);
      this.#have += chunk.length;
      this.#waiting?.();
    });
    const end = () => {
      this.#ended = true;
      this.#waiting?.();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }
  async take(n: number): Promise<Buffer | undefined> {
    while (this.#have < n) {
      if (this.#ended) return undefined;
      await new Promise<void>((resolve) => (this.#waiting = resolve));
      this.#waiting = undefined;
    }
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.#chunks = rest.length ? [rest] : [];
    this.#have = rest.length;
    return out;
  }
}

function optionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(20);
  head.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
  head.writeUInt32BE(option, 8);
  head.writeUInt32BE(type >>> 0, 12);
  head.writeUInt32BE(data.length, 16);
  return Buffer.concat([head, data]);
}

function simpleReply(handle: Buffer, error: number): Buffer {
  const reply = Buffer.alloc(16);
  reply.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  reply.writeUInt32BE(error, 4);
  handle.copy(reply, 8);
  return reply;
}

async function handshake(socket: Socket, reader: SocketReader, source: NbdSource): Promise<boolean> {
  const greeting = Buffer.alloc(18);
  greeting.writeBigUInt64BE(NBDMAGIC, 0);
  greeting.writeBigUInt64BE(IHAVEOPT, 8);
  greeting.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16);
  socket.write(greeting);
  const clientFlags = await reader.take(4);
  if (!clientFlags) return false;
  const noZeroes = (clientFlags.readUInt32BE(0) & FLAG_NO_ZEROES) !== 0;
  for (;;) {
    const head = await reader.take(16);
    if (!head || head.readBigUInt64BE(0) !== IHAVEOPT) return false;
    const option = head.readUInt32BE(8);
    const length = head.readUInt32BE(12);
    if (length > 65536) return false;
    const data = (await reader.take(length)) ?? Buffer.alloc(0);
    if (option === OPT_EXPORT_NAME) {
      const reply = Buffer.alloc(noZeroes ? 10 : 134);
      reply.writeBigUInt64BE(BigInt(source.bytes), 0);
      reply.writeUInt16BE(TRANSMISSION_FLAGS, 8);
      socket.write(reply);
      return true;
    }
    if (option === OPT_GO || option === OPT_INFO) {
      const exportInfo = Buffer.alloc(12);
      exportInfo.writeUInt16BE(INFO_EXPORT, 0);
      exportInfo.writeBigUInt64BE(BigInt(source.bytes), 2);
      exportInfo.writeUInt16BE(TRANSMISSION_FLAGS, 10);
      socket.write(optionReply(option, REP_INFO, exportInfo));
      const sizes = Buffer.alloc(14);
      sizes.writeUInt16BE(INFO_BLOCK_SIZE, 0);
      sizes.writeUInt32BE(512, 2);
      sizes.writeUInt32BE(source.preferredBlock, 6);
      sizes.writeUInt32BE(MAX_REQUEST, 10);
      socket.write(optionReply(option, REP_INFO, sizes));
      socket.write(optionReply(option, REP_ACK));
      if (option === OPT_GO) return true;
      continue;
    }
    if (option === OPT_ABORT) {
      socket.write(optionReply(option, REP_ACK));
      return false;
    }
    // Structured replies, meta contexts, TLS, listing: not offered; QEMU goes on without them.
    void data;
    socket.write(optionReply(option, REP_ERR_UNSUP));
  }
}

async function transmission(socket: Socket, reader: SocketReader, source: NbdSource): Promise<void> {
  for (;;) {
    const request = await reader.take(28);
    if (!request || request.readUInt32BE(0) !== REQUEST_MAGIC) return;
    const type = request.readUInt16BE(6);
    const handle = Buffer.from(request.subarray(8, 16));
    const offset = Number(request.readBigUInt64BE(16));
    const length = request.readUInt32BE(24);
    if (type === CMD_DISC) return;
    if (type !== CMD_READ) {
      // A write carries its payload: read it off the wire before refusing.
      if (type === 1 && !(await reader.take(length))) return;
      socket.write(simpleReply(handle, EPERM));
      continue;
    }
    if (length > MAX_REQUEST || offset + length > source.bytes) {
      socket.write(simpleReply(handle, EINVAL));
      continue;
    }
    // Answered as each read completes (the NBD client matches replies by handle): QEMU keeps several reads in flight.
    void source.read(offset, length).then(
      (data) => socket.write(Buffer.concat([simpleReply(handle, 0), data])),
      () => socket.write(simpleReply(handle, EIO)),
    );
  }
}

/** Serves `source` read-only on `socketPath` until closed. */
export async function serveReadOnlyNbd(socketPath: string, source: NbdSource): Promise<{ close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const reader = new SocketReader(socket);
    void (async () => {
      if (await handshake(socket, reader, source)) await transmission(socket, reader, source);
    })()
      .catch(() => {})
      .finally(() => socket.end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
