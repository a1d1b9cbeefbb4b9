// One QEMU process: spawned through execa with its control channels as extra
// stdio entries. libuv makes each such entry a UNIX socketpair, so QMP, the
// guest agent and the console exist only as descriptors shared by the launcher
// and QEMU: no path, no port, nothing another user can open.
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { execa, type ResultPromise } from 'execa';
import type { HostPlatform } from '../platform/host-platform.ts';
import type { ChannelEndpoint, MachineChannels } from './machine-spec.ts';
import { LOG_LIMITS, type LogWriter, openStickLog } from '../primitives/capped-log.ts';

/** Descriptor numbers of the channels in QEMU's fd table (Linux, macOS). */
export const CHANNEL_FDS = { qmp: 3, agent: 4, console: 5 } as const;
/** Extra channels (MachineChannels.extra) take the descriptors after these. */
const FIRST_EXTRA_FD = 6;

/** The fixed channels, plus `extra` ids on descriptors 6, 7, … in order. */
export function fdChannels(extra: readonly string[] = []): MachineChannels {
  return {
    qmp: { kind: 'fd', fd: CHANNEL_FDS.qmp },
    agent: { kind: 'fd', fd: CHANNEL_FDS.agent },
    console: { kind: 'fd', fd: CHANNEL_FDS.console },
    ...(extra.length > 0 ? { extra: Object.fromEntries(extra.map((id, i) => [id, { kind: 'fd', fd: FIRST_EXTRA_FD + i }])) } : {}),
  };
}

/** The first descriptor after the channels': where QEMU inherits a further file (guest RAM). */
export function nextFreeFd(channels: MachineChannels): number {
  return Math.max(CHANNEL_FDS.console, ...extraFds(channels).map(([, fd]) => fd)) + 1;
}

function extraFds(channels: MachineChannels): Array<[string, number]> {
  return Object.entries(channels.extra ?? {}).flatMap(([id, endpoint]) => (endpoint.kind === 'fd' ? [[id, endpoint.fd] as [string, number]] : []));
}

export interface QemuExit {
  code: number | null;
  signal: string | null;
}

export interface QemuChannels {
  qmp: Duplex;
  agent: Duplex;
  console: Duplex;
  /** The launcher's ends of MachineChannels.extra, by id. */
  extra: Record<string, Duplex>;
}

const STDERR_TAIL_LINES = 20;

export interface StartQemuOptions {
  binary: string;
  args: string[];
  /** Added to the inherited environment (e.g. a bundled QEMU's module folder). */
  env?: Record<string, string>;
  channels: MachineChannels;
  /** Launcher descriptors QEMU inherits as they are, by their number in QEMU (after the channels'). */
  inheritFds?: Readonly<Record<number, number>>;
  host: HostPlatform;
  /** QEMU's stderr is appended here (on the stick; capped and rate-limited, src/primitives/capped-log.ts). */
  logFile: string;
}

async function connectPipe(endpoint: Extract<ChannelEndpoint, { kind: 'pipe' }>, deadline: number): Promise<Socket> {
  // QEMU creates the pipe server a moment after it starts; retry until then.
  for (;;) {
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const socket = connect(`\\\\.\\pipe\\${endpoint.name}`);
        socket.once('connect', () => resolve(socket));
        socket.once('error', reject);
      });
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

export class QemuProcess {
  readonly pid: number;
  readonly exited: Promise<QemuExit>;
  readonly #child: ResultPromise;
  readonly #log: LogWriter;
  readonly #stderrTail: string[] = [];
  #exit: QemuExit | undefined;

  private constructor(child: ResultPromise, log: LogWriter) {
    this.#child = child;
    this.#log = log;
    if (child.pid === undefined) throw new Error('QEMU did not start');
    this.pid = child.pid;
    let partial = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      log.write(chunk);
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) this.#stderrTail.push(line);
      this.#stderrTail.splice(0, Math.max(0, this.#stderrTail.length - STDERR_TAIL_LINES));
    });
    this.exited = child.then(
      (result) => {
        if (partial.trim()) this.#stderrTail.push(partial);
        this.#exit = { code: result.exitCode ?? null, signal: result.signal ?? null };
        void log.close();
        return this.#exit;
      },
      (error: unknown) => {
        this.#exit = { code: null, signal: null };
        log.line(`launcher: QEMU could not be run: ${String(error)}`);
        void log.close();
        return this.#exit;
      },
    );
  }

  static start(options: StartQemuOptions): QemuProcess {
    // On the stick, which may be pulled out: the log's writer swallows a failed write.
    const log = openStickLog(options.logFile, LOG_LIMITS.transport);
    log.line(`--- ${new Date().toISOString()} ${options.binary} ${options.args.join(' ')}`);
    const guarded = options.host.orphanGuard(options.binary, options.args);
    const usesFds = options.channels.qmp.kind === 'fd';
    const inherit = options.inheritFds ?? {};
    const lastFd = Math.max(nextFreeFd(options.channels) - 1, ...Object.keys(inherit).map(Number));
    const child = execa(guarded.command, guarded.args, {
      // Every descriptor from 3 up to the last channel is a socketpair end;
      // an inherited file (guest RAM) is passed as its own descriptor.
      // (execa hands a descriptor number to child_process.spawn as it is;
      // its types only list 3-9, hence the cast.)
      stdio: usesFds
        ? ['ignore', 'ignore', 'pipe', ...Array.from({ length: lastFd - 2 }, (_, i) => (inherit[i + 3] ?? 'pipe') as 'pipe')]
        : ['ignore', 'ignore', 'pipe'],
      reject: false,
      buffer: false,
      // QEMU is an implementation detail of the launcher: no env secrets, no
      // locale surprises in its messages.
      env: { ...options.env, LC_ALL: 'C' },
      extendEnv: true,
      cleanup: true,
    });
    return new QemuProcess(child, log);
  }

  /** The channel streams; for pipe channels (Windows) this connects first. */
  async channels(spec: MachineChannels, timeoutMs = 10_000): Promise<QemuChannels> {
    if (spec.qmp.kind === 'fd') {
      const stdio = this.#child.stdio as unknown as Duplex[];
      const extra = Object.fromEntries(extraFds(spec).map(([id, fd]) => [id, stdio[fd]!]));
      return { qmp: stdio[CHANNEL_FDS.qmp]!, agent: stdio[CHANNEL_FDS.agent]!, console: stdio[CHANNEL_FDS.console]!, extra };
    }
    const deadline = Date.now() + timeoutMs;
    const open = (endpoint: ChannelEndpoint) => (endpoint.kind === 'pipe' ? connectPipe(endpoint, deadline) : Promise.reject(new Error('mixed channel kinds')));
    const extraIds = Object.keys(spec.extra ?? {});
    const [qmp, agent, console, ...extraStreams] = await Promise.all([
      open(spec.qmp),
      open(spec.agent),
      open(spec.console),
      ...extraIds.map((id) => open(spec.extra![id]!)),
    ]);
    return { qmp: qmp!, agent: agent!, console: console!, extra: Object.fromEntries(extraIds.map((id, i) => [id, extraStreams[i]!])) };
  }

  get exitStatus(): QemuExit | undefined {
    return this.#exit;
  }

  get running(): boolean {
    return this.#exit === undefined;
  }

  stderrTail(): string[] {
    return [...this.#stderrTail];
  }

  /** Appends a launcher note to QEMU's log on the stick. */
  note(message: string): void {
    this.#log.line(`launcher: ${message}`);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.running) this.#child.kill(signal);
  }
}
