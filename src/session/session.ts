// A session: one guest running from one stick, from the lock being taken to
// the lock being released. Launching walks the journey of DESIGN.md (stick →
// host facts → payload → vmm → ready); teardown walks it back, whatever ended
// the guest: a stop request, the guest powering itself off, or a crash.
import type { Duplex } from 'node:stream';
import { PocketError, UsageError } from '../errors.ts';
import { hostFingerprint } from '../hostprobe/host-fingerprint.ts';
import { currentHostAdapter } from '../hostprobe/current-host.ts';
import { probeHost } from '../hostprobe/probe-host.ts';
import { hostFacts } from '../hostprobe/host-facts.ts';
import type { GuestRegistry } from '../guestregistry/registry.ts';
import type { HostAdapter } from '../hostprobe/host-adapter.ts';
import { type GuestPayload, openGuestPayload } from '../payload/guest-payload.ts';
import { packaged } from '../runtime/self.ts';
import { dyntablePaths, guestLogPaths, type StickLayout } from '../stick/layout.ts';
import { confirmationsAreCurrent, trustedConfirmations } from '../dyntable/confirmations.ts';
import { requireRoomToLaunch } from '../stick/free-space.ts';
import { refuseSuspendWhileFull, type StickFullState, watchStickFull } from './stick-full.ts';
import { StickLimits, type StickLimitsStatus } from './stick-limits.ts';
import { acquireLock, type StickLock } from '../stick/lock.ts';
import { openStick } from '../stick/stick-root.ts';
import { AcceleratorVerdicts, bootWithFallback, planAccelerators } from '../vmm/accelerator-fallback.ts';
import { GuestLife } from '../vmm/guest-life.ts';
import { GuestRamFile } from '../vmm/guest-ram.ts';
import { Machine } from '../vmm/machine.ts';
import type { Accelerator } from '../vmm/machine-spec.ts';
import { findQemu } from '../vmm/qemu-binary.ts';
import { fdChannels } from '../vmm/qemu-process.ts';
import type { ShutdownResult } from '../vmm/shutdown-ladder.ts';
import type { UnlockedUser } from '../auth/users.ts';
import { ExecService } from './exec-channel.ts';
import type { ChannelMachine, ChannelService, ExtraChannel } from './extra-channel.ts';
import { type GuestFacts, readGuestFacts } from './guest-facts.ts';
import { openSessionRegistry, REGISTRY_CMDLINE_WORD, registryChannel, registrySizingOverrides } from './session-registry.ts';
import { NAMESPACE_CMDLINE_WORD, namespaceChannel, remountNamespace } from './namespace-channel.ts';
import { bumpDiskGeneration } from './disk-generation.ts';
import { attachPersonalDisk, userCmdline } from './personal-disk.ts';
import { markRecoveryPending, pendingRecovery, recoverAfterCrash, type RecoveryReport } from './crash-recovery.ts';
import { sizeMachine } from './sizing.ts';
import { RemovalGuard, type StickRemoval, stickHints } from './surprise-removal.ts';
import { deriveStateKey } from '../auth/state-key.ts';
import { deriveAtRestKey } from '../dyntable/sealed/keys.ts';
import { PORTABLE_CPU_MODEL } from '../vmm/migration.ts';
import { type GuestResume, planResume, type ResumeReport } from './resume.ts';
import { quitAfterSave, saveGuestState, type StateContext, type SuspendResult } from './suspend.ts';
import { LOG_LIMITS, openStickLog } from '../stick/capped-log.ts';

export interface LaunchEvent {
  stage: 'stick' | 'payload' | 'qemu' | 'accelerator' | 'recovery' | 'boot' | 'ready';
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
  /** The serial console logs in as root instead of the user (`run --root`). */
  consoleAsRoot?: boolean;
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
  /** What the launch checked and repaired after a session that did not end cleanly. */
  recovery?: RecoveryReport;
  /** Set when the session resumed a suspended guest instead of booting. */
  resumed?: ResumeReport;
  /** Set while the guest is paused because the stick is full; it continues once there is room. */
  stickFull?: StickFullState;
  /** What the guest wrote to the stick through /host and the registry, against its limits (src/session/stick-limits.ts). */
  storage?: StickLimitsStatus;
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
  /** Runs `launcher exec` commands in the guest (src/session/exec-channel.ts). */
  execs: ExecService | undefined;
  /** The logged-in user's guest registry (src/session/guest-registry.ts); closed at teardown. */
  registry: GuestRegistry | undefined;
  /** Set when the stick was pulled out (src/session/surprise-removal.ts): teardown then writes nothing to it. */
  removal: StickRemoval | undefined;
  /** What this launch checked after a session that did not end cleanly (src/session/recovery.ts). */
  recovery: RecoveryReport | undefined;
  /** What suspending needs from the login (src/session/suspend.ts); undefined without a user. */
  stateContext: StateContext | undefined;
  /** Set when this session resumed a suspended guest (src/session/resume.ts). */
  resumed: ResumeReport | undefined;
  /** Set once this session ended by being suspended to the stick. */
  suspended: SuspendResult | undefined;
  /** Set while the guest is paused because the stick is full (src/session/stick-full.ts). */
  stickFull: StickFullState | undefined;
  /** What the guest may fill of the stick through /host and the registry (with a user). */
  limits: StickLimits | undefined;
  /** Resolves once the guest is gone and the stick is released. */
  readonly ended: Promise<ShutdownResult | undefined>;
  #stopping: Promise<ShutdownResult> | undefined;
  #suspending: Promise<unknown> | undefined;
  #holdStopped = false;
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
      // With the stick gone a hook may wait on I/O that never lands: bounded.
      const done = hook().catch(() => {});
      await (this.removal ? Promise.race([done, new Promise((resolve) => setTimeout(resolve, 1_000).unref())]) : done);
    }
    if (this.removal) this.lock.abandon();
    else await this.lock.release();
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
      ...(this.recovery ? { recovery: this.recovery } : {}),
      ...(this.resumed ? { resumed: this.resumed } : {}),
      ...(this.stickFull ? { stickFull: this.stickFull } : {}),
      ...(this.limits ? { storage: this.limits.status() } : {}),
    };
  }

  facts(): Promise<GuestFacts> {
    return readGuestFacts(this.machine.agent);
  }

  /** True while a suspend saves the guest's state (the full-stick watch leaves the guest stopped meanwhile). */
  get suspending(): boolean {
    return this.#holdStopped;
  }

  /** Shuts the guest down (or kills it with `force`) and waits for teardown. */
  async stop(options: { force?: boolean } = {}): Promise<ShutdownResult> {
    // A suspend under way finishes first (then this waits for its end), or gives up and the guest runs on.
    await this.#suspending?.catch(() => {});
    this.#stopping ??= (async () => {
      await this.lock.update({ state: 'stopping' }).catch(() => {});
      return this.machine.shutdown(undefined, options.force ? { from: 'kill' } : {});
    })();
    const result = await this.#stopping;
    await this.ended;
    return result;
  }

  /**
   * Saves the guest's state to the stick, then ends QEMU and waits for
   * teardown (src/session/suspend.ts). A suspend that fails leaves the guest
   * running and no state file.
   */
  async suspend(): Promise<SuspendResult> {
    if (this.#stopping || this.#suspending) throw new UsageError(`${this.guest} is already ${this.#stopping ? 'shutting down' : 'being suspended'}`);
    if (!this.stateContext) throw new UsageError('only a logged-in user\'s guest can be suspended (its state is encrypted with their key)', 'launcher eject shuts it down instead');
    refuseSuspendWhileFull(this);
    const started = performance.now();
    // From here until QEMU has quit, or the suspend failed and continued the guest, the guest stays stopped.
    this.#holdStopped = true;
    const saving = saveGuestState(this, this.stateContext);
    this.#suspending = saving;
    let saved: Awaited<typeof saving>;
    try {
      saved = await saving;
    } catch (error) {
      this.#holdStopped = false;
      throw error;
    } finally {
      this.#suspending = undefined;
    }
    this.#stopping = quitAfterSave(this.machine);
    const quit = await this.#stopping;
    this.suspended = { ...saved, quitMs: quit.ms, totalMs: Math.round(performance.now() - started) };
    await this.ended;
    return this.suspended;
  }
}

async function prepare(options: LaunchOptions, host: HostAdapter) {
  const emit = options.onEvent ?? (() => {});
  emit({ stage: 'stick', message: `opening the stick at ${options.stickRoot}` });
  const layout = await openStick(options.stickRoot);
  const qemu = findQemu(host, layout.root);
  if (qemu.source !== 'stick' && packaged) emit({ stage: 'qemu', message: `no portable QEMU for ${host.platform} on this stick; using ${qemu.system}` });
  if (qemu.notice) emit({ stage: 'qemu', message: qemu.notice });
  // Before the lock: on a stick with no room at all, even the lock file could not be written.
  await requireRoomToLaunch(layout.root);
  const lock = await acquireLock(layout, options.command, { guest: options.guest, state: 'starting' });
  try {
    emit({ stage: 'payload', message: `checking the ${options.guest} payload` });
    const payload = await openGuestPayload(layout.payloadRoot, options.guest);
    // The host is probed once per launch; its accelerators feed the fallback plan.
    const profile = await probeHost({ adapter: host, stickRoot: layout.root });
    const verdicts = new AcceleratorVerdicts(layout.acceleratorVerdicts, profile.fingerprint ?? (await hostFingerprint(layout.hostSalt)));
    const plan = await planAccelerators(options.accelerator, profile.accelerators, verdicts);
    emit({ stage: 'accelerator', message: `accelerators to try: ${plan.candidates.join(', ')}` });
    return { layout, qemu, lock, payload, verdicts, plan, profile };
  } catch (error) {
    await lock.release();
    throw error;
  }
}

/** Opens each channel's service on its stream (while QEMU is paused). */
async function openChannels(channels: readonly ExtraChannel[], streams: Readonly<Record<string, Duplex>>, services: ChannelService[], machine: ChannelMachine): Promise<void> {
  for (const channel of channels) {
    const stream = streams[channel.id];
    if (!stream || !channel.open) continue;
    const service = await channel.open(stream, machine);
    if (service) services.push(service);
  }
}

async function closeServices(services: ChannelService[]): Promise<void> {
  for (const service of services.splice(0)) await Promise.resolve(service.close()).catch(() => {});
}

/** On the kernel command line for `run --root`: the console-shell service logs in as root. */
export const CONSOLE_ROOT_CMDLINE_WORD = 'pocketvm.console=root';

/** `work`, or a rejection as soon as `signal` aborts (what `work` then yields is dropped). */
function untilCancelled<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new PocketError('interrupted', 'interrupted before the guest was ready'));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

export async function launchSession(options: LaunchOptions): Promise<Session> {
  if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(options.guest)) throw new UsageError(`"${options.guest}" is not a guest name`, 'guest names are lower-case letters, digits and -');
  const started = performance.now();
  const host = currentHostAdapter();
  const emit = options.onEvent ?? (() => {});
  const { layout, qemu, lock, payload, verdicts, plan, profile } = await prepare(options, host);
  const preparedMs = Math.round(performance.now() - started);
  let user = options.user;
  const services: ChannelService[] = [];
  let registry: GuestRegistry | undefined;
  // From here on, pulling the stick out stops the launch (and later the session).
  const guard = await RemovalGuard.start(layout.root, { stick: stickHints(profile.stick) }).catch(() => undefined);
  if (lock.takenOver) await markRecoveryPending(layout, lock.takenOver);
  let recovery: RecoveryReport | undefined;
  let stateContext: StateContext | undefined;
  /** Seals what the guest writes through /host (src/dyntable/sealed/keys.ts); zeroed at teardown. */
  let atRestKey: Buffer | undefined;
  let limits: StickLimits | undefined;
  let resume: GuestResume | undefined;
  // A boot cancelled (src/cli/session-runner.ts) between steps stops here; the catch below releases the lock.
  const checkCancelled = () => {
    if (options.signal?.aborted) throw new PocketError('interrupted', 'interrupted before the guest was ready');
  };
  try {
    checkCancelled();
    // The login waits on a person (or the foreground launcher): a cancel must not wait for it.
    if (!user && options.login) user = await untilCancelled(options.login(), options.signal);
    checkCancelled();
    const login = user;
    if (login) await lock.update({ user: login.name });
    // The last session on this stick died (stale lock), or left this user's files unchecked.
    const previous = lock.takenOver ?? (login ? await pendingRecovery(layout, login.name) : undefined);
    if (previous) {
      emit({ stage: 'recovery', message: 'the last session on this stick did not end cleanly: checking what it left' });
      recovery = await recoverAfterCrash({ layout, previous, guest: options.guest, host, ...(login ? { user: login } : {}), onStep: (message) => emit({ stage: 'recovery', message }) });
      emit({ stage: 'recovery', message: recovery.summary });
    }
    guard?.signal.throwIfAborted();
    checkCancelled();
    const bootSignal = options.signal && guard ? AbortSignal.any([options.signal, guard.signal]) : (options.signal ?? guard?.signal);
    const logs = guestLogPaths(layout, options.guest);
    // The launcher's notes beside QEMU's own (capped and rate-limited: the guest can provoke some in a loop).
    const transportLog = openStickLog(logs.qemu, LOG_LIMITS.transport);
    services.push({ close: () => transportLog.close() });
    // Features add their channels to the guest and kernel command-line words here.
    const extraChannels: ExtraChannel[] = [];
    const cmdlineWords: string[] = login ? [userCmdline(login)] : [];
    if (options.consoleAsRoot) cmdlineWords.push(CONSOLE_ROOT_CMDLINE_WORD);
    if (login) {
      // The user's registry: its Machine overrides size the guest, its port serves `reg`.
      registry = await openSessionRegistry({ layout, guest: options.guest, user: login.name, ...(profile.fingerprint ? { hostId: profile.fingerprint } : {}), facts: hostFacts(profile), onNotice: (message) => options.onNotice?.(message) });
      limits = new StickLimits({ stickDir: layout.root, registry, notice: (message) => options.onNotice?.(message) });
      extraChannels.push(registryChannel(registry, (message) => transportLog.line(`launcher: ${message}`), limits));
      cmdlineWords.push(REGISTRY_CMDLINE_WORD);
      // The dyntable namespace over 9P, mounted on /host in the guest. Only
      // confirmations signed with this user's key count (checked now, while
      // the disk key is in memory); a forged one is said and ignored.
      const tables = await trustedConfirmations(dyntablePaths(layout, login.name).confirmations, login.diskKey, login.id);
      for (const refused of tables.refused) options.onNotice?.(refused.message);
      atRestKey = deriveAtRestKey(login.diskKey);
      // An older copy of the file, bringing back a withdrawn confirmation, is refused (exit 10).
      confirmationsAreCurrent(dyntablePaths(layout, login.name).confirmations, tables.records, atRestKey);
      extraChannels.push(namespaceChannel({ layout, guest: options.guest, user: login.name, registry, manifest: payload.manifest, confirmed: tables.trusted, logFile: logs.qemu, atRestKey, quota: limits.files }));
      cmdlineWords.push(NAMESPACE_CMDLINE_WORD);
    }
    // `launcher exec` streams over its own port (src/session/exec-channel.ts), in every session.
    const execs = new ExecService();
    extraChannels.push(execs.channel());
    const sizing = sizeMachine(payload.manifest, profile, registry ? registrySizingOverrides(registry) : {});
    // The session keeps a key for saved states, derived before the disk key is zeroed;
    // a suspended guest of this user resumes instead of booting (src/session/resume.ts).
    stateContext = login ? { key: deriveStateKey(login.diskKey), user: login.name, userId: login.id, host: profile.fingerprint } : undefined;
    resume = stateContext ? await planResume({ layout, guest: options.guest, user: login!, stateKey: stateContext.key, qemu, accelerators: plan.candidates, memory: profile.memory, fingerprint: profile.fingerprint }) : undefined;
    if (resume) {
      extraChannels.push(resume.channel);
      Object.assign(sizing, { memoryMiB: resume.meta.memoryMiB, cpus: resume.meta.cpus });
    }
    // The stick keeps a suspend's worth free, whatever the guest writes through /host.
    limits?.setGuestMemory(sizing.memoryMiB);
    const attachDisk = login ? attachPersonalDisk(layout, options.guest, login, (disk) => emit({ stage: 'boot', message: disk.created ? `created ${login.name}'s encrypted disk ${disk.path} (${(disk.createMs / 1000).toFixed(1)} s)` : `opened ${login.name}'s encrypted disk` })) : undefined;
    const machine = await bootWithFallback({
      // A saved state loads only under the accelerator it was saved under.
      plan: resume ? { candidates: [resume.meta.accelerator], notes: plan.notes } : plan,
      verdicts,
      onFallback: (message) => options.onNotice?.(message),
      boot: async (accelerator) => {
        // The namespace's reads are placed in the guest's pages when its RAM is
        // a file the launcher shares; otherwise the guest copies them.
        const ram = cmdlineWords.includes(NAMESPACE_CMDLINE_WORD) ? GuestRamFile.create(sizing.memoryMiB) : undefined;
        const guestRam = ram instanceof GuestRamFile ? ram : undefined;
        if (ram && !(ram instanceof GuestRamFile)) transportLog.line(`launcher: guest RAM not shared, namespace reads are copied in the guest: ${ram.reason}`);
        emit({ stage: 'boot', message: resume ? `resuming ${options.guest}, suspended ${resume.meta.createdAt} on ${resume.sameHost ? 'this PC' : 'another PC'} (${(resume.bytes / 1048576).toFixed(0)} MiB of state, ${accelerator})` : `booting ${options.guest} under ${accelerator} (${sizing.memoryMiB} MiB, ${sizing.cpus} vCPU)` });
        const life = new GuestLife();
        const booting = Machine.boot({
          ...(guestRam ? { guestRam } : {}),
          life,
          spec: {
            name: `pocketvm-${options.guest}`,
            hostOs: host.os,
            accelerator,
            cpuModel: resume?.meta.cpuModel ?? PORTABLE_CPU_MODEL,
            memoryMiB: sizing.memoryMiB,
            cpus: sizing.cpus,
            kernel: payload.kernel,
            initrd: payload.initrd,
            cmdline: [payload.manifest.cmdline, ...cmdlineWords].join(' '),
            disks: [],
            network: payload.manifest.devices.network,
            channels: fdChannels(extraChannels.map((channel) => channel.id)),
            serialPorts: extraChannels.flatMap((channel) => (channel.kind === 'serial' ? [{ id: channel.id, name: channel.name ?? channel.id }] : [])),
            nics: extraChannels.flatMap((channel) => (channel.kind === 'nic' ? [{ id: channel.id, mac: channel.mac ?? '' }] : [])),
            streams: extraChannels.flatMap((channel) => (channel.kind === 'stream' ? [channel.id] : [])),
            startPaused: true,
            ...(login ? { hotplugPorts: 1 } : {}),
            ...(resume ? { incoming: true } : {}),
          },
          binary: qemu.system,
          ...(qemu.prefixArgs ? { binaryPrefixArgs: qemu.prefixArgs } : {}),
          ...(qemu.env ? { binaryEnv: qemu.env } : {}),
          host,
          logs,
          attach: async (qmp, streams) => {
            await openChannels(extraChannels, streams, services, guestRam ? { guestRam, life } : { life });
            if (attachDisk) await attachDisk(qmp);
            if (resume) await resume.load(qmp, streams, fdChannels(extraChannels.map((channel) => channel.id)));
            // This run may write the disk: every state saved before it is stale from now on (src/session/disk-generation.ts).
            if (stateContext && login) stateContext.diskGeneration = await bumpDiskGeneration({ layout, user: login, guest: options.guest, stateKey: stateContext.key });
          },
          ...(resume ? { resumed: true } : {}),
          // Under a hardware accelerator the kernel prints within a second; a
          // silent guest after this long is a hung accelerator, not a slow boot.
          signOfLifeTimeoutMs: accelerator === 'tcg' ? payload.manifest.readyTimeoutSeconds * 1000 : 15_000,
          readyTimeoutMs: payload.manifest.readyTimeoutSeconds * 1000,
          ...(bootSignal ? { signal: bootSignal } : {}),
        });
        if (!guestRam) return booting;
        try {
          const machine = await booting;
          // Closed with the channels: the launcher's descriptor is only for writing reads into it.
          services.push({ close: () => guestRam.close() });
          return machine;
        } catch (error) {
          guestRam.close();
          throw error;
        }
      },
    });
    const resumed = resume ? await resume.finish(machine) : undefined;
    if (resumed) emit({ stage: 'boot', message: `resumed ${options.guest} in ${(resume!.loadMs / 1000).toFixed(1)} s${resumed.clockStepMs === null ? '; its clock could not be corrected' : `; its clock moved ${(resumed.clockStepMs / 1000).toFixed(0)} s forward`}` });
    if (resumed && cmdlineWords.includes(NAMESPACE_CMDLINE_WORD) && !(await remountNamespace(machine))) {
      options.onNotice?.('the resumed guest could not mount /host again; the host folders are unavailable until its next boot');
    }
    await lock.update({ state: 'ready' });
    const readyMs = Math.round(performance.now() - started);
    emit({ stage: 'ready', message: `${options.guest} is ready (${(readyMs / 1000).toFixed(1)} s)` });
    const session = new Session({ layout, lock, payload, machine, timings: { preparedMs, readyMs, boot: machine.timings }, acceleratorNotes: plan.notes });
    session.user = login?.name;
    session.execs = execs;
    session.registry = registry;
    session.recovery = recovery;
    session.stateContext = stateContext;
    session.resumed = resumed;
    session.limits = limits;
    if (stateContext) session.onTeardown(async () => void stateContext?.key.fill(0));
    if (atRestKey) session.onTeardown(async () => void atRestKey?.fill(0));
    guard?.protect(session);
    const stopWatchingSpace = watchStickFull(session, (message) => options.onNotice?.(message));
    session.onTeardown(async () => stopWatchingSpace());
    // Registered before the channel services, so it closes after them (hooks run newest first).
    if (registry) session.onTeardown(async () => registry?.close());
    for (const service of services) session.onTeardown(async () => service.close());
    return session;
  } catch (error) {
    guard?.stop();
    if (guard?.removed) {
      // The stick is gone: nothing more is written to it.
      lock.abandon();
      await closeServices(services);
      try {
        registry?.close();
      } catch {
        // its file is gone with the stick
      }
      throw guard.bootError(user !== undefined);
    }
    await closeServices(services);
    registry?.close();
    await lock.release();
    stateContext?.key.fill(0);
    atRestKey?.fill(0);
    // A launch that was resuming says so, and that the state is still there.
    throw resume ? resume.explain(error) : error;
  } finally {
    // QEMU holds the disk key now; the launcher's copy goes.
    user?.diskKey.fill(0);
  }
}
