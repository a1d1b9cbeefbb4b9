// One boot attempt of one guest, and the running machine it yields.
//
// Start QEMU paused → QMP up → attach what must be attached → cont → the
// guest's first console byte (sign of life) → the guest agent answers: that is
// "ready". Each wait races QEMU's exit, so a crash is reported at once with
// QEMU's own last words instead of after a timeout.
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { GuestFailedError, PocketError, TimeoutError } from '../errors.ts';
import type { HostPlatform } from '../platform/host-platform.ts';
import { ConsoleTap } from './console-tap.ts';
import { GuestAgentClient } from './guest-agent-client.ts';
import { GuestLife, watchGuestLife } from './guest-life.ts';
import type { GuestRamFile } from './guest-ram.ts';
import { AGENT_PORT_ID, type MachineSpec } from './machine-spec.ts';
import { buildQemuArgs } from './qemu-args.ts';
import { nextFreeFd, type QemuExit, QemuProcess } from './qemu-process.ts';
import { QmpClient } from './qmp-client.ts';
import { type ShutdownResult, runShutdownLadder, type ShutdownTimeouts } from './shutdown-ladder.ts';

export type MachineState = 'starting' | 'booting' | 'ready' | 'stopping' | 'stopped' | 'crashed';

export interface BootTimings {
  /** Milliseconds from spawn to each milestone. */
  qmpMs: number;
  contMs: number;
  signOfLifeMs: number;
  readyMs: number;
}

export interface BootAttemptOptions {
  spec: MachineSpec;
  binary: string;
  /** Arguments before QEMU's own and extra environment (a bundled QEMU's loader). */
  binaryPrefixArgs?: string[];
  binaryEnv?: Record<string, string>;
  host: HostPlatform;
  /**
   * Guest RAM in this file (QEMU inherits its descriptor after the
   * channels'); the caller closes it once QEMU is gone.
   */
  guestRam?: GuestRamFile;
  /**
   * Who writes guest RAM and must hear of resets, power-offs and suspends
   * (src/vmm/guest-life.ts); the channels opened in `attach` join it.
   */
  life?: GuestLife;
  logs: { qemu: string; console: string };
  /** No console byte within this long after `cont` means the accelerator hangs. */
  signOfLifeTimeoutMs: number;
  readyTimeoutMs: number;
  /**
   * Runs while the vCPUs are stopped: disks, keys and channels attach here.
   * `channels` are the launcher's ends of MachineChannels.extra.
   */
  attach?: (qmp: QmpClient, channels: Readonly<Record<string, Duplex>>) => Promise<void>;
  /**
   * `attach` loaded a saved state (MachineSpec.incoming): the guest is past
   * its boot, so no console byte or agent-port event will come; ready is the
   * agent answering.
   */
  resumed?: boolean;
  /**
   * Runs after `attach`, the vCPUs still stopped: zones' `ready` (the
   * platform in place, the guest not booted) lasts until it resolves; then
   * `cont`. The boot's timings start again when it resolves.
   */
  hold?: (held: { qmp: QmpClient; console: ConsoleTap; kill: () => void }) => Promise<void>;
  signal?: AbortSignal;
}

/** Why an attempt failed, in the terms the accelerator fallback decides on. */
export class BootAttemptError extends GuestFailedError {
  readonly reason: 'exited' | 'no-sign-of-life' | 'not-ready';
  constructor(reason: BootAttemptError['reason'], message: string, details: Record<string, unknown>) {
    super(message, { details, hint: typeof details['log'] === 'string' ? `QEMU's log: ${details['log']}` : undefined });
    this.reason = reason;
  }
}

class QemuExitedDuringBoot extends Error {
  readonly exit: QemuExit;
  constructor(exit: QemuExit) {
    super('QEMU exited');
    this.exit = exit;
  }
}

export class Machine extends EventEmitter<{ state: [MachineState]; exit: [QemuExit] }> {
  readonly spec: MachineSpec;
  readonly process: QemuProcess;
  readonly qmp: QmpClient;
  readonly agent: GuestAgentClient;
  readonly console: ConsoleTap;
  readonly timings: BootTimings;
  readonly logs: { qemu: string; console: string };
  /** Resets, power-offs and suspends, told to what writes guest RAM. */
  readonly life: GuestLife;
  readonly #channels: Readonly<Record<string, Duplex>>;
  #state: MachineState = 'ready';

  private constructor(init: {
    spec: MachineSpec;
    process: QemuProcess;
    qmp: QmpClient;
    agent: GuestAgentClient;
    console: ConsoleTap;
    timings: BootTimings;
    logs: { qemu: string; console: string };
    life: GuestLife;
    channels: Readonly<Record<string, Duplex>>;
  }) {
    super();
    this.spec = init.spec;
    this.process = init.process;
    this.qmp = init.qmp;
    this.agent = init.agent;
    this.console = init.console;
    this.timings = init.timings;
    this.logs = init.logs;
    this.life = init.life;
    this.#channels = init.channels;
    // A SHUTDOWN event means QEMU is ending on purpose (the guest powered
    // off, or a quit); an exit without one is a crash. A guest reset is
    // reported as SHUTDOWN too (GUEST_LIFE_ACTIONS), and QEMU goes on.
    let orderly = false;
    this.qmp.onEvent((event) => {
      if (event.event === 'SHUTDOWN' && event.data['reason'] !== 'guest-reset') orderly = true;
    });
    void this.process.exited.then((exit) => {
      this.#setState(orderly || this.#state === 'stopping' || this.#state === 'stopped' ? 'stopped' : 'crashed');
      this.emit('exit', exit);
    });
  }

  /** The launcher's end of an extra channel (MachineChannels.extra). */
  channel(id: string): Duplex {
    const stream = this.#channels[id];
    if (!stream) throw new Error(`the machine has no channel ${id}`);
    return stream;
  }

  get state(): MachineState {
    return this.#state;
  }

  #setState(state: MachineState): void {
    this.#state = state;
    this.emit('state', state);
  }

  static async boot(options: BootAttemptOptions): Promise<Machine> {
    // Cancelled before this attempt started: its abort event has already fired.
    if (options.signal?.aborted) throw new PocketError('interrupted', 'interrupted before the guest was ready');
    // Only descriptor channels pass QEMU further descriptors (QemuProcess.start): else ordinary RAM.
    const ramFd = options.spec.channels.qmp.kind === 'fd' ? options.guestRam?.fd : undefined;
    const ramChildFd = nextFreeFd(options.spec.channels);
    const spec: MachineSpec = ramFd === undefined ? options.spec : { ...options.spec, ramFile: { fd: ramChildFd } };
    let started = performance.now();
    const since = () => Math.round(performance.now() - started);
    const proc = QemuProcess.start({
      binary: options.binary,
      args: [...(options.binaryPrefixArgs ?? []), ...buildQemuArgs(spec)],
      env: options.binaryEnv ?? {},
      channels: spec.channels,
      ...(ramFd === undefined ? {} : { inheritFds: { [ramChildFd]: ramFd } }),
      host: options.host,
      logFile: options.logs.qemu,
    });
    proc.note(`boot attempt: accelerator ${spec.accelerator}, ${spec.memoryMiB} MiB${ramFd === undefined ? '' : ' (shared RAM file)'}, ${spec.cpus} vCPU`);
    const exited = proc.exited.then((exit) => {
      throw new QemuExitedDuringBoot(exit);
    });
    exited.catch(() => {});
    const failure = (reason: BootAttemptError['reason'], message: string) =>
      new BootAttemptError(reason, message, { accelerator: spec.accelerator, stderr: proc.stderrTail(), log: options.logs.qemu });
    const abort = () => proc.kill();
    options.signal?.addEventListener('abort', abort, { once: true });

    try {
      const streams = await Promise.race([proc.channels(spec.channels), exited]);
      const consoleTap = new ConsoleTap(streams.console, options.logs.console);
      const agent = new GuestAgentClient(streams.agent);
      const qmp = await Promise.race([QmpClient.connect(streams.qmp, { timeoutMs: 15_000 }), exited]);
      const qmpMs = since();
      // Before anything can run: the guest's resets and power-offs stop it until what writes its RAM is retired.
      const life = options.life ?? new GuestLife();
      watchGuestLife(qmp, life, (message) => proc.note(message));
      // QEMU reports the moment the guest opens the agent's port: syncing
      // then, rather than polling blind, saves up to a retry interval.
      const agentPortOpened = qmp.watch('VSERPORT_CHANGE', { predicate: (event) => event.data['id'] === AGENT_PORT_ID && event.data['open'] === true });
      if (options.attach) await Promise.race([options.attach(qmp, streams.extra), exited]);
      if (options.hold) {
        await Promise.race([options.hold({ qmp, console: consoleTap, kill: () => proc.kill() }), exited]);
        started = performance.now();
      }
      await Promise.race([qmp.cont(), exited]);
      const contMs = since();

      const lifeTimer = new Promise<'timeout'>((resolve) => setTimeout(resolve, options.signOfLifeTimeoutMs, 'timeout').unref());
      if (!options.resumed && (await Promise.race([consoleTap.signOfLife(), lifeTimer, exited])) === 'timeout') {
        proc.kill();
        throw failure('no-sign-of-life', `the guest showed no sign of life within ${options.signOfLifeTimeoutMs / 1000} s under ${spec.accelerator}`);
      }
      const signOfLifeMs = since();

      const remaining = () => Math.max(1_000, options.readyTimeoutMs - since());
      try {
        if (!options.resumed) await Promise.race([agentPortOpened.next({ timeoutMs: remaining() }), exited]);
        agentPortOpened.close();
        await Promise.race([
          agent.waitUntilReady({ timeoutMs: remaining(), attemptTimeoutMs: 250, ...(options.signal ? { signal: options.signal } : {}) }),
          exited,
        ]);
      } catch (error) {
        if (error instanceof TimeoutError) {
          proc.kill();
          throw failure(
            'not-ready',
            `the guest agent did not answer within ${Math.round(options.readyTimeoutMs / 1000)} s (console log: ${options.logs.console})`,
          );
        }
        throw error;
      }
      const timings: BootTimings = { qmpMs, contMs, signOfLifeMs, readyMs: since() };
      proc.note(`ready after ${timings.readyMs} ms`);
      return new Machine({ spec, process: proc, qmp, agent, console: consoleTap, timings, logs: options.logs, life, channels: streams.extra });
    } catch (error) {
      if (options.signal?.aborted) {
        proc.kill();
        await proc.exited;
        throw new PocketError('interrupted', 'interrupted before the guest was ready; QEMU was stopped');
      }
      // A channel closing is usually QEMU dying: give its exit a moment to
      // land so the person hears QEMU's own last words, not "connection reset".
      const exit =
        error instanceof QemuExitedDuringBoot ? error.exit : await Promise.race([proc.exited, new Promise<undefined>((r) => setTimeout(r, 1_000, undefined))]);
      proc.kill();
      if (exit && !(error instanceof BootAttemptError)) {
        await proc.exited;
        const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
        const last = proc.stderrTail().at(-1);
        throw failure('exited', `QEMU ${how} during boot under ${spec.accelerator}${last ? `: ${last}` : ''}`);
      }
      throw error;
    } finally {
      options.signal?.removeEventListener('abort', abort);
    }
  }

  /** Agent → ACPI → QMP quit → kill, each bounded; says which step ended it. */
  async shutdown(timeouts?: Partial<ShutdownTimeouts>, options: { from?: ShutdownResult['step'] } = {}): Promise<ShutdownResult> {
    if (!this.process.running) return { step: 'already-stopped', ms: 0, attempts: [] };
    this.#setState('stopping');
    const result = await runShutdownLadder(this, timeouts, options.from);
    this.#setState('stopped');
    return result;
  }

  kill(): void {
    this.#setState('stopping');
    this.process.kill();
  }
}
