// Zones' `ready` for a guest (`launcher guest ready NAME`): the session
// process has opened the platform — QEMU started paused (-S), the user's disk
// attached, the registry, namespace and exec channels served — and holds the
// vCPUs stopped until someone asks for the boot. Meanwhile this small control
// server stands in for the session's own (src/session/control-server.ts, the
// same protocol and token rule) at the address the stick lock names:
//
//   boot            continue the guest; answered once it is running (the session's status)
//   stop (halt)     end QEMU now; the launch then walks its teardown back
//   status          the held guest, for `launcher status`
//   console-stream  the serial console (src/session/console-relay.ts)
//
// Once the guest runs, the session's own control server replaces it in the lock.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { asPocketError, PocketError, UsageError } from '../errors.ts';
import type { HostAdapter } from '../hostprobe/host-adapter.ts';
import type { ControlResponse } from '../session/control-protocol.ts';
import type { ControlAddress, StickLock } from '../stick/lock.ts';
import type { ConsoleTap } from '../vmm/console-tap.ts';
import { failpoint } from '../primitives/failpoint.ts';
import { relayConsole } from '../session/console-relay.ts';

/** What the launch hands over while the guest is held (src/vmm/machine.ts, `hold`). */
export interface HeldGuest {
  console: ConsoleTap;
  kill: () => void;
  lock: StickLock;
}

/** The held guest was halted instead of booted: the launch ends with this (not a failure of the boot). */
export class HaltedWhileReady extends PocketError {
  constructor(guest: string) {
    super('interrupted', `${guest} was halted while ready: QEMU is stopped and the stick released`);
  }
}

export class ReadyGate {
  readonly #guest: string;
  readonly #host: HostAdapter;
  #server: Server | undefined;
  #address: ControlAddress | undefined;
  #release: (() => void) | undefined;
  #refuse: ((error: Error) => void) | undefined;
  /** `boot` requests waiting for the guest to run. */
  #waiting: Socket[] = [];
  #since = 0;

  constructor(guest: string, host: HostAdapter) {
    this.#guest = guest;
    this.#host = host;
  }

  /** The launch's `hold`: serves until `boot` (resolves) or `stop` (rejects with HaltedWhileReady). */
  async hold(held: HeldGuest, onHeld: () => void): Promise<void> {
    const address: ControlAddress = { ...(await this.#host.controlEndpoint()), token: randomBytes(24).toString('hex') };
    const released = new Promise<void>((resolve, reject) => {
      this.#release = resolve;
      this.#refuse = reject;
    });
    const server = createServer((socket) => this.#serve(held, address, socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(address.path, () => resolve());
    });
    server.unref();
    this.#server = server;
    this.#address = address;
    this.#since = Date.now();
    await held.lock.update({ control: address });
    failpoint('ready:held');
    onHeld();
    await released;
  }

  #serve(held: HeldGuest, address: ControlAddress, socket: Socket): void {
    let buffer = Buffer.alloc(0);
    const reply = (response: ControlResponse<unknown>) => socket.end(`${JSON.stringify(response)}\n`);
    socket.on('error', () => {});
    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (buffer.length > 1 << 20) return void socket.destroy();
      const newline = buffer.indexOf(0x0a);
      if (newline < 0) return;
      socket.off('data', onData);
      let request: { op?: unknown; token?: unknown; force?: unknown };
      try {
        request = JSON.parse(buffer.subarray(0, newline).toString('utf8')) as typeof request;
      } catch {
        return reply({ ok: false, error: { exit: 'usage', message: 'malformed control request' } });
      }
      const token = typeof request.token === 'string' ? Buffer.from(request.token) : Buffer.alloc(0);
      if (token.length !== address.token.length || !timingSafeEqual(token, Buffer.from(address.token)))
        return reply({ ok: false, error: { exit: 'usage', message: 'control request refused: wrong session token' } });
      switch (request.op) {
        case 'boot':
          failpoint('boot:released');
          this.#waiting.push(socket);
          this.#release?.();
          return;
        case 'stop':
          this.#refuse?.(new HaltedWhileReady(this.#guest));
          held.kill();
          return reply({ ok: true, result: { step: 'kill', ms: 0, halted: true } });
        case 'status':
          return reply({
            ok: true,
            result: { guest: this.#guest, state: 'held', pid: process.pid, heldSeconds: Math.round((Date.now() - this.#since) / 1000) },
          });
        case 'console-stream':
          return relayConsole(held.console, socket, buffer.subarray(newline + 1));
        default: {
          const failure = new UsageError(`${this.#guest} is ready, not booted: ${String(request.op)} needs it running`, `launcher guest boot ${this.#guest}`);
          return reply({ ok: false, error: { exit: 'guestState', message: failure.message, ...(failure.hint ? { hint: failure.hint } : {}) } });
        }
      }
    };
    socket.on('data', onData);
  }

  /** The guest runs (or failed to): answer the `boot` requests and stop serving. */
  async close(outcome: { ok: true; result: unknown } | { ok: false; error: unknown }): Promise<void> {
    const response: ControlResponse<unknown> = outcome.ok
      ? outcome
      : (() => {
          const failure = asPocketError(outcome.error);
          return { ok: false as const, error: { exit: failure.exit, message: failure.message, ...(failure.hint ? { hint: failure.hint } : {}) } };
        })();
    for (const socket of this.#waiting.splice(0)) socket.end(`${JSON.stringify(response)}\n`);
    this.#server?.close();
    this.#server = undefined;
    if (this.#address?.privateDir) await rm(this.#address.privateDir, { recursive: true, force: true }).catch(() => {});
  }
}
