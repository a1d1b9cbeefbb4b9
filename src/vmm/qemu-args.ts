// MachineSpec → QEMU argument list. Pure: no I/O, no environment, so every
// host/accelerator combination is unit-tested without QEMU. Secrets never pass
// through here: keys reach QEMU over QMP after start.
import { GUEST_LIFE_ACTIONS } from './guest-life.ts';
import { RAM_BACKEND_ID } from './guest-ram.ts';
import {
  AGENT_PORT_ID,
  AGENT_PORT_NAME,
  type Accelerator,
  type ChannelEndpoint,
  type DiskSpec,
  type DisplaySpec,
  type HostOs,
  type MachineSpec,
  VDAGENT_PORT_NAME,
} from './machine-spec.ts';

/** Per-accelerator `-accel` value and default CPU model. */
const ACCELERATOR_ARGS: Record<Accelerator, { accel: string; cpu: string }> = {
  kvm: { accel: 'kvm', cpu: 'host' },
  hvf: { accel: 'hvf', cpu: 'host' },
  // WHPX's in-kernel irqchip is unreliable across Windows builds; QEMU's own
  // documentation for Windows hosts recommends turning it off.
  whpx: { accel: 'whpx,kernel-irqchip=off', cpu: 'max' },
  // TCG: `max` gives the guest every feature TCG emulates.
  tcg: { accel: 'tcg', cpu: 'max' },
};

/** What differs by host OS, decided here and nowhere else. */
const HOST_TRAITS: Record<HostOs, { sandbox: string[] }> = {
  // seccomp: a compromised QEMU may not spawn, elevate or touch resource limits.
  linux: { sandbox: ['-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny'] },
  windows: { sandbox: [] },
  darwin: { sandbox: [] },
};

/** QEMU option values separate fields with commas; a literal comma is doubled. */
export function escapeOptionValue(value: string): string {
  return value.replaceAll(',', ',,');
}

function chardevArgs(id: string, endpoint: ChannelEndpoint): string[] {
  switch (endpoint.kind) {
    case 'fd':
      return ['-chardev', `socket,id=${id},fd=${endpoint.fd}`];
    case 'pipe':
      // QEMU on Windows serves \\.\pipe\<path>; the launcher connects right after start.
      return ['-chardev', `pipe,id=${id},path=${escapeOptionValue(endpoint.name)}`];
  }
}

function diskArgs(disk: DiskSpec): string[] {
  const readOnly = disk.readOnly ? 'on' : 'off';
  return [
    '-blockdev',
    `driver=file,node-name=${disk.id}-file,filename=${escapeOptionValue(disk.file)},read-only=${readOnly}`,
    '-blockdev',
    `driver=${disk.format},node-name=${disk.id},file=${disk.id}-file,read-only=${readOnly}`,
    '-device',
    `virtio-blk-pci,drive=${disk.id},id=${disk.id}-dev`,
  ];
}

const MAC_ADDRESS = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

/** The user-mode card's address, by which the guest's boot step finds it (pocketvm.net=MAC). */
export const USER_NETWORK_MAC = '52:54:00:12:34:56';

/**
 * User-mode networking (libslirp inside QEMU): no privileges, no host
 * interface, and no `hostfwd`, so nothing listens on the host. `isolated`
 * keeps the same card (a saved state resumes whatever the setting) with
 * restrict=on: libslirp then answers the guest's DHCP and drops everything
 * else, DNS and the host's 127.0.0.1 (10.0.2.2) included.
 * romfile=: no iPXE option ROM; nothing boots from this card.
 */
function networkArgs(network: MachineSpec['network'], mac = USER_NETWORK_MAC): string[] {
  if (network === 'none') return ['-nic', 'none'];
  if (!MAC_ADDRESS.test(mac)) throw new Error(`the user-mode card: bad MAC address ${mac}`);
  const restrict = network === 'isolated' ? ',restrict=on' : '';
  return ['-netdev', `user,id=net0${restrict}`, '-device', `virtio-net-pci,netdev=net0,id=net0-dev,mac=${mac},romfile=`];
}

function serialPortArgs(spec: MachineSpec): string[] {
  return (spec.serialPorts ?? []).flatMap((port) => {
    const endpoint = spec.channels.extra?.[port.id];
    if (!endpoint) throw new Error(`serial port ${port.id} has no channel`);
    return [...chardevArgs(`ch-${port.id}`, endpoint), '-device', `virtserialport,bus=vser0.0,chardev=ch-${port.id},id=${port.id},name=${port.name}`];
  });
}

function nicArgs(spec: MachineSpec): string[] {
  return (spec.nics ?? []).flatMap((nic) => {
    const endpoint = spec.channels.extra?.[nic.id];
    if (!endpoint) throw new Error(`network card ${nic.id} has no channel`);
    // -netdev socket takes a descriptor only: a named pipe (Windows) cannot back a card.
    if (endpoint.kind !== 'fd') throw new Error(`network card ${nic.id} needs a descriptor channel, not a ${endpoint.kind}`);
    if (!MAC_ADDRESS.test(nic.mac)) throw new Error(`network card ${nic.id}: bad MAC address ${nic.mac}`);
    // romfile=: no iPXE option ROM; nothing boots from this card. ioeventfd=off: the guest's
    // notification is taken in the vCPU's own exit, not through an event notifier, where QEMU 7.2
    // under TCG likely lost one now and then (the card's transmit queue stalled: nic-tx-watchdog.ts).
    return [
      '-netdev',
      `socket,id=nd-${nic.id},fd=${endpoint.fd}`,
      '-device',
      `virtio-net-pci,netdev=nd-${nic.id},id=${nic.id},mac=${nic.mac},romfile=,ioeventfd=off`,
    ];
  });
}

/** The controller the helper appliance's sources are hot-plugged onto (MachineSpec.scsiController). */
export const SCSI_CONTROLLER_ID = 'scsi0';

function scsiControllerArgs(spec: MachineSpec): string[] {
  return spec.scsiController ? ['-device', `virtio-scsi-pci,id=${SCSI_CONTROLLER_ID}`] : [];
}

/** The id of the `index`-th hot-plug port (MachineSpec.hotplugPorts). */
export function hotplugPort(index: number): string {
  return `pvm-port${index}`;
}

/** -machine, with the RAM backend when guest RAM is a file the launcher shares (MachineSpec.ramFile). */
function machineArgs(spec: MachineSpec): string[] {
  // dump-guest-core=off: a QEMU core dump, if one is ever written, leaves the guest's memory out.
  if (!spec.ramFile) return ['-machine', 'q35,dump-guest-core=off'];
  // prealloc: a full /dev/shm fails the start, not the guest later (SIGBUS).
  return [
    '-object',
    `memory-backend-file,id=${RAM_BACKEND_ID},size=${spec.memoryMiB}M,mem-path=/proc/self/fd/${spec.ramFile.fd},share=on,prealloc=on`,
    '-machine',
    `q35,memory-backend=${RAM_BACKEND_ID},dump-guest-core=off`,
  ];
}

/** Where the screen goes: nowhere, QEMU's VNC on a private UNIX socket (no TCP port), or QEMU's own window. */
function displayBackendArgs(display: DisplaySpec | undefined): string[] {
  if (display?.kind === 'vnc') return ['-display', 'none', '-vnc', `unix:${escapeOptionValue(display.socket)}`];
  if (display?.kind === 'window') return ['-display', display.backend];
  return ['-display', 'none'];
}

/**
 * The devices a screen needs: virtio-vga (VGA text mode for a console guest,
 * virtio-gpu with resizing once the guest loads its driver), an absolute
 * pointer, and the clipboard: QEMU's own vdagent on spice-vdagent's port.
 * Keys go to the PS/2 keyboard as scancodes (VNC's extended key events), so
 * no `-k` layout is ever guessed on the host.
 */
function displayDeviceArgs(display: DisplaySpec | undefined): string[] {
  if (!display) return [];
  return [
    '-device',
    'virtio-vga',
    '-device',
    'virtio-tablet-pci',
    ...(display.clipboard
      ? ['-chardev', 'qemu-vdagent,id=vdagent,clipboard=on', '-device', `virtserialport,bus=vser0.0,chardev=vdagent,id=vdagent-port,name=${VDAGENT_PORT_NAME}`]
      : []),
  ];
}

export function buildQemuArgs(spec: MachineSpec): string[] {
  const accel = ACCELERATOR_ARGS[spec.accelerator];
  return [
    '-name',
    `${escapeOptionValue(spec.name)},debug-threads=on`,
    '-nodefaults',
    '-no-user-config',
    ...displayBackendArgs(spec.display),
    ...machineArgs(spec),
    '-accel',
    accel.accel,
    '-cpu',
    spec.cpuModel ?? accel.cpu,
    '-m',
    `${spec.memoryMiB}M`,
    '-smp',
    String(spec.cpus),
    // The guest's reboot or power-off pauses QEMU until the launcher has acted (src/vmm/guest-life.ts).
    ...GUEST_LIFE_ACTIONS,
    ...HOST_TRAITS[spec.hostOs].sandbox,
    '-kernel',
    spec.kernel,
    '-initrd',
    spec.initrd,
    '-append',
    spec.cmdline,
    ...chardevArgs('qmp', spec.channels.qmp),
    '-mon',
    'chardev=qmp,mode=control',
    ...chardevArgs('console', spec.channels.console),
    '-serial',
    'chardev:console',
    '-device',
    'virtio-serial-pci,id=vser0',
    ...chardevArgs('agent', spec.channels.agent),
    '-device',
    `virtserialport,bus=vser0.0,chardev=agent,id=${AGENT_PORT_ID},name=${AGENT_PORT_NAME}`,
    ...serialPortArgs(spec),
    ...displayDeviceArgs(spec.display),
    ...networkArgs(spec.network, spec.networkMac),
    ...nicArgs(spec),
    ...spec.disks.flatMap(diskArgs),
    ...scsiControllerArgs(spec),
    ...(spec.vmgenid ? ['-device', 'vmgenid,guid=auto'] : []),
    ...Array.from({ length: spec.hotplugPorts ?? 0 }, (_, i) => ['-device', `pcie-root-port,id=${hotplugPort(i)},bus=pcie.0,chassis=${i + 1}`]).flat(),
    ...(spec.startPaused ? ['-S'] : []),
    ...(spec.incoming ? ['-incoming', 'defer'] : []),
  ];
}
