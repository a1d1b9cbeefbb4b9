// One stick guest described as `launcher export` describes it
// (src/export/guest-descriptor.ts), for the writers' and readers' unit tests:
// each test changes only what it is about.
import type { GuestDescriptor } from '../../src/export/guest-descriptor.ts';

export function testDescriptor(changes: Partial<GuestDescriptor> = {}): GuestDescriptor {
  return {
    name: 'web',
    payload: 'console-image',
    kind: 'image',
    firmware: 'bios',
    machine: 'q35',
    cpus: 2,
    memoryMiB: 512,
    boot: { from: 'kernel', kernel: '/s/vmlinuz', initrd: '/s/initrd.img', cmdline: "console=ttyS0 pocketvm.root=pocketvm-root it's" },
    disks: [{ role: 'system', name: 'system', base: '/s/base.ext4', sizeBytes: 1 << 30, bus: 'virtio-blk', serial: 'pocketvm-root' }],
    nics: [{ model: 'virtio-net', mac: '52:54:00:12:34:56', network: 'user' }],
    display: 'none',
    serialConsole: true,
    agentChannel: 'org.qemu.guest_agent.0',
    stickOnly: { shares: [], devices: [] },
    facts: { os: 'linux', readyMarker: 'POCKETVM_READY' },
    ...changes,
  };
}
