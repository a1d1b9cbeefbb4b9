// The helper appliance's QEMU: the appliance payload (payload/appliance/,
// built by `node build.js payload --guest appliance`), headless, the exec
// port for running commands and moving bytes, an empty virtio-scsi
// controller the sources are hot-plugged onto, and a user-mode network card
// restricted from the start (nothing leaves the appliance; `files share`
// adds a hostfwd on the host's 127.0.0.1 while a share lasts).
// Started from the state saved right after its first boot when there is one
// for this payload, QEMU and machine (src/appliance/appliance-state.ts):
// loading it takes a fraction of a boot. Without one, or when it cannot be
// used, the appliance boots and its state is saved before anything is
// attached; a state that fails costs a boot, never the command.
import type { HostAdapter } from '../hostprobe/host-adapter.ts';
import type { GuestPayload } from '../payload/guest-payload.ts';
import { hostFingerprint } from '../platform/host-fingerprint.ts';
import { EXEC_CHANNEL_ID, EXEC_PORT_NAME, ExecService } from '../session/exec-channel.ts';
import { networkCmdlineWord } from '../session/network-setting.ts';
import { correctClock } from '../session/resume.ts';
import type { StickLayout } from '../stick/layout.ts';
import { AcceleratorVerdicts, bootWithFallback, planAccelerators } from '../vmm/accelerator-fallback.ts';
import { Machine } from '../vmm/machine.ts';
import type { Accelerator, MachineSpec } from '../vmm/machine-spec.ts';
import { PORTABLE_CPU_MODEL, probeQemuVersion } from '../vmm/migration.ts';
import { findQemu } from '../vmm/qemu-binary.ts';
import { fdChannels } from '../vmm/qemu-process.ts';
import { applianceLogs } from './appliance-paths.ts';
import {
  type ApplianceStateMeta,
  applianceStateKey,
  checkApplianceState,
  describeState,
  loadApplianceState,
  reseedGuest,
  saveApplianceState,
} from './appliance-state.ts';

/** How this appliance came up, for the person's one line and the logs. */
export interface ApplianceStart {
  how: 'resumed' | 'booted';
  /** QEMU's start to the agent answering (and, for a resume, reseeded). */
  ms: number;
  /** After a boot: the state saved for later starts (ms), or undefined when it was not. */
  savedMs?: number;
  /** One line when a saved state could not be used or saved (the command goes on). */
  note?: string;
}

export interface ApplianceMachine {
  machine: Machine;
  execs: ExecService;
  start: ApplianceStart;
}

/** The raw channel a saved state flows into QEMU on. */
const STATE_CHANNEL_ID = 'appliance-state-in';

/** The appliance's machine before an accelerator is chosen: what a saved state is keyed by, with it. */
export function applianceSpec(hostOs: MachineSpec['hostOs'], payload: GuestPayload): Omit<MachineSpec, 'accelerator'> {
  const { manifest } = payload;
  return {
    name: 'pocketvm-appliance',
    hostOs,
    // Named, not `max`/`host`: a state saved on one PC loads on another with the same QEMU.
    cpuModel: PORTABLE_CPU_MODEL,
    memoryMiB: manifest.memory.recommendedMiB,
    cpus: manifest.cpus.recommended,
    kernel: payload.kernel,
    initrd: payload.initrd,
    // Freed pages zeroed: QEMU sends a zero page as a flag, any other as 4 KiB,
    // so the unpacked initramfs' freed pages would otherwise swell the saved state.
    // pocketvm.net=MAC: the guest's boot step takes its address by DHCP, which restrict=on still answers.
    cmdline: `${manifest.cmdline} init_on_free=1 ${networkCmdlineWord()}`,
    disks: [],
    // A user-mode card restricted from the start (nothing leaves; `files share` adds a hostfwd on
    // 127.0.0.1 over QMP while a share lasts), so the saved state's machine arguments never change.
    network: 'isolated',
    channels: fdChannels([EXEC_CHANNEL_ID]),
    serialPorts: [{ id: EXEC_CHANNEL_ID, name: EXEC_PORT_NAME }],
    scsiController: true,
    vmgenid: true,
    startPaused: true,
  };
}

function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
}

export async function bootAppliance(
  layout: StickLayout,
  payload: GuestPayload,
  host: HostAdapter,
  notice: (message: string) => void,
): Promise<ApplianceMachine> {
  const qemu = findQemu(host, layout.root);
  const verdicts = new AcceleratorVerdicts(layout.acceleratorVerdicts, await hostFingerprint(layout.hostSalt));
  const plan = await planAccelerators('auto', await host.probeAccelerators(), verdicts);
  const { manifest } = payload;
  const base = applianceSpec(host.os, payload);
  const qemuVersion = await probeQemuVersion(qemu);
  const keyFor = (accelerator: Accelerator) => applianceStateKey(payload, qemuVersion, { ...base, accelerator });
  const attempt = (spec: MachineSpec, attach: BootAttach, resumed: boolean) =>
    Machine.boot({
      spec,
      binary: qemu.system,
      ...(qemu.prefixArgs ? { binaryPrefixArgs: qemu.prefixArgs } : {}),
      ...(qemu.env ? { binaryEnv: qemu.env } : {}),
      host,
      logs: applianceLogs(layout),
      attach,
      ...(resumed ? { resumed: true } : {}),
      signOfLifeTimeoutMs: spec.accelerator === 'tcg' ? manifest.readyTimeoutSeconds * 1000 : 15_000,
      readyTimeoutMs: manifest.readyTimeoutSeconds * 1000,
    });

  let note: string | undefined;
  const first = plan.candidates[0] ?? 'tcg';
  const check = await checkApplianceState(layout, await keyFor(first));
  if (check?.usable) {
    const started = performance.now();
    try {
      const resumed = await resumeAppliance(check.meta, { ...base, accelerator: first }, attempt, layout);
      notice(`appliance resumed in ${Math.round(performance.now() - started)} ms from its state ${describeState(check.meta)}`);
      return { ...resumed, start: { how: 'resumed', ms: Math.round(performance.now() - started) } };
    } catch (error) {
      note = `the helper appliance's saved state could not be loaded (${messageOf(error)}); booting it afresh and saving a new one`;
    }
  } else if (check) note = `the helper appliance's saved state cannot be used (${check.why}); booting it afresh and saving a new one`;
  if (note) notice(note);

  const started = performance.now();
  let execs = new ExecService();
  const machine = await bootWithFallback({
    plan,
    verdicts,
    onFallback: notice,
    boot: (accelerator) => {
      // A fresh channel for each attempt: a failed one's is gone with its QEMU.
      execs = new ExecService();
      const channel = execs.channel();
      return attempt(
        { ...base, accelerator },
        (_qmp, streams) => {
          const stream = streams[EXEC_CHANNEL_ID];
          if (stream) void channel.open?.(stream, {});
          return Promise.resolve();
        },
        false,
      );
    },
  });
  const bootMs = Math.round(performance.now() - started);
  const start: ApplianceStart = { how: 'booted', ms: bootMs, ...(note ? { note } : {}) };
  const { privateDir } = await host.controlEndpoint();
  if (!privateDir) return { machine, execs, start };
  const saveStarted = performance.now();
  try {
    const saved = await saveApplianceState({
      layout,
      key: await keyFor(machine.spec.accelerator),
      qmp: machine.qmp,
      execs,
      privateDir,
      meta: { qemu: qemuVersion, accelerator: machine.spec.accelerator, bootMs },
    });
    start.savedMs = Math.round(performance.now() - saveStarted);
    notice(`appliance booted in ${bootMs} ms; its state ${describeState(saved)} in ${start.savedMs} ms`);
  } catch (error) {
    const line = `the helper appliance's state could not be saved (${messageOf(error)}); the next start boots it again`;
    notice(line);
    start.note = note ? `${note}; ${line}` : line;
  }
  return { machine, execs, start };
}

type BootAttach = NonNullable<Parameters<typeof Machine.boot>[0]['attach']>;

/**
 * One attempt at starting from `meta`'s state, with no accelerator fallback
 * (the state is the accelerator's it was saved under): QEMU waits
 * (`-incoming defer`), the exec channel opens, the state streams in and its
 * hash is checked before `cont`; once the agent answers, the guest's clock is
 * set and its RNG reseeded. Any failure kills this QEMU and is thrown.
 */
async function resumeAppliance(
  meta: ApplianceStateMeta,
  spec: MachineSpec,
  attempt: (spec: MachineSpec, attach: BootAttach, resumed: boolean) => Promise<Machine>,
  layout: StickLayout,
): Promise<{ machine: Machine; execs: ExecService }> {
  const execs = new ExecService();
  const channel = execs.channel();
  const channels = fdChannels([EXEC_CHANNEL_ID, STATE_CHANNEL_ID]);
  const stateFd = channels.extra?.[STATE_CHANNEL_ID];
  if (stateFd?.kind !== 'fd') throw new Error('no descriptor channel for the state');
  let failure: unknown;
  let machine: Machine;
  try {
    machine = await attempt(
      { ...spec, channels, streams: [STATE_CHANNEL_ID], incoming: true },
      async (qmp, streams) => {
        const exec = streams[EXEC_CHANNEL_ID];
        if (exec) void channel.open?.(exec, {});
        const stream = streams[STATE_CHANNEL_ID];
        if (!stream) throw new Error('no state channel');
        await loadApplianceState({ layout, meta, qmp, fd: stateFd.fd, channel: stream }).catch((error: unknown) => {
          failure = error;
          throw error;
        });
      },
      true,
    );
  } catch (error) {
    // Machine.boot reports QEMU's exit; the load's own reason says more.
    throw failure ?? error;
  }
  try {
    await correctClock(machine);
    await reseedGuest(execs);
  } catch (error) {
    machine.kill();
    throw error;
  }
  return { machine, execs };
}
