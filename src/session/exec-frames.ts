// The exec stream's frames, shared by the guest's pocketvm-execd
// (payload/helpers/pocketvm-execd.c, which documents each type), the
// session's exec channel and `launcher exec` on the control socket:
// u32 payload length (LE), u8 type, u32 command id (LE), payload.
export const FRAME_HEADER_BYTES = 9;
/** What either end accepts in one frame; data is sent in far smaller pieces. */
export const MAX_FRAME_BYTES = 1 << 20;
/** Stdin and output travel in pieces of at most this. */
export const DATA_CHUNK_BYTES = 32 * 1024;

export type FrameType =
  /** launcher → guest: start a command */
  | 'S'
  /** launcher → guest: stdin bytes; empty = EOF */
  | 'I'
  /** launcher → guest: a signal for the command's process group */
  | 'K'
  /** guest → launcher: stdout, stderr */
  | 'O'
  | 'E'
  /** guest → launcher: stdin bytes written to the command */
  | 'A'
  /** guest → launcher: the command could not start (u32 exit code, message) */
  | 'F'
  /** guest → launcher: exit (i32 code, i32 signal); the last frame of a command */
  | 'X';

export interface Frame {
  type: FrameType;
  id: number;
  payload: Buffer;
}

export function encodeFrame(type: FrameType, id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(FRAME_HEADER_BYTES);
  head.writeUInt32LE(payload.length, 0);
  head.write(type, 4, 'latin1');
  head.writeUInt32LE(id >>> 0, 5);
  return Buffer.concat([head, payload]);
}

export function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0);
  return b;
}

/** Splits a byte stream into frames; throws on a frame no end would send. */
export class FrameReader {
  #buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const frames: Frame[] = [];
    let offset = 0;
    while (this.#buffer.length - offset >= FRAME_HEADER_BYTES) {
      const length = this.#buffer.readUInt32LE(offset);
      if (length > MAX_FRAME_BYTES) throw new Error(`exec stream: a frame of ${length} bytes is not ours`);
      if (this.#buffer.length - offset < FRAME_HEADER_BYTES + length) break;
      const type = String.fromCharCode(this.#buffer[offset + 4]!) as FrameType;
      const id = this.#buffer.readUInt32LE(offset + 5);
      frames.push({ type, id, payload: Buffer.from(this.#buffer.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length)) });
      offset += FRAME_HEADER_BYTES + length;
    }
    this.#buffer = this.#buffer.subarray(offset);
    return frames;
  }
}

/** A start request: who runs what, where, with which environment. */
export interface ExecSpec {
  uid: number;
  gid: number;
  cwd: string;
  argv: string[];
  env: Record<string, string>;
}

export function encodeStart(spec: ExecSpec): Buffer {
  const env = Object.entries(spec.env).map(([name, value]) => `${name}=${value}`);
  const strings = [spec.cwd, ...spec.argv, ...env];
  if (strings.some((s) => s.includes('\0'))) throw new Error('a NUL byte cannot be part of a command, its arguments or its environment');
  const head = Buffer.alloc(16);
  head.writeUInt32LE(spec.uid, 0);
  head.writeUInt32LE(spec.gid, 4);
  head.writeUInt32LE(spec.argv.length, 8);
  head.writeUInt32LE(env.length, 12);
  return Buffer.concat([head, ...strings.map((s) => Buffer.from(`${s}\0`))]);
}
