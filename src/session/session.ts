// A session: one guest running from one stick, from the lock being taken to
// the lock being released. Launching walks the journey of DESIGN.md (stick →
// host facts → payload → vmm → ready); teardown walks it back, whatever ended
// the guest: a stop request, the guest powering itself off, or a crash.
import type { Duplex } from 'node:stream';
import { UsageError } from '../errors.ts';
import { hostFingerprint } from '../hostprobe/host-fingerprint.ts';
import { currentHostAdapter } from '../hostprobe/current-host.ts';
import type { HostAdapter } from '../hostprobe/host-adapter.ts';
import { type GuestPayload, openGuestPayload } from '../payload/guest-payload.ts';
import { packaged } from '../runtime/self.ts';
import { guestLogPaths, type StickLayout } from '../stick/layout.ts';
import { acquireLock, type StickLock } from '../stick/lock.ts';
import { openStick } from '../stick/stick-root.ts';
import { AcceleratorVerdicts, bootWithFallback, planAccelerators } from '../vmm/accelerator-fallback.ts';
import { Machine } from '../vmm/machine.ts';
import type { Accelerator } from '../vmm/machine-spec.ts';
import { findQemu } from '../vmm/qemu-binary.ts';
import { fdChannels } from '../vmm/qemu-process.ts';
import type { ShutdownResult } from '../vmm/shutdown-ladder.ts';
import type { UnlockedUser } from '../auth/users.ts';
import type { ChannelService, ExtraChannel } from './extra-channel.ts';
import { type GuestFacts, readGuestFacts } from './guest-facts.ts';
import { attachPersonalDisk, userCmdline } from './personal-disk.ts';
import { sizeMachine } from './sizing.ts';

export interface LaunchEvent {
  stage: 'stick' | 'payload' | 'qemu' | 'accelerator' | 'boot' | 'ready';
  message: string;
}

export interface LaunchOptions {
  stickRoot: string;
  guest: string;
  accelerator: Accelerator | 'auto';
  /** The launcher command that holds the lock, shown to anyone refused. */
  command: string;
  onEvent?: (event: LaunchEvent) => void;
  /** Told once if the hardware accelerator is given up for TCG. */
  onNotice?: (message: string) => void;
  signal?: AbortSignal;
  /** The logged-in user: their encrypted disk is attached and mounted as their home. */
  user?: UnlockedUser;
  /** Or: log in once the stick and payload are checked, before QEMU starts. */
  login?: () => Promise<UnlockedUser>;
}

export interface LaunchTimings {
  /** Milliseconds from the launch call. */
  preparedMs: number;
  readyMs: number;
  boot: Machine['timings'];
}

export interface SessionStatus {
  guest: string;
  state: Machine['state'];
  pid: number;
  qemuPid: number;
  accelerator: Accelerator;
  memoryMiB: number;
  cpus: number;
  startedAt: string;
  /** QEMU start to agent ready, for the attempt that booted (login and set-up excluded). */
  bootMs: number;
  uptimeSeconds: number;
  stick: string;
  logs: { qemu: string; console: string };
  /** The logged-in user, if any. */
  user: string | null;
}

export class Session {
  readonly layout: StickLayout;
  readonly lock: StickLock;
  readonly payload: GuestPayload;
  readonly machine: Machine;
  readonly timings: LaunchTimings;
  readonly acceleratorNotes: string[];
  readonly startedAt = new Date();
  /** The logged-in user the guest runs for (exec runs as them). */
  user: string | undefined;
  /** Resolves once the guest is gone and the stick is released. */
  readonly ended: Promise<ShutdownResult | undefined>;
  #stopping: Promise<ShutdownResult> | undefined;
  #teardownHooks: Array<() => Promise<void>> = [];

  constructor(init: { layout: StickLayout; lock: StickLock; payload: GuestPayload; machine: Machine; timings: LaunchTimings; acceleratorNotes: string[] }) {
    this.layout = init.layout;
    this.lock = init.lock;
    this.payload = init.payload;
    this.machine = init.machine;
    this.timings = init.timings;
    this.acceleratorNotes = init.acceleratorNotes;
    this.ended = this.machine.process.exited.then(async () => {
      const result = this.#stopping ? await this.#stopping : undefined;
      await this.#teardown();
      return result;
    });
  }

  get guest(): string {
    return this.payload.manifest.name;
  }

  /** Runs at teardown, newest first (e.g. closing the control server). */
  onTeardown(hook: () => Promise<void>): void {
    this.#teardownHooks.unshift(hook);
  }

  async #teardown(): Promise<void> {
    for (const hook of this.#teardownHooks) {
      await hook().catch(() => {});
    }
    await this.lock.release();
  }

  status(): SessionStatus {
    const { spec } = this.machine;
    return {
      guest: this.guest,
      state: this.machine.state,
      pid: process.pid,
      qemuPid: this.machine.process.pid,
      accelerator: spec.accelerator,
      memoryMiB: spec.memoryMiB,
      cpus: spec.cpus,
      startedAt: this.startedAt.toISOString(),
      bootMs: this.machine.timings.readyMs,
      uptimeSeconds: Math.round((Date.now() - this.startedAt.getTime()) / 1000),
      stick: this.layout.root,
      logs: this.machine.logs,
      user: this.user ?? null,
    };
  }

  facts(): Promise<GuestFacts> {
    return readGuestFacts(this.machine.agent);
  }

  /** Shuts the guest down (or kills it with `force`) and waits for teardown. */
  async stop(options: { force?: boolean } = {}): Promise<ShutdownResult> {
    this.#stopping ??= (async () => {
      await this.lock.update({ state: 'stopping' }).catch(() => {});
      return this.machine.shutdown(undefined, options.force ? { from: 'kill' } : {});
    })();
    const result = await this.#stopping;
    await this.ended;
    return result;
  }
}

async function prepare(options: LaunchOptions, host: HostAdapter) {
  const emit = options.onEvent ?? (() => {});
  emit({ stage: 'stick', message: `opening the stick at ${options.stickRoot}` });
  const layout = await openStick(options.stickRoot);
  const qemu = findQemu(host, layout.root);
  if (qemu.source !== 'stick' && packaged) emit({ stage: 'qemu', message: `no portable QEMU for ${host.platform} on this stick; using ${qemu.system}` });
  const lock = await acquireLock(layout, options.command, { guest: options.guest, state: 'starting' });
  try {
    emit({ stage: 'payload', message: `checking the ${options.guest} payload` });
    const payload = await openGuestPayload(layout.payloadRoot, options.guest);
    const verdicts = new AcceleratorVerdicts(layout.acceleratorVerdicts, await hostFingerprint(layout.hostSalt));
    const plan = await planAccelerators(options.accelerator, await host.probeAccelerators(), verdicts);
    emit({ stage: 'accelerator', message: `accelerators to try: ${plan.candidates.join(', ')}` });
    return { layout, qemu, lock, payload, verdicts, plan };
  } catch (error) {
    await lock.release();
    throw error;
  }
}

/** Opens each channel's service on its stream (while QEMU is paused). */
async function openChannels(channels: readonly ExtraChannel[], streams: Readonly<Record<string, Duplex>>, services: ChannelService[]): Promise<void> {
  for (const channel of channels) {
    const stream = streams[channel.id];
    if (!stream || !channel.open) continue;
    const service = await channel.open(stream);
    if (service) services.push(service);
  }
}

async function closeServices(services: ChannelService[]): Promise<void> {
  for (const service of services.splice(0)) await Promise.resolve(service.close()).catch(() => {});
}

export async function launchSession(options: LaunchOptions): Promise<Session> {
  if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(options.guest)) throw new UsageError(`"${options.guest}" is not a guest name`, 'guest names are lower-case letters, digits and -');
  const started = performance.now();
  const host = currentHostAdapter();
  const emit = options.onEvent ?? (() => {});
  const { layout, qemu, lock, payload, verdicts, plan } = await prepare(options, host);
  const preparedMs = Math.round(performance.now() - started);
  let user = options.user;
  const services: ChannelService[] = [];
  try {
    user ??= await options.login?.();
    const login = user;
    const logs = guestLogPaths(layout, options.guest);
    // Features add their channels to the guest and kernel command-line words here.
    const extraChannels: ExtraChannel[] = [];
    const cmdlineWords: string[] = login ? [userCmdline(login)] : [];
    const sizing = sizeMachine(payload.manifest);
    const attachDisk = login ? attachPersonalDisk(layout, options.guest, login, (disk) => emit({ stage: 'boot', message: disk.created ? `created ${login.name}'s encrypted disk ${disk.path} (${(disk.createMs / 1000).toFixed(1)} s)` : `opened ${login.name}'s encrypted disk` })) : undefined;
    const machine = await bootWithFallback({
      plan,
      verdicts,
      onFallback: (message) => options.onNotice?.(message),
      boot: (accelerator) => {
        emit({ stage: 'boot', message: `booting ${options.guest} under ${accelerator} (${sizing.memoryMiB} MiB, ${sizing.cpus} vCPU)` });
        return Machine.boot({
          spec: {
            name: `pocketvm-${options.guest}`,
            hostOs: host.os,
            accelerator,
            memoryMiB: sizing.memoryMiB,
            cpus: sizing.cpus,
            kernel: payload.kernel,
            initrd: payload.initrd,
            cmdline: [payload.manifest.cmdline, ...cmdlineWords].join(' '),
            disks: [],
            network: payload.manifest.devices.network,
            channels: fdChannels(extraChannels.map((channel) => channel.id)),
            serialPorts: extraChannels.flatMap((channel) => (channel.kind === 'serial' ? [{ id: channel.id, name: channel.name ?? channel.id }] : [])),
            streams: extraChannels.flatMap((channel) => (channel.kind === 'stream' ? [channel.id] : [])),
            startPaused: true,
            ...(login ? { hotplugPorts: 1 } : {}),
          },
          binary: qemu.system,
          ...(qemu.prefixArgs ? { binaryPrefixArgs: qemu.prefixArgs } : {}),
          ...(qemu.env ? { binaryEnv: qemu.env } : {}),
          host,
          logs,
          attach: async (qmp, streams) => {
            await openChannels(extraChannels, streams, services);
            if (attachDisk) await attachDisk(qmp);
          },
          // Under a hardware accelerator the kernel prints within a second; a
          // silent guest after this long is a hung accelerator, not a slow boot.
          signOfLifeTimeoutMs: accelerator === 'tcg' ? payload.manifest.readyTimeoutSeconds * 1000 : 15_000,
          readyTimeoutMs: payload.manifest.readyTimeoutSeconds * 1000,
          ...(options.signal ? { signal: options.signal } : {}),
        });
      },
    });
    await lock.update({ state: 'ready' });
    const readyMs = Math.round(performance.now() - started);
    emit({ stage: 'ready', message: `${options.guest} is ready (${(readyMs / 1000).toFixed(1)} s)` });
    const session = new Session({ layout, lock, payload, machine, timings: { preparedMs, readyMs, boot: machine.timings }, acceleratorNotes: plan.notes });
    session.user = login?.name;
    for (const service of services) session.onTeardown(async () => service.close());
    return session;
  } catch (error) {
    await closeServices(services);
    await lock.release();
    throw error;
  } finally {
    // QEMU holds the disk key now; the launcher's copy goes.
    user?.diskKey.fill(0);
  }
}
