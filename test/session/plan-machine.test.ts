// Planning the machine (src/session/launch/plan-machine.ts) from the features
// a launch collected: channels keep the features' order (a saved state needs
// the same devices in the same order), each gets one descriptor, serial ports,
// cards and raw streams their devices, the kernel command line the features'
// words; a feature with a shape (a resume) fixes memory, vCPUs, CPU model and
// the one accelerator, and every feature hears the final size.
import assert from 'node:assert/strict';
import type { LaunchFeature } from '../../src/session/launch/feature.ts';
import { planMachine } from '../../src/session/launch/plan-machine.ts';
import { PORTABLE_CPU_MODEL } from '../../src/vmm/migration.ts';
import { USER_NETWORK_MAC } from '../../src/vmm/qemu-args.ts';
import { fdChannels } from '../../src/vmm/qemu-process.ts';

/** The first extra channel's descriptor (after QMP, agent and console). */
const FIRST_EXTRA_FD = (fdChannels(['first']).extra!['first'] as { fd: number }).fd;

const PAYLOAD = {
  manifest: { cmdline: 'console=ttyS0', devices: { network: 'none' } },
  kernel: '/p/vmlinuz',
  initrd: '/p/initrd.img',
} as unknown as Parameters<typeof planMachine>[0]['payload'];
const ACCELERATORS = { candidates: ['kvm', 'tcg'] as ('kvm' | 'tcg')[], notes: ['kvm usable'] };

function plan(features: LaunchFeature[], payload = PAYLOAD, networkMac?: string) {
  return planMachine({
    guest: 'default',
    hostOs: 'linux',
    payload,
    accelerators: ACCELERATORS,
    sizing: { memoryMiB: 512, cpus: 2 },
    features,
    ...(networkMac ? { networkMac } : {}),
  });
}

const NETWORKED = { ...PAYLOAD, manifest: { ...PAYLOAD.manifest, devices: { ...PAYLOAD.manifest.devices, network: 'user' } } } as typeof PAYLOAD;

describe('planning the machine from the features', () => {
  it("without features: the payload's machine, the portable CPU, no extra channels", () => {
    const { spec, accelerators, channels, sharesGuestRam } = plan([]);
    assert.equal(spec.name, 'pocketvm-default');
    assert.equal(spec.cmdline, 'console=ttyS0');
    assert.equal(spec.cpuModel, PORTABLE_CPU_MODEL);
    assert.equal(spec.memoryMiB, 512);
    assert.equal(spec.cpus, 2);
    assert.equal(spec.startPaused, true);
    assert.equal(spec.channels.extra, undefined);
    assert.equal(spec.hotplugPorts, undefined);
    assert.equal(spec.incoming, undefined);
    assert.deepEqual(channels, []);
    assert.equal(accelerators, ACCELERATORS);
    assert.equal(sharesGuestRam, false);
  });

  it("channels, devices and command-line words in the features' order", () => {
    const features: LaunchFeature[] = [
      { name: 'disk', cmdline: ['pocketvm.user=alice'], hotplugPorts: 1 },
      { name: 'registry', channels: [{ id: 'registry', kind: 'serial', name: 'org.pocketvm.registry' }], cmdline: ['pocketvm.registry'] },
      {
        name: 'namespace',
        channels: [{ id: 'ninep', kind: 'nic', mac: '02:70:76:6d:39:01' }],
        cmdline: ['pocketvm.9p=02:70:76:6d:39:01'],
        sharesGuestRam: true,
      },
      { name: 'exec', channels: [{ id: 'exec', kind: 'serial' }] },
      { name: 'resume', channels: [{ id: 'vmstate-in', kind: 'stream' }] },
    ];
    const { spec, channels, sharesGuestRam } = plan(features);
    assert.deepEqual(
      channels.map((channel) => channel.id),
      ['registry', 'ninep', 'exec', 'vmstate-in'],
    );
    assert.deepEqual(spec.channels.extra, {
      registry: { kind: 'fd', fd: FIRST_EXTRA_FD },
      ninep: { kind: 'fd', fd: FIRST_EXTRA_FD + 1 },
      exec: { kind: 'fd', fd: FIRST_EXTRA_FD + 2 },
      'vmstate-in': { kind: 'fd', fd: FIRST_EXTRA_FD + 3 },
    });
    assert.deepEqual(spec.serialPorts, [
      { id: 'registry', name: 'org.pocketvm.registry' },
      { id: 'exec', name: 'exec' },
    ]);
    assert.deepEqual(spec.nics, [{ id: 'ninep', mac: '02:70:76:6d:39:01' }]);
    assert.deepEqual(spec.streams, ['vmstate-in']);
    assert.equal(spec.cmdline, 'console=ttyS0 pocketvm.user=alice pocketvm.registry pocketvm.9p=02:70:76:6d:39:01');
    assert.equal(spec.hotplugPorts, 1);
    assert.equal(sharesGuestRam, true);
  });

  it('a shape (a resume) fixes the machine and the one accelerator; every feature hears the final size', () => {
    const heard: Array<{ memoryMiB: number; cpus: number }> = [];
    const restore = { describe: () => '', finish: async () => ({}) as never, explain: (error: unknown) => error as never };
    const {
      spec,
      accelerators,
      restore: planned,
    } = plan([
      { name: 'registry', planned: (machine) => heard.push(machine) },
      { name: 'resume', shape: { memoryMiB: 768, cpus: 1, cpuModel: 'qemu64', accelerator: 'tcg', incoming: true }, restore },
    ]);
    assert.equal(spec.memoryMiB, 768);
    assert.equal(spec.cpus, 1);
    assert.equal(spec.cpuModel, 'qemu64');
    assert.equal(spec.incoming, true);
    assert.deepEqual(accelerators, { candidates: ['tcg'], notes: ['kvm usable'] });
    assert.equal(planned, restore);
    assert.deepEqual(heard, [{ memoryMiB: 768, cpus: 1 }]);
  });

  it("the payload's user-mode network, with the card's address on the command line for the guest's DHCP", () => {
    const { spec } = plan([{ name: 'disk', cmdline: ['pocketvm.user=alice'] }], NETWORKED);
    assert.equal(spec.network, 'user');
    assert.equal(spec.cmdline, `console=ttyS0 pocketvm.user=alice pocketvm.net=${USER_NETWORK_MAC}`);
  });

  it("a guest's own MAC (guest config set mac, an imported machine's): the card has it and the command line names it", () => {
    const { spec } = plan([], NETWORKED, '52:54:00:aa:bb:01');
    assert.equal(spec.networkMac, '52:54:00:aa:bb:01');
    assert.equal(spec.cmdline, 'console=ttyS0 pocketvm.net=52:54:00:aa:bb:01');
    assert.equal(plan([], NETWORKED).spec.networkMac, undefined);
  });

  it('a feature that isolates the network (Network\\Enabled off) keeps the card, restricted; a payload without network stays without', () => {
    const isolating: LaunchFeature = { name: 'registry', isolatesNetwork: true };
    assert.equal(plan([isolating], NETWORKED).spec.network, 'isolated');
    const none = plan([isolating]).spec;
    assert.equal(none.network, 'none');
    assert.equal(none.cmdline, 'console=ttyS0');
  });
});
