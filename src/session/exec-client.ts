// `launcher exec`'s end of a streamed command (control op exec-stream): one
// connection to the session; the request line, its answer, then exec frames
// (src/session/exec-frames.ts): stdin and signals out, output and the exit
// status in. Flow control is the socket's own: a full guest window makes the
// session stop reading, which makes writes here wait.
import { connect, type Socket } from 'node:net';
import { ExitCode, type ExitCodeName, NoSessionError, PocketError } from '../errors.ts';
import type { StickLayout } from '../stick/layout.ts';
import { findSession } from './control-client.ts';
import type { ExecRequest } from './control-protocol.ts';
import { DATA_CHUNK_BYTES, encodeFrame, FrameReader, u32 } from './exec-frames.ts';

export type ExecOutcome = { kind: 'exit'; exitCode: number; signal: number | null } | { kind: 'failed'; exitCode: number; message: string };

export interface ExecSinks {
  /** Output as it comes; false asks the stream to wait for `resume`. */
  stdout(data: Buffer, resume: () => void): boolean;
  stderr(data: Buffer, resume: () => void): boolean;
}

export interface RemoteExec {
  /** Stdin; false when the caller should wait for 'drain' (`onDrain`). */
  write(data: Buffer): boolean;
  onDrain(listener: () => void): void;
  /** Closes the command's stdin. */
  end(): void;
  /** A signal (number) for the command's process group in the guest. */
  signal(signo: number): void;
  readonly outcome: Promise<ExecOutcome>;
}

export async function openRemoteExec(layout: StickLayout, request: Omit<ExecRequest, 'op' | 'token'>, sinks: ExecSinks): Promise<RemoteExec> {
  const holder = await findSession(layout);
  return openRemoteExecAt(holder.control, request, sinks, () => new NoSessionError(layout.root));
}

/** The same over any control socket that serves exec-stream (a session's, the helper appliance's). */
export async function openRemoteExecAt(
  control: { path: string; token: string },
  request: Omit<ExecRequest, 'op' | 'token'>,
  sinks: ExecSinks,
  gone: () => PocketError,
): Promise<RemoteExec> {
  const holder = { control };
  const socket: Socket = connect(holder.control.path);
  const reader = new FrameReader();
  let head = Buffer.alloc(0);
  let answered = false;
  let outcome: ExecOutcome | undefined;
  let settle!: (value: ExecOutcome) => void;
  let fail!: (error: unknown) => void;
  const done = new Promise<ExecOutcome>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  done.catch(() => {});
  const opened = new Promise<void>((resolve, reject) => {
    socket.on('connect', () => socket.write(`${JSON.stringify({ ...request, op: 'exec-stream', token: holder.control.token })}\n`));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      const failure = error.code === 'ENOENT' || error.code === 'ECONNREFUSED' ? gone() : error;
      if (!answered) reject(failure);
      // After the exit frame the session has closed its end: a late stdin write failing is no failure.
      else if (!outcome) fail(failure);
    });
    const resume = () => socket.resume();
    const onFrames = (chunk: Buffer) => {
      for (const frame of reader.push(chunk)) {
        if (frame.type === 'O' && !sinks.stdout(frame.payload, resume)) socket.pause();
        else if (frame.type === 'E' && !sinks.stderr(frame.payload, resume)) socket.pause();
        else if (frame.type === 'X') outcome = { kind: 'exit', exitCode: frame.payload.readInt32LE(0), signal: frame.payload.readInt32LE(4) || null };
        else if (frame.type === 'F') outcome = { kind: 'failed', exitCode: frame.payload.readUInt32LE(0), message: frame.payload.subarray(4).toString('utf8') };
      }
    };
    socket.on('data', (chunk: Buffer) => {
      if (answered) return onFrames(chunk);
      head = Buffer.concat([head, chunk]);
      const newline = head.indexOf(0x0a);
      if (newline < 0) return;
      answered = true;
      const response = JSON.parse(head.subarray(0, newline).toString('utf8')) as
        { ok: true } | { ok: false; error: { exit: string; message: string; hint?: string } };
      if (!response.ok) {
        const exit = (response.error.exit in ExitCode ? response.error.exit : 'internal') as ExitCodeName;
        return reject(new PocketError(exit, response.error.message, response.error.hint ? { hint: response.error.hint } : {}));
      }
      resolve();
      const rest = head.subarray(newline + 1);
      if (rest.length > 0) onFrames(rest);
    });
    socket.on('close', () => {
      if (!answered)
        return reject(
          new PocketError('noSession', 'the session closed the control channel without answering', {
            hint: 'it is probably shutting down; check with: launcher status',
          }),
        );
      if (outcome) settle(outcome);
      else fail(new PocketError('noSession', 'the session ended while the command ran'));
    });
  });
  await opened;
  // Stdin and signals only while the session still reads them (not after the exit frame).
  const writable = () => !outcome && !socket.destroyed && socket.writable;
  return {
    write: (data) => {
      let ok = true;
      if (!writable()) return ok;
      for (let offset = 0; offset < data.length; offset += DATA_CHUNK_BYTES)
        ok = socket.write(encodeFrame('I', 0, data.subarray(offset, offset + DATA_CHUNK_BYTES)));
      return ok;
    },
    onDrain: (listener) => void socket.on('drain', listener),
    end: () => {
      if (writable()) socket.write(encodeFrame('I', 0));
    },
    signal: (signo) => {
      if (writable()) socket.write(encodeFrame('K', 0, u32(signo)));
    },
    outcome: done,
  };
}
