// `launcher exec` inside the session: the virtio-serial port
// org.pocketvm.exec.0, served in every session, whose guest end is
// pocketvm-execd (payload/helpers/pocketvm-execd.c). Several commands share
// the port, told apart by an id; each command's stdin is flow-controlled by
// the guest's acknowledgements, its output and exit status stream back.
import type { Duplex } from 'node:stream';
import { GuestFailedError } from '../errors.ts';
import { DATA_CHUNK_BYTES, encodeFrame, encodeStart, type ExecSpec, type Frame, FrameReader, u32 } from './exec-frames.ts';
import type { ExtraChannel } from './extra-channel.ts';

export const EXEC_CHANNEL_ID = 'exec';
export const EXEC_PORT_NAME = 'org.pocketvm.exec.0';

/** Stdin bytes the guest has not written to the command yet, before the sender is asked to wait. */
export const STDIN_WINDOW_BYTES = 1 << 20;

export interface ExecEvents {
  /** Every guest frame for this command (O, E, A, F, X); F or X is the last. */
  onFrame(frame: Frame): void;
  /** The unacknowledged stdin fell below the window again. */
  onWritable?(): void;
}

export class ExecHandle {
  readonly id: number;
  readonly #service: ExecService;
  readonly events: ExecEvents;
  unacked = 0;
  ended = false;

  constructor(service: ExecService, id: number, events: ExecEvents) {
    this.#service = service;
    this.id = id;
    this.events = events;
  }

  /** Sends stdin; false when the sender should wait for onWritable. */
  write(data: Buffer): boolean {
    for (let offset = 0; offset < data.length; offset += DATA_CHUNK_BYTES) {
      const piece = data.subarray(offset, offset + DATA_CHUNK_BYTES);
      this.unacked += piece.length;
      this.#service.send(encodeFrame('I', this.id, piece));
    }
    return this.unacked < STDIN_WINDOW_BYTES;
  }

  /** Closes the command's stdin. */
  end(): void {
    this.#service.send(encodeFrame('I', this.id));
  }

  /** A signal for the command's whole process group. */
  signal(signo: number): void {
    if (!this.ended) this.#service.send(encodeFrame('K', this.id, u32(signo)));
  }
}

export class ExecService {
  #stream: Duplex | undefined;
  #nextId = 1;
  readonly #running = new Map<number, ExecHandle>();

  /** The channel for launchSession: each boot attempt (or resume) gets the port anew. */
  channel(): ExtraChannel {
    return {
      id: EXEC_CHANNEL_ID,
      kind: 'serial',
      name: EXEC_PORT_NAME,
      open: (stream) => {
        this.#attach(stream);
        return { close: () => this.#detach(stream) };
      },
    };
  }

  #attach(stream: Duplex): void {
    this.#stream = stream;
    const reader = new FrameReader();
    stream.on('error', () => {});
    stream.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = reader.push(chunk);
      } catch {
        stream.destroy();
        return;
      }
      for (const frame of frames) this.#deliver(frame);
    });
    stream.on('close', () => this.#detach(stream));
  }

  #detach(stream: Duplex): void {
    if (this.#stream !== stream) return;
    this.#stream = undefined;
    stream.destroy();
    // Whatever was running is gone with the port: its callers hear so.
    for (const handle of [...this.#running.values()])
      this.#deliver({ type: 'F', id: handle.id, payload: Buffer.concat([u32(1), Buffer.from('the session ended while the command ran')]) });
  }

  #deliver(frame: Frame): void {
    const handle = this.#running.get(frame.id);
    if (!handle) return;
    if (frame.type === 'A' && frame.payload.length === 4) {
      const before = handle.unacked;
      handle.unacked = Math.max(0, handle.unacked - frame.payload.readUInt32LE(0));
      if (before >= STDIN_WINDOW_BYTES && handle.unacked < STDIN_WINDOW_BYTES) handle.events.onWritable?.();
      return;
    }
    if (frame.type === 'F' || frame.type === 'X') {
      handle.ended = true;
      this.#running.delete(frame.id);
    }
    handle.events.onFrame(frame);
  }

  send(bytes: Buffer): void {
    this.#stream?.write(bytes);
  }

  /** Starts a command in the guest. */
  start(spec: ExecSpec, events: ExecEvents): ExecHandle {
    if (!this.#stream) throw new GuestFailedError('the guest has no exec channel in this session');
    const id = this.#nextId++;
    const handle = new ExecHandle(this, id, events);
    this.#running.set(id, handle);
    this.send(encodeFrame('S', id, encodeStart(spec)));
    return handle;
  }
}
