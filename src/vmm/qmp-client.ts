// Client for the QEMU Machine Protocol on a stream the launcher already holds
// (a socketpair end inherited by QEMU as `-chardev socket,fd=N`, or a named
// pipe on Windows). It never opens anything itself: control channels must be
// reachable by the launcher alone.

import type { Duplex } from 'node:stream';
import { GuestFailedError, PocketError, TimeoutError } from '../errors.ts';
import { DEFAULT_MAX_LINE_BYTES, LineSplitter, abortReason, endStream, excerpt, parseJsonObject, type JsonObject } from './json-lines.ts';

export const DEFAULT_QMP_COMMAND_TIMEOUT_MS = 10_000;
export const DEFAULT_QMP_CONNECT_TIMEOUT_MS = 10_000;

/** QEMU answered a command with `{"error": {class, desc}}`. */
export class QmpCommandError extends GuestFailedError {
  readonly command: string;
  /** QMP's error class, e.g. `CommandNotFound`, `GenericError`. */
  readonly errorClass: string;
  readonly desc: string;

  constructor(command: string, errorClass: string, desc: string) {
    super(`QEMU refused ${command}: ${desc} (${errorClass})`, { details: { command, class: errorClass, desc } });
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
  }
}

/** QEMU sent something that is not QMP: bad JSON, an over-long line, a wrong greeting. */
export class QmpProtocolError extends GuestFailedError {
  constructor(message: string) {
    super(`QMP protocol error: ${message}`, { hint: 'QEMU or the channel misbehaved; the session log on the stick has the details' });
  }
}

/**
 * The QMP connection is gone. Every pending and later command rejects with
 * this; `cause` holds the underlying stream or protocol error, if any.
 */
export class QmpClosedError extends GuestFailedError {
  constructor(reason: string, cause?: unknown) {
    super(`QMP connection closed: ${reason}`, cause === undefined ? {} : { cause });
  }
}

export interface QmpVersionTriple {
  major: number;
  minor: number;
  micro: number;
}

export interface QmpVersion {
  qemu: QmpVersionTriple;
  package: string;
}

export interface QmpGreeting {
  version: QmpVersion;
  capabilities: string[];
}

export interface QmpEvent<D = Record<string, unknown>> {
  event: string;
  data: D;
  timestamp: { seconds: number; microseconds: number };
}

export interface QmpStatus {
  /** RunState name: `prelaunch`, `paused`, `running`, `shutdown`, `inmigrate`, … */
  status: string;
  running: boolean;
  singlestep?: boolean;
}

export interface QmpExecuteOptions {
  /** Default: the client's commandTimeoutMs (10 s unless set at connect). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * Key material for one string argument (`arguments[field]`), as bytes: it
   * goes into the command's bytes on the wire and nowhere else (no JSON
   * string of it is ever made), and that wire buffer is zeroed once QEMU's
   * socket has taken it. The caller zeroes `bytes`. Printable ASCII only,
   * no quote or backslash (e.g. hexBytes of a key).
   */
  secret?: { field: string; bytes: Buffer };
}

export interface QmpConnectOptions {
  /** How long to wait for the greeting and capabilities negotiation. */
  timeoutMs?: number;
  /** Default timeout for execute(). */
  commandTimeoutMs?: number;
  maxLineBytes?: number;
  signal?: AbortSignal;
}

export interface QmpWaitOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

export type QmpEventPredicate = (event: QmpEvent) => boolean;
export type QmpEventListener = (event: QmpEvent) => void;

/**
 * Matching events collected from the moment watch() was called, so an event
 * that fires before anyone awaits it is not lost. Close it when done.
 */
export class QmpEventWatch {
  readonly #queue: QmpEvent[] = [];
  #waiter: { resolve: (event: QmpEvent) => void; reject: (error: Error) => void } | undefined;
  #closedError: Error | undefined;
  readonly #detach: () => void;
  readonly #description: string;

  /** @internal use QmpClient.watch() */
  constructor(client: QmpClient, names: readonly string[], predicate: QmpEventPredicate | undefined) {
    const wanted = new Set(names);
    this.#description = `QMP event ${names.join('/')}`;
    const offEvent = client.onEvent((event) => {
      if (!wanted.has(event.event)) return;
      if (predicate !== undefined && !predicate(event)) return;
      const waiter = this.#waiter;
      if (waiter !== undefined) {
        this.#waiter = undefined;
        waiter.resolve(event);
      } else {
        this.#queue.push(event);
      }
    });
    const offClose = client.onClose((error) => this.#fail(error));
    this.#detach = () => {
      offEvent();
      offClose();
    };
  }

  /** Events that arrived and were not yet taken by next(). */
  get pending(): number {
    return this.#queue.length;
  }

  /**
   * The next matching event: one already collected, or the next to arrive.
   * Rejects with TimeoutError, the signal's reason, or QmpClosedError once the
   * connection is gone and nothing collected is left.
   */
  next(options: QmpWaitOptions): Promise<QmpEvent> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#closedError !== undefined) return Promise.reject(this.#closedError);
    if (this.#waiter !== undefined) return Promise.reject(new Error('QmpEventWatch.next() is already waiting'));
    const { timeoutMs, signal } = options;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<QmpEvent>((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#waiter = undefined;
      };
      const timer = setTimeout(() => {
        finish();
        reject(new TimeoutError(`waiting for ${this.#description}`, timeoutMs));
      }, timeoutMs);
      const onAbort = (): void => {
        finish();
        reject(abortReason(signal));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiter = {
        resolve: (event) => {
          finish();
          resolve(event);
        },
        reject: (error) => {
          finish();
          reject(error);
        },
      };
    });
  }

  /** Stops collecting; a waiting next() rejects. */
  close(): void {
    this.#detach();
    this.#fail(new Error(`${this.#description} watch was closed`));
  }

  #fail(error: Error): void {
    if (this.#closedError === undefined) this.#closedError = error;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(error);
  }
}

interface PendingCommand {
  command: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

export class QmpClient {
  readonly greeting: QmpGreeting;
  readonly commandTimeoutMs: number;
  /** Resolves (never rejects) once the connection is gone, with the error pending commands got. */
  readonly closed: Promise<QmpClosedError>;

  readonly #stream: Duplex;
  readonly #pending = new Map<string, PendingCommand>();
  readonly #eventListeners = new Set<QmpEventListener>();
  readonly #closeListeners = new Set<(error: QmpClosedError) => void>();
  #nextId = 1;
  #closedError: QmpClosedError | undefined;
  #resolveClosed!: (error: QmpClosedError) => void;
  #detachStream: () => void = () => {};

  /** Use QmpClient.connect(). */
  private constructor(stream: Duplex, greeting: QmpGreeting, commandTimeoutMs: number) {
    this.#stream = stream;
    this.greeting = greeting;
    this.commandTimeoutMs = commandTimeoutMs;
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  /**
   * Reads the greeting, negotiates capabilities and resolves in command mode.
   * On failure the stream is destroyed: a half-negotiated QMP channel cannot
   * be reused.
   */
  static async connect(stream: Duplex, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_QMP_CONNECT_TIMEOUT_MS;
    const splitter = new LineSplitter(options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    const { signal } = options;
    // Everything is read by one data handler for the life of the stream; it
    // first feeds the greeting, then hands lines to the client.
    let client: QmpClient | undefined;
    let onGreeting: ((line: string) => void) | undefined;
    let onStreamGone: ((error: Error) => void) | undefined;

    const onData = (chunk: Buffer): void => {
      let lines: string[];
      try {
        lines = splitter.push(chunk);
      } catch (error) {
        const reason = new QmpProtocolError((error as Error).message);
        if (client !== undefined) client.#shutdown(reason.message, reason);
        else onStreamGone?.(reason);
        return;
      }
      for (const line of lines) {
        if (client !== undefined) {
          if (client.#closedError !== undefined) return;
          client.#handleLine(line);
        } else if (onGreeting !== undefined) {
          onGreeting(line);
        }
      }
    };
    const onEnd = (): void => gone(new Error('QEMU closed the channel'));
    const onError = (error: Error): void => gone(new Error(`the channel failed (${error.message}); QEMU probably exited`, { cause: error }));
    const onStreamClose = (): void => gone(new Error('the channel was closed'));
    const gone = (error: Error): void => {
      if (client !== undefined) client.#shutdown(error.message, error);
      else onStreamGone?.(error);
    };
    const detach = (): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onStreamClose);
    };

    const greeting = await new Promise<QmpGreeting>((resolve, reject) => {
      const fail = (error: Error): void => {
        cleanup();
        detach();
        stream.destroy();
        reject(error);
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        onGreeting = undefined;
        onStreamGone = undefined;
      };
      const timer = setTimeout(() => fail(new TimeoutError('QMP greeting from QEMU', timeoutMs, 'QEMU may have hung while starting; see its log')), timeoutMs);
      const onAbort = (): void => fail(abortReason(signal));
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      onStreamGone = (error) => fail(error instanceof PocketError ? error : new QmpClosedError(`before the greeting: ${error.message}`, error));
      onGreeting = (line) => {
        let message: JsonObject;
        try {
          message = parseJsonObject(line);
        } catch {
          fail(new QmpProtocolError(`greeting is not JSON: ${excerpt(line)}`));
          return;
        }
        const body = message['QMP'];
        if (!isObject(body)) {
          fail(new QmpProtocolError(`expected a greeting, got ${excerpt(line)}`));
          return;
        }
        cleanup();
        resolve(toGreeting(body));
      };
      stream.on('data', onData);
      stream.on('end', onEnd);
      stream.on('error', onError);
      stream.on('close', onStreamClose);
      if (stream.destroyed) onStreamGone(new Error('the stream was already closed'));
    });

    client = new QmpClient(stream, greeting, options.commandTimeoutMs ?? DEFAULT_QMP_COMMAND_TIMEOUT_MS);
    client.#detachStream = detach;
    try {
      await client.execute('qmp_capabilities', undefined, { timeoutMs, ...(signal === undefined ? {} : { signal }) });
    } catch (error) {
      client.#shutdown('capabilities negotiation failed', error);
      stream.destroy();
      throw error;
    }
    return client;
  }

  get isClosed(): boolean {
    return this.#closedError !== undefined;
  }

  /**
   * Runs one QMP command. Rejects with QmpCommandError for an error reply,
   * TimeoutError after timeoutMs (the client stays usable; a late reply is
   * dropped), or QmpClosedError if the connection goes away first.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, options: QmpExecuteOptions = {}): Promise<T> {
    if (this.#closedError !== undefined) return Promise.reject(this.#closedError);
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    const timeoutMs = options.timeoutMs ?? this.commandTimeoutMs;
    const id = `pvm-${this.#nextId++}`;
    const request: JsonObject = { execute: command, id };
    const secret = options.secret;
    const placeholder = `pvm-secret-${id}`;
    if (secret && !secret.bytes.every((b) => b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c))
      return Promise.reject(new Error('a QMP secret must be printable ASCII without quotes or backslashes'));
    if (args !== undefined || secret) request['arguments'] = secret ? { ...args, [secret.field]: placeholder } : args!;

    return new Promise<T>((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#pending.delete(id);
      };
      const timer = setTimeout(() => {
        finish();
        reject(new TimeoutError(`QMP command ${command}`, timeoutMs, 'QEMU is not answering its monitor'));
      }, timeoutMs);
      const onAbort = (): void => {
        finish();
        reject(abortReason(signal));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(id, {
        command,
        resolve: (value) => {
          finish();
          resolve(value as T);
        },
        reject: (error) => {
          finish();
          reject(error);
        },
      });
      const line = `${JSON.stringify(request)}\n`;
      if (!secret) {
        this.#stream.write(line);
        return;
      }
      const at = line.indexOf(placeholder);
      const wire = Buffer.concat([Buffer.from(line.slice(0, at)), secret.bytes, Buffer.from(line.slice(at + placeholder.length))]);
      this.#stream.write(wire, () => wire.fill(0));
    });
  }

  /** Subscribes to every event; returns the unsubscribe function. */
  onEvent(listener: QmpEventListener): () => void {
    this.#eventListeners.add(listener);
    return () => this.#eventListeners.delete(listener);
  }

  /** Called once when the connection goes away (at once if it already has). */
  onClose(listener: (error: QmpClosedError) => void): () => void {
    if (this.#closedError !== undefined) {
      listener(this.#closedError);
      return () => {};
    }
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }

  /**
   * Starts collecting events named `name` (one or several) that pass
   * `predicate`. Call before triggering what produces them:
   *
   *     const stopped = qmp.watch('STOP');
   *     try { await qmp.stop(); await stopped.next({ timeoutMs: 5000 }); } finally { stopped.close(); }
   */
  watch(name: string | readonly string[], options: { predicate?: QmpEventPredicate } = {}): QmpEventWatch {
    return new QmpEventWatch(this, typeof name === 'string' ? [name] : name, options.predicate);
  }

  /**
   * Waits for the next matching event from now on. The subscription starts
   * synchronously, so `const p = qmp.waitForEvent(...); await qmp.stop(); await p;`
   * cannot miss it (but prefer watch() when the trigger can throw, so the
   * wait does not end up an unhandled rejection).
   */
  async waitForEvent(name: string | readonly string[], options: QmpWaitOptions & { predicate?: QmpEventPredicate }): Promise<QmpEvent> {
    const watch = this.watch(name, options.predicate === undefined ? {} : { predicate: options.predicate });
    try {
      return await watch.next(options);
    } finally {
      watch.close();
    }
  }

  async queryStatus(options?: QmpExecuteOptions): Promise<QmpStatus> {
    return this.execute<QmpStatus>('query-status', undefined, options);
  }

  async queryVersion(options?: QmpExecuteOptions): Promise<QmpVersion> {
    return this.execute<QmpVersion>('query-version', undefined, options);
  }

  async cont(options?: QmpExecuteOptions): Promise<void> {
    await this.execute('cont', undefined, options);
  }

  async stop(options?: QmpExecuteOptions): Promise<void> {
    await this.execute('stop', undefined, options);
  }

  /** Asks the guest to power down (ACPI); the guest may ignore it. */
  async systemPowerdown(options?: QmpExecuteOptions): Promise<void> {
    await this.execute('system_powerdown', undefined, options);
  }

  /**
   * Makes QEMU exit. QEMU may close the channel before or after replying;
   * either counts as success once the command was sent. Await `closed` to
   * know the channel is gone.
   */
  async quit(options?: QmpExecuteOptions): Promise<void> {
    if (this.#closedError !== undefined) throw this.#closedError;
    try {
      await this.execute('quit', undefined, options);
    } catch (error) {
      if (error instanceof QmpClosedError) return;
      throw error;
    }
  }

  /**
   * Ends our side of the stream; pending commands reject with QmpClosedError.
   * Resolves once the stream has closed (destroying it after graceMs).
   */
  async close(options: { graceMs?: number } = {}): Promise<void> {
    this.#shutdown('closed by pocketvm');
    await endStream(this.#stream, options.graceMs ?? 1000);
  }

  #handleLine(line: string): void {
    if (line.trim() === '') return;
    let message: JsonObject;
    try {
      message = parseJsonObject(line);
    } catch {
      this.#protocolError(`QEMU sent invalid JSON: ${excerpt(line)}`);
      return;
    }
    if (typeof message['event'] === 'string') {
      this.#emitEvent(message);
      return;
    }
    if (!('return' in message) && !('error' in message)) {
      this.#protocolError(`unexpected message: ${excerpt(line)}`);
      return;
    }
    const pending = this.#takePending(message['id']);
    if (pending === undefined) return; // reply to a command that already timed out
    const error = message['error'];
    if (error !== undefined) {
      const errorClass = isObject(error) && typeof error['class'] === 'string' ? error['class'] : 'GenericError';
      const desc = isObject(error) && typeof error['desc'] === 'string' ? error['desc'] : JSON.stringify(error);
      pending.reject(new QmpCommandError(pending.command, errorClass, desc));
    } else {
      pending.resolve(message['return']);
    }
  }

  #takePending(id: unknown): PendingCommand | undefined {
    if (typeof id === 'string') return this.#pending.get(id);
    // QMP answers in order; a reply without an id means QEMU could not read
    // the id from the request, so it belongs to the oldest command in flight.
    if (id === undefined) return this.#pending.values().next().value;
    return undefined;
  }

  #emitEvent(message: JsonObject): void {
    const timestamp = isObject(message['timestamp']) ? message['timestamp'] : {};
    const event: QmpEvent = {
      event: message['event'] as string,
      data: isObject(message['data']) ? message['data'] : {},
      timestamp: {
        seconds: typeof timestamp['seconds'] === 'number' ? timestamp['seconds'] : 0,
        microseconds: typeof timestamp['microseconds'] === 'number' ? timestamp['microseconds'] : 0,
      },
    };
    for (const listener of [...this.#eventListeners]) {
      try {
        listener(event);
      } catch (error) {
        // A listener's bug must not break line parsing; surface it the way an
        // EventEmitter listener's throw would.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  #protocolError(message: string): void {
    const error = new QmpProtocolError(message);
    this.#shutdown(error.message, error);
    this.#stream.destroy();
  }

  #shutdown(reason: string, cause?: unknown): void {
    if (this.#closedError !== undefined) return;
    const closedError = new QmpClosedError(reason, cause);
    this.#closedError = closedError;
    this.#detachStream();
    // Keep a listener so a late stream error does not become uncaught.
    this.#stream.on('error', () => {});
    for (const pending of [...this.#pending.values()]) pending.reject(closedError);
    this.#pending.clear();
    for (const listener of [...this.#closeListeners]) listener(closedError);
    this.#closeListeners.clear();
    this.#resolveClosed(closedError);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function toGreeting(body: Record<string, unknown>): QmpGreeting {
  const version = isObject(body['version']) ? body['version'] : {};
  const qemu = isObject(version['qemu']) ? version['qemu'] : {};
  const num = (value: unknown): number => (typeof value === 'number' ? value : 0);
  return {
    version: {
      qemu: { major: num(qemu['major']), minor: num(qemu['minor']), micro: num(qemu['micro']) },
      package: typeof version['package'] === 'string' ? version['package'] : '',
    },
    capabilities: Array.isArray(body['capabilities']) ? body['capabilities'].filter((c) => typeof c === 'string') : [],
  };
}
