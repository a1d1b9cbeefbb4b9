// A session: one guest running from one stick, from the lock being taken to
// the lock being released. It is built whole by the launch (src/session/launch/,
// the journey of docs/design.md as a pipeline of steps) once the guest is ready;
// its teardown walks the launch back, whatever ended the guest: a stop
// request, the guest powering itself off, a crash, or the stick pulled out.
import { UsageError } from '../errors.ts';
import type { GuestRegistry } from '../guestregistry/registry.ts';
import type { GuestPayload } from '../payload/guest-payload.ts';
import type { StickLayout } from '../stick/layout.ts';
import type { StickLock } from '../stick/lock.ts';
import type { Machine } from '../vmm/machine.ts';
import type { Accelerator } from '../vmm/machine-spec.ts';
import type { ShutdownResult } from '../vmm/shutdown-ladder.ts';
import type { ExecService } from './exec-channel.ts';
import { type GuestFacts, readGuestFacts } from './guest-facts.ts';
import type { LaunchTimings } from './launch/launch-options.ts';
import { Teardown } from './launch/teardown.ts';
import type { RecoveryReport } from './crash-recovery.ts';
import type { ResumeReport } from './resume.ts';
import { refuseSuspendWhileFull, type StickFullState } from './stick-full.ts';
import type { StickLimits, StickLimitsStatus } from './stick-limits.ts';
import type { StickRemoval } from './surprise-removal.ts';
import { quitAfterSave, saveGuestState, type StateContext, type SuspendResult } from './suspend.ts';
import { type NetworkStatus, networkStatus } from './network-setting.ts';

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
  /** Where the console page is served while it is (docs/console-page.md). */
  page?: { address: string };
  /** What the guest wrote to the stick through /host and the registry, against its limits (src/session/stick-limits.ts). */
  storage?: StickLimitsStatus;
  /** The guest's network (src/session/network-setting.ts). */
  network: NetworkStatus;
}

/** Everything a session is made of, known once the launch has booted the guest. */
export interface SessionParts {
  layout: StickLayout;
  lock: StickLock;
  payload: GuestPayload;
  machine: Machine;
  timings: LaunchTimings;
  acceleratorNotes: string[];
  /** The logged-in user the guest runs for (exec runs as them). */
  user?: string;
  /** Runs `launcher exec` commands in the guest (src/session/exec-channel.ts). */
  execs?: ExecService;
  /** The logged-in user's guest registry (src/session/session-registry.ts); closed at teardown. */
  registry?: GuestRegistry;
  /** What this launch checked after a session that did not end cleanly (src/session/crash-recovery.ts). */
  recovery?: RecoveryReport;
  /** What suspending needs from the login (src/session/suspend.ts); undefined without a user. */
  stateContext?: StateContext;
  /** Set when this session resumed a suspended guest (src/session/resume.ts). */
  resumed?: ResumeReport;
  /** What the guest may fill of the stick through /host and the registry (with a user). */
  limits?: StickLimits;
  /** What the launch opened, closed at the session's end (newest first) before the lock goes. */
  teardown?: Teardown;
  /** QEMU's VNC socket in a private folder, with a page display (src/session/features/display-feature.ts). */
  vncSocket?: string;
  /** Says whether the stick was pulled out (the removal guard, src/session/surprise-removal.ts). */
  removalWatch?: { readonly removal: StickRemoval | undefined };
}

export class Session {
  readonly layout: StickLayout;
  readonly lock: StickLock;
  readonly payload: GuestPayload;
  readonly machine: Machine;
  readonly timings: LaunchTimings;
  readonly acceleratorNotes: string[];
  readonly startedAt = new Date();
  readonly user: string | undefined;
  readonly execs: ExecService | undefined;
  readonly registry: GuestRegistry | undefined;
  readonly recovery: RecoveryReport | undefined;
  readonly stateContext: StateContext | undefined;
  readonly resumed: ResumeReport | undefined;
  readonly limits: StickLimits | undefined;
  readonly vncSocket: string | undefined;
  /** Set by the console page while it serves this session (src/console/), for `launcher status`. */
  page: { address: string } | undefined;
  /** Set once this session ended by being suspended to the stick. */
  suspended: SuspendResult | undefined;
  /** Set while the guest is paused because the stick is full (src/session/stick-full.ts). */
  stickFull: StickFullState | undefined;
  /** Resolves once the guest is gone and the stick is released. */
  readonly ended: Promise<ShutdownResult | undefined>;
  readonly #removalWatch: SessionParts['removalWatch'];
  readonly #teardown: Teardown;
  #stopping: Promise<ShutdownResult> | undefined;
  #suspending: Promise<unknown> | undefined;
  #holdStopped = false;

  constructor(parts: SessionParts) {
    this.layout = parts.layout;
    this.lock = parts.lock;
    this.payload = parts.payload;
    this.machine = parts.machine;
    this.timings = parts.timings;
    this.acceleratorNotes = parts.acceleratorNotes;
    this.user = parts.user;
    this.execs = parts.execs;
    this.registry = parts.registry;
    this.recovery = parts.recovery;
    this.stateContext = parts.stateContext;
    this.resumed = parts.resumed;
    this.limits = parts.limits;
    this.vncSocket = parts.vncSocket;
    this.#removalWatch = parts.removalWatch;
    this.#teardown = parts.teardown ?? new Teardown();
    this.ended = this.machine.process.exited.then(async () => {
      // Zones' `down`: the guest is gone, its platform not yet torn down (guest list shows it until the lock goes).
      if (!this.removal) await this.lock.update({ state: 'down' }).catch(() => {});
      const result = this.#stopping ? await this.#stopping : undefined;
      await this.#end();
      return result;
    });
  }

  /** Set when the stick was pulled out (src/session/surprise-removal.ts): teardown then writes nothing to it. */
  get removal(): StickRemoval | undefined {
    return this.#removalWatch?.removal;
  }

  /** The guest's name: its payload's, or a guest's of the stick that boots another payload (src/guests/). */
  get guest(): string {
    return this.lock.holder?.guest ?? this.payload.manifest.name;
  }

  /** Runs at teardown, newest first (e.g. closing the control server). */
  onTeardown(hook: () => Promise<void>): void {
    this.#teardown.add(hook);
  }

  async #end(): Promise<void> {
    // With the stick gone a hook may wait on I/O that never lands: bounded.
    await this.#teardown.run({ bounded: () => this.removal !== undefined, boundMs: 1_000 });
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
      network: networkStatus(spec.network),
      ...(this.page ? { page: this.page } : {}),
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
    if (!this.stateContext)
      throw new UsageError("only a logged-in user's guest can be suspended (its state is encrypted with their key)", 'launcher eject shuts it down instead');
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
