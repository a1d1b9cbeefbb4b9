// The helper appliance's QEMU: the appliance payload (payload/appliance/,
// built by `node build.js payload --guest appliance`), headless, the exec
// port for running commands and moving bytes, an empty virtio-scsi
// controller the sources are hot-plugged onto, and a user-mode network card
// restricted from the start (nothing leaves the appliance; `files share`
// adds a hostfwd on the host's 127.0.0.1 while a share lasts).
import type { HostAdapter } from '../hostprobe/host-adapter.ts';
import type { GuestPayload } from '../payload/guest-payload.ts';
import { hostFingerprint } from '../platform/host-fingerprint.ts';
import { EXEC_CHANNEL_ID, EXEC_PORT_NAME, ExecService } from '../session/exec-channel.ts';
import { NETWORK_CMDLINE_WORD } from '../session/network-setting.ts';
import type { StickLayout } from '../stick/layout.ts';
import { AcceleratorVerdicts, bootWithFallback, planAccelerators } from '../vmm/accelerator-fallback.ts';
import { Machine } from '../vmm/machine.ts';
import type { MachineSpec } from '../vmm/machine-spec.ts';
import { findQemu } from '../vmm/qemu-binary.ts';
import { fdChannels } from '../vmm/qemu-process.ts';
import { join } from 'node:path';

export interface ApplianceMachine {
  machine: Machine;
  execs: ExecService;
}

export function applianceLogs(layout: StickLayout): { qemu: string; console: string; daemon: string } {
  return {
    qemu: join(layout.runDir, 'appliance.qemu.log'),
    console: join(layout.runDir, 'appliance.console.log'),
    daemon: join(layout.runDir, 'appliance.log'),
  };
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
  const execs = new ExecService();
  const channel = execs.channel();
  const { manifest } = payload;
  const base: Omit<MachineSpec, 'accelerator'> = {
    name: 'pocketvm-appliance',
    hostOs: host.os,
    memoryMiB: manifest.memory.recommendedMiB,
    cpus: manifest.cpus.recommended,
    kernel: payload.kernel,
    initrd: payload.initrd,
    // pocketvm.net=MAC: the guest's boot step takes its address by DHCP, which restrict=on still answers.
    cmdline: `${manifest.cmdline} ${NETWORK_CMDLINE_WORD}`,
    disks: [],
    network: 'isolated',
    channels: fdChannels([EXEC_CHANNEL_ID]),
    serialPorts: [{ id: EXEC_CHANNEL_ID, name: EXEC_PORT_NAME }],
    scsiController: true,
    startPaused: true,
  };
  const machine = await bootWithFallback({
    plan,
    verdicts,
    onFallback: notice,
    boot: (accelerator) =>
      Machine.boot({
        spec: { ...base, accelerator },
        binary: qemu.system,
        ...(qemu.prefixArgs ? { binaryPrefixArgs: qemu.prefixArgs } : {}),
        ...(qemu.env ? { binaryEnv: qemu.env } : {}),
        host,
        logs: applianceLogs(layout),
        attach: (_qmp, streams) => {
          const stream = streams[EXEC_CHANNEL_ID];
          if (stream) void channel.open?.(stream, {});
          return Promise.resolve();
        },
        signOfLifeTimeoutMs: accelerator === 'tcg' ? manifest.readyTimeoutSeconds * 1000 : 15_000,
        readyTimeoutMs: manifest.readyTimeoutSeconds * 1000,
      }),
  });
  return { machine, execs };
}
