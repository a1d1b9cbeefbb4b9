// Client for qemu-guest-agent (QGA) over the virtio-serial port's host end,
// a stream the launcher already holds (socketpair end or named pipe).
//
// The channel outlives the agent: the guest may not have started its agent
// yet, may reboot, or may restart it, and the host side stays connected all
// the while. Requests written meanwhile are dropped or delivered late, and a
// reply can arrive for a request we gave up on. So the client follows the
// documented discipline: before the first command and after any timeout or
// junk it resynchronises with guest-sync-delimited (a 0xFF byte flushes the
// agent's parser, the reply is prefixed with 0xFF, everything before it is
// stale, and only the reply carrying our random id counts). Commands go one
// at a time: the agent is a plain request/response channel.

import { randomInt } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { GuestFailedError, TimeoutError } from '../errors.ts';
import { DEFAULT_MAX_LINE_BYTES, LineSplitter, LineTooLongError, abortReason, endStream, excerpt, parseJsonObject, type JsonObject } from './json-lines.ts';

export const DEFAULT_GUEST_AGENT_COMMAND_TIMEOUT_MS = 10_000;

const SENTINEL = 0xff;

/** The agent answered with `{"error": {class, desc}}`. */
export class GuestAgentError extends GuestFailedError {
  readonly command: string;
  /** QGA's error class, e.g. `CommandNotFound`, `GenericError`. */
  readonly errorClass: string;
  readonly desc: string;

  constructor(command: string, errorClass: string, desc: string) {
    super(`guest agent refused ${command}: ${desc} (${errorClass})`, { details: { command, class: errorClass, desc } });
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
  }
}

/** The agent sent something that is not a QGA reply (the client resyncs before the next command). */
export class GuestAgentProtocolError extends GuestFailedError {
  constructor(message: string) {
    super(`guest agent protocol error: ${message}`);
  }
}

/** The channel is gone (QEMU exited, or close() was called). */
export class GuestAgentClosedError extends GuestFailedError {
  constructor(reason: string, cause?: unknown) {
    super(`guest agent channel closed: ${reason}`, cause === undefined ? {} : { cause });
  }
}

export interface GuestAgentClientOptions {
  /** Default timeout for each command (and the resync before it, if needed). */
  commandTimeoutMs?: number;
  maxLineBytes?: number;
}

export interface GuestAgentCallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface GuestAgentCommandInfo {
  name: string;
  enabled: boolean;
  'success-response': boolean;
}

export interface GuestAgentInfo {
  version: string;
  supported_commands: GuestAgentCommandInfo[];
}

/** guest-get-osinfo; fields missing from the guest's os-release are absent. */
export interface GuestOsInfo {
  'kernel-release'?: string;
  'kernel-version'?: string;
  machine?: string;
  id?: string;
  name?: string;
  'pretty-name'?: string;
  version?: string;
  'version-id'?: string;
  variant?: string;
  'variant-id'?: string;
}

export interface GuestVcpu {
  'logical-id': number;
  online: boolean;
  'can-offline'?: boolean;
}

export interface GuestExecOptions extends GuestAgentCallOptions {
  /** Replaces the process environment entirely (QGA passes it as envp). */
  env?: Record<string, string>;
  inputData?: Uint8Array | string;
  /** Default true. */
  captureOutput?: boolean;
}

export interface GuestExecStatus {
  exited: boolean;
  exitCode?: number;
  signal?: number;
  stdout: Buffer;
  stderr: Buffer;
  /** The agent dropped part of stdout or stderr (its capture is size-limited). */
  truncated: boolean;
}

export interface GuestRunOptions {
  timeoutMs: number;
  /** First poll delay; grows by half each time up to 500 ms. Default 20 ms. */
  pollMs?: number;
  env?: Record<string, string>;
  inputData?: Uint8Array | string;
  signal?: AbortSignal;
}

export interface GuestRunResult {
  exitCode: number | null;
  signal: number | null;
  stdout: Buffer;
  stderr: Buffer;
  truncated: boolean;
}

export type GuestShutdownMode = 'powerdown' | 'halt' | 'reboot';

/** Decides what to do with each parsed message while a request is in flight. */
interface Waiter {
  onMessage(message: JsonObject): void;
  onJunk(error: GuestAgentProtocolError): void;
  onClose(error: GuestAgentClosedError): void;
}

export class GuestAgentClient {
  readonly commandTimeoutMs: number;
  /** Resolves (never rejects) once the channel is gone. */
  readonly closed: Promise<GuestAgentClosedError>;

  readonly #stream: Duplex;
  readonly #splitter: LineSplitter;
  #queue: Promise<unknown> = Promise.resolve();
  #waiter: Waiter | undefined;
  /** Replies may be stale or partial: resync before the next command. */
  #dirty = true;
  /** Drop every byte until the next 0xFF sentinel. */
  #discarding = true;
  #nextId = 1;
  #closedError: GuestAgentClosedError | undefined;
  #resolveClosed!: (error: GuestAgentClosedError) => void;
  readonly #detach: () => void;

  constructor(stream: Duplex, options: GuestAgentClientOptions = {}) {
    this.#stream = stream;
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_GUEST_AGENT_COMMAND_TIMEOUT_MS;
    this.#splitter = new LineSplitter(options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    const onData = (chunk: Buffer): void => this.#onData(chunk);
    const onEnd = (): void => this.#shutdown('QEMU closed the channel');
    const onError = (error: Error): void => this.#shutdown(`the channel failed (${error.message}); QEMU probably exited`, error);
    const onClose = (): void => this.#shutdown('the channel was closed');
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onClose);
    this.#detach = () => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
      // Keep a listener so a late stream error does not become uncaught.
      stream.on('error', () => {});
    };
    if (stream.destroyed) this.#shutdown('the stream was already closed');
  }

  get isClosed(): boolean {
    return this.#closedError !== undefined;
  }

  /**
   * Resynchronises with the agent (guest-sync-delimited). Rejects with
   * TimeoutError if the agent does not answer; the client stays usable.
   */
  sync(options: GuestAgentCallOptions = {}): Promise<void> {
    return this.#serialize(async () => {
      await this.#sync(deadlineFrom(options.timeoutMs ?? this.commandTimeoutMs), options.signal);
    });
  }

  /**
   * Waits until the guest's agent answers: until it runs, requests are
   * dropped or queued and nothing answers, so sync is retried with a short
   * per-attempt timeout (attemptTimeoutMs, growing to 5 s) until it succeeds,
   * then the agent is pinged. Rejects with TimeoutError after timeoutMs, the
   * signal's reason on abort, or GuestAgentClosedError if QEMU goes away.
   */
  async waitUntilReady(options: { timeoutMs: number; signal?: AbortSignal; attemptTimeoutMs?: number }): Promise<void> {
    const { timeoutMs, signal } = options;
    const deadline = deadlineFrom(timeoutMs);
    const overall = (): TimeoutError => new TimeoutError('the guest agent to answer', timeoutMs, 'the guest may still be booting, or its agent is not running');
    let attemptMs = options.attemptTimeoutMs ?? 1000;
    for (;;) {
      if (signal?.aborted) throw abortReason(signal);
      const remaining = deadline.remaining();
      if (remaining <= 0) throw overall();
      try {
        await this.sync({ timeoutMs: Math.min(attemptMs, remaining), ...(signal === undefined ? {} : { signal }) });
        break;
      } catch (error) {
        if (!(error instanceof TimeoutError)) throw error;
        attemptMs = Math.min(Math.round(attemptMs * 1.5), 5000);
      }
    }
    const remaining = deadline.remaining();
    if (remaining <= 0) throw overall();
    try {
      await this.ping({ timeoutMs: remaining, ...(signal === undefined ? {} : { signal }) });
    } catch (error) {
      throw error instanceof TimeoutError ? overall() : error;
    }
  }

  /**
   * Runs one agent command and returns its `return` value. Rejects with
   * GuestAgentError for an error reply, TimeoutError (the client resyncs
   * before the next command), GuestAgentProtocolError for junk in place of
   * the reply, or GuestAgentClosedError.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, options: GuestAgentCallOptions = {}): Promise<T> {
    return this.#serialize(async () => {
      const deadline = deadlineFrom(options.timeoutMs ?? this.commandTimeoutMs);
      if (this.#dirty) await this.#sync(deadline, options.signal);
      return (await this.#command(command, args, deadline, options.signal)) as T;
    });
  }

  async ping(options?: GuestAgentCallOptions): Promise<void> {
    await this.execute('guest-ping', undefined, options);
  }

  info(options?: GuestAgentCallOptions): Promise<GuestAgentInfo> {
    return this.execute<GuestAgentInfo>('guest-info', undefined, options);
  }

  osInfo(options?: GuestAgentCallOptions): Promise<GuestOsInfo> {
    return this.execute<GuestOsInfo>('guest-get-osinfo', undefined, options);
  }

  vcpus(options?: GuestAgentCallOptions): Promise<GuestVcpu[]> {
    return this.execute<GuestVcpu[]>('guest-get-vcpus', undefined, options);
  }

  /** Starts a process in the guest and returns its pid (for execStatus). */
  async exec(path: string, args: readonly string[] = [], options: GuestExecOptions = {}): Promise<number> {
    const request: Record<string, unknown> = { path, arg: [...args], 'capture-output': options.captureOutput ?? true };
    if (options.env !== undefined) request['env'] = Object.entries(options.env).map(([key, value]) => `${key}=${value}`);
    if (options.inputData !== undefined) request['input-data'] = Buffer.from(options.inputData).toString('base64');
    const result = await this.execute<{ pid?: unknown }>('guest-exec', request, options);
    if (typeof result?.pid !== 'number') throw new GuestAgentProtocolError(`guest-exec returned no pid: ${excerpt(JSON.stringify(result))}`);
    return result.pid;
  }

  /** Polls a process started by exec(); once it has exited the agent forgets it. */
  async execStatus(pid: number, options?: GuestAgentCallOptions): Promise<GuestExecStatus> {
    const raw = await this.execute<Record<string, unknown>>('guest-exec-status', { pid }, options);
    const status: GuestExecStatus = {
      exited: raw['exited'] === true,
      stdout: decodeBase64(raw['out-data']),
      stderr: decodeBase64(raw['err-data']),
      truncated: raw['out-truncated'] === true || raw['err-truncated'] === true,
    };
    if (typeof raw['exitcode'] === 'number') status.exitCode = raw['exitcode'];
    if (typeof raw['signal'] === 'number') status.signal = raw['signal'];
    return status;
  }

  /**
   * exec + execStatus polling until the process exits. On timeout the process
   * may still be running in the guest (QGA cannot kill it).
   */
  async run(path: string, args: readonly string[] = [], options: GuestRunOptions): Promise<GuestRunResult> {
    const { signal } = options;
    const deadline = deadlineFrom(options.timeoutMs);
    const timedOut = (): TimeoutError => new TimeoutError(`guest command ${path}`, options.timeoutMs, 'it may still be running in the guest');
    const callOptions = (): GuestAgentCallOptions => ({
      timeoutMs: Math.max(1, Math.min(deadline.remaining(), this.commandTimeoutMs)),
      ...(signal === undefined ? {} : { signal }),
    });
    const execOptions: GuestExecOptions = callOptions();
    if (options.env !== undefined) execOptions.env = options.env;
    if (options.inputData !== undefined) execOptions.inputData = options.inputData;
    // A command timeout caused by running out of the overall budget is the
    // run's timeout, not the agent's.
    const budget = <T>(promise: Promise<T>): Promise<T> =>
      promise.catch((error: unknown) => {
        throw error instanceof TimeoutError && deadline.remaining() <= 0 ? timedOut() : error;
      });
    const pid = await budget(this.exec(path, args, execOptions));
    let delay = options.pollMs ?? 20;
    for (;;) {
      const status = await budget(this.execStatus(pid, callOptions()));
      if (status.exited) {
        return {
          exitCode: status.exitCode ?? null,
          signal: status.signal ?? null,
          stdout: status.stdout,
          stderr: status.stderr,
          truncated: status.truncated,
        };
      }
      const remaining = deadline.remaining();
      if (remaining <= 0) throw timedOut();
      await sleep(Math.min(delay, remaining), signal);
      delay = Math.min(Math.round(delay * 1.5), 500);
    }
  }

  /**
   * Asks the guest to shut down. The agent sends no reply on success, so this
   * resolves when graceMs pass without an error reply, or when the channel
   * closes (the guest went down); an error reply rejects with GuestAgentError.
   */
  shutdown(mode: GuestShutdownMode = 'powerdown', options: { graceMs?: number; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    return this.#serialize(async () => {
      const { signal } = options;
      if (this.#dirty) await this.#sync(deadlineFrom(options.timeoutMs ?? this.commandTimeoutMs), signal);
      const graceMs = options.graceMs ?? 500;
      try {
        await this.#command('guest-shutdown', { mode }, deadlineFrom(graceMs), signal);
      } catch (error) {
        if (error instanceof TimeoutError || error instanceof GuestAgentClosedError) return;
        throw error;
      } finally {
        // A reply (or the agent restarting) may still come in.
        this.#markDirty();
      }
    });
  }

  /** Ends our side of the stream; pending and later calls reject with GuestAgentClosedError. */
  async close(options: { graceMs?: number } = {}): Promise<void> {
    this.#shutdown('closed by pocketvm');
    await endStream(this.#stream, options.graceMs ?? 1000);
  }

  #serialize<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(() => {
      if (this.#closedError !== undefined) throw this.#closedError;
      return operation();
    });
    this.#queue = result.catch(() => {});
    return result;
  }

  async #sync(deadline: Deadline, signal: AbortSignal | undefined): Promise<void> {
    const id = randomInt(1, 2 ** 47);
    // Everything before the reply's sentinel is stale.
    this.#discarding = true;
    this.#splitter.reset();
    // The request id (echoed by current agents) keeps a stray sync reply from
    // being taken for a later command's id-less reply.
    const request = `${JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id }, id: `pvm-sync-${id}` })}\n`;
    await this.#request(
      Buffer.concat([Buffer.of(SENTINEL), Buffer.from(request)]),
      'guest-sync-delimited',
      deadline,
      signal,
      (message, settle) => {
        // Replies to earlier syncs, errors for the flush byte, anything else: ignore.
        if (message['return'] === id) settle.resolve(undefined);
      },
      // Junk while syncing is expected; wait for the next sentinel.
      () => {},
    );
    this.#dirty = false;
  }

  #command(command: string, args: Record<string, unknown> | undefined, deadline: Deadline, signal: AbortSignal | undefined): Promise<unknown> {
    const id = `pvm-${this.#nextId++}`;
    const request: JsonObject = { execute: command, id };
    if (args !== undefined) request['arguments'] = args;
    return this.#request(
      Buffer.from(`${JSON.stringify(request)}\n`),
      command,
      deadline,
      signal,
      (message, settle) => {
        // An agent that does not echo ids answers in order; one that does
        // lets us also drop replies meant for someone else.
        if (message['id'] !== undefined && message['id'] !== id) return;
        if ('error' in message) {
          const error = message['error'];
          const errorClass = isObject(error) && typeof error['class'] === 'string' ? error['class'] : 'GenericError';
          const desc = isObject(error) && typeof error['desc'] === 'string' ? error['desc'] : JSON.stringify(error);
          settle.reject(new GuestAgentError(command, errorClass, desc));
        } else if ('return' in message) {
          settle.resolve(message['return']);
        }
      },
      (error, settle) => settle.reject(error),
    );
  }

  /** Writes one request and waits for the reply `onMessage` settles on. */
  #request(
    bytes: Buffer,
    what: string,
    deadline: Deadline,
    signal: AbortSignal | undefined,
    onMessage: (message: JsonObject, settle: Settle) => void,
    onJunk: (error: GuestAgentProtocolError, settle: Settle) => void,
  ): Promise<unknown> {
    if (this.#closedError !== undefined) return Promise.reject(this.#closedError);
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    const timeoutMs = deadline.remaining();
    if (timeoutMs <= 0) return Promise.reject(new TimeoutError(`guest agent command ${what}`, deadline.totalMs));
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle: Settle = {
        resolve: (value) => {
          if (finish()) resolve(value);
        },
        reject: (error) => {
          if (finish()) reject(error);
        },
      };
      const finish = (): boolean => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (this.#waiter === waiter) this.#waiter = undefined;
        return true;
      };
      const timer = setTimeout(() => {
        this.#markDirty();
        settle.reject(new TimeoutError(`guest agent command ${what}`, deadline.totalMs, 'the guest agent is not answering; is it running in the guest?'));
      }, timeoutMs);
      const onAbort = (): void => {
        this.#markDirty();
        settle.reject(abortReason(signal));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const waiter: Waiter = {
        onMessage: (message) => onMessage(message, settle),
        onJunk: (error) => onJunk(error, settle),
        onClose: (error) => settle.reject(error),
      };
      this.#waiter = waiter;
      this.#stream.write(bytes);
    });
  }

  #onData(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && this.#closedError === undefined) {
      const sentinel = chunk.indexOf(SENTINEL, offset);
      const end = sentinel === -1 ? chunk.length : sentinel;
      if (!this.#discarding && end > offset) this.#feed(chunk.subarray(offset, end));
      if (sentinel === -1) break;
      // The sentinel resets our parser: what came before it is stale.
      this.#splitter.reset();
      this.#discarding = false;
      offset = sentinel + 1;
    }
  }

  #feed(bytes: Buffer): void {
    let lines: string[];
    try {
      lines = this.#splitter.push(bytes);
    } catch (error) {
      if (!(error instanceof LineTooLongError)) throw error;
      this.#junk(new GuestAgentProtocolError(error.message));
      return;
    }
    for (const line of lines) {
      if (this.#discarding) return;
      if (line.trim() === '') continue;
      let message: JsonObject;
      try {
        message = parseJsonObject(line);
      } catch {
        this.#junk(new GuestAgentProtocolError(`the agent sent invalid JSON: ${excerpt(line)}`));
        continue;
      }
      // Nobody waiting: a late reply to something we gave up on.
      this.#waiter?.onMessage(message);
    }
  }

  #junk(error: GuestAgentProtocolError): void {
    this.#markDirty();
    this.#waiter?.onJunk(error);
  }

  #markDirty(): void {
    this.#dirty = true;
    this.#discarding = true;
    this.#splitter.reset();
  }

  #shutdown(reason: string, cause?: unknown): void {
    if (this.#closedError !== undefined) return;
    const error = new GuestAgentClosedError(reason, cause);
    this.#closedError = error;
    this.#detach();
    this.#splitter.reset();
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.onClose(error);
    this.#resolveClosed(error);
  }
}

interface Settle {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

interface Deadline {
  totalMs: number;
  remaining(): number;
}

function deadlineFrom(totalMs: number): Deadline {
  const end = performance.now() + totalMs;
  return { totalMs, remaining: () => Math.max(0, Math.round(end - performance.now())) };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function decodeBase64(value: unknown): Buffer {
  return typeof value === 'string' ? Buffer.from(value, 'base64') : Buffer.alloc(0);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
