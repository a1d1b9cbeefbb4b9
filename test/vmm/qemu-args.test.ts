// Test tier: integration (starts QEMU).
import assert from 'node:assert/strict';
import { buildQemuArgs, escapeOptionValue, USER_NETWORK_MAC } from '../../src/vmm/qemu-args.ts';
import type { Accelerator, HostOs, MachineSpec } from '../../src/vmm/machine-spec.ts';
import { fdChannels } from '../../src/vmm/qemu-process.ts';

function spec(overrides: Partial<MachineSpec> = {}): MachineSpec {
  return {
    name: 'pocketvm-default',
    hostOs: 'linux',
    accelerator: 'tcg',
    memoryMiB: 256,
    cpus: 2,
    kernel: '/stick/payload/default/vmlinuz',
    initrd: '/stick/payload/default/initrd.img',
    cmdline: 'console=ttyS0 panic=-1',
    disks: [],
    network: 'none',
    channels: fdChannels(),
    startPaused: true,
    ...overrides,
  };
}

/** The value following `flag`, for every occurrence. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((arg, i) => (arg === flag ? [args[i + 1]!] : []));
}

describe('buildQemuArgs', () => {
  const cases: Array<[HostOs, Accelerator, string, string]> = [
    ['linux', 'kvm', 'kvm', 'host'],
    ['linux', 'tcg', 'tcg', 'max'],
    ['windows', 'whpx', 'whpx,kernel-irqchip=off', 'max'],
    ['windows', 'tcg', 'tcg', 'max'],
    ['darwin', 'hvf', 'hvf', 'host'],
    ['darwin', 'tcg', 'tcg', 'max'],
  ];
  for (const [hostOs, accelerator, accel, cpu] of cases) {
    it(`${hostOs} host, ${accelerator}: -accel ${accel} -cpu ${cpu}`, () => {
      const args = buildQemuArgs(spec({ hostOs, accelerator }));
      assert.deepEqual(values(args, '-accel'), [accel]);
      assert.deepEqual(values(args, '-cpu'), [cpu]);
    });
  }

  it('an explicit CPU model wins over the accelerator default', () => {
    assert.deepEqual(values(buildQemuArgs(spec({ cpuModel: 'qemu64' })), '-cpu'), ['qemu64']);
  });

  it('sizes memory and vCPUs from the spec', () => {
    const args = buildQemuArgs(spec({ memoryMiB: 512, cpus: 3 }));
    assert.deepEqual(values(args, '-m'), ['512M']);
    assert.deepEqual(values(args, '-smp'), ['3']);
  });

  it('boots the payload kernel with its command line, unescaped (not an option string)', () => {
    const args = buildQemuArgs(spec({ kernel: '/a,b/vmlinuz', cmdline: 'console=ttyS0 x=1,2' }));
    assert.deepEqual(values(args, '-kernel'), ['/a,b/vmlinuz']);
    assert.deepEqual(values(args, '-append'), ['console=ttyS0 x=1,2']);
  });

  it('has no default devices, no display, no network unless asked', () => {
    const args = buildQemuArgs(spec());
    assert.ok(args.includes('-nodefaults'));
    assert.ok(args.includes('-no-user-config'));
    assert.deepEqual(values(args, '-display'), ['none']);
    assert.deepEqual(values(args, '-nic'), ['none']);
    assert.ok(!args.some((a) => a.includes('virtio-net')));
  });

  it('a page display: VNC on a private UNIX socket (no TCP port), a screen, a tablet and the vdagent clipboard port, no -k', () => {
    const args = buildQemuArgs(spec({ display: { kind: 'vnc', socket: '/run/user/0/pocketvm-vnc-a,b/vnc.sock', clipboard: true } }));
    assert.deepEqual(values(args, '-display'), ['none']);
    assert.deepEqual(values(args, '-vnc'), ['unix:/run/user/0/pocketvm-vnc-a,,b/vnc.sock']);
    assert.ok(!values(args, '-vnc').some((value) => /(^|,)(to|websocket)=|:\d+$/.test(value)), 'no TCP listener');
    assert.ok(!args.includes('-k'));
    const devices = values(args, '-device');
    assert.ok(devices.includes('virtio-vga'));
    assert.ok(devices.includes('virtio-tablet-pci'));
    assert.ok(values(args, '-chardev').includes('qemu-vdagent,id=vdagent,clipboard=on'));
    // The clipboard port comes after the virtio-serial bus it sits on.
    const bus = args.indexOf('virtio-serial-pci,id=vser0');
    const port = args.indexOf('virtserialport,bus=vser0.0,chardev=vdagent,id=vdagent-port,name=com.redhat.spice.0');
    assert.ok(bus >= 0 && port > bus);
  });

  it("a window display: QEMU's own window with the same devices, and no VNC", () => {
    const args = buildQemuArgs(spec({ display: { kind: 'window', backend: 'gtk', clipboard: true } }));
    assert.deepEqual(values(args, '-display'), ['gtk']);
    assert.deepEqual(values(args, '-vnc'), []);
    assert.ok(values(args, '-device').includes('virtio-vga'));
  });

  it('user-mode networking: one virtio card on libslirp with the address the guest looks for, nothing forwarded from the host', () => {
    const args = buildQemuArgs(spec({ network: 'user' }));
    assert.deepEqual(values(args, '-netdev'), ['user,id=net0']);
    assert.deepEqual(
      values(args, '-device').filter((d) => d.startsWith('virtio-net')),
      [`virtio-net-pci,netdev=net0,id=net0-dev,mac=${USER_NETWORK_MAC},romfile=`],
    );
    assert.deepEqual(values(args, '-nic'), []);
    // Nothing listens on the host: no hostfwd, no guestfwd, no smb share, no tftp.
    assert.doesNotMatch(args.join(' '), /hostfwd|guestfwd|smb=|tftp=/);
  });

  it("the card takes the guest's own MAC when its configuration has one", () => {
    const args = buildQemuArgs(spec({ network: 'user', networkMac: '00:50:56:01:02:03' }));
    assert.deepEqual(
      values(args, '-device').filter((d) => d.startsWith('virtio-net')),
      ['virtio-net-pci,netdev=net0,id=net0-dev,mac=00:50:56:01:02:03,romfile='],
    );
    assert.throws(() => buildQemuArgs(spec({ network: 'user', networkMac: '00:50:56:01:02:03,romfile=x' })), /bad MAC address/);
  });

  it('an isolated network keeps the same card, restricted (a saved state sees the same devices)', () => {
    const open = buildQemuArgs(spec({ network: 'user' }));
    const isolated = buildQemuArgs(spec({ network: 'isolated' }));
    assert.deepEqual(values(isolated, '-netdev'), ['user,id=net0,restrict=on']);
    assert.deepEqual(values(isolated, '-device'), values(open, '-device'));
  });

  it('wires QMP, console and agent to inherited descriptors on Linux and macOS', () => {
    for (const hostOs of ['linux', 'darwin'] as const) {
      const args = buildQemuArgs(spec({ hostOs }));
      assert.deepEqual(values(args, '-chardev'), ['socket,id=qmp,fd=3', 'socket,id=console,fd=5', 'socket,id=agent,fd=4']);
      assert.deepEqual(values(args, '-mon'), ['chardev=qmp,mode=control']);
      assert.deepEqual(values(args, '-serial'), ['chardev:console']);
      assert.ok(values(args, '-device').includes('virtserialport,bus=vser0.0,chardev=agent,id=agent-port,name=org.qemu.guest_agent.0'));
    }
  });

  it('never opens a TCP port or a filesystem socket for control', () => {
    for (const hostOs of ['linux', 'windows', 'darwin'] as const) {
      const joined = buildQemuArgs(spec({ hostOs })).join(' ');
      assert.doesNotMatch(joined, /tcp:|host=|port=|-qmp |unix:|path=\//);
    }
  });

  it('uses named pipes on Windows', () => {
    const args = buildQemuArgs(
      spec({
        hostOs: 'windows',
        accelerator: 'whpx',
        channels: {
          qmp: { kind: 'pipe', name: 'pocketvm-1-qmp' },
          agent: { kind: 'pipe', name: 'pocketvm-1-qga' },
          console: { kind: 'pipe', name: 'pocketvm-1-con' },
        },
      }),
    );
    assert.deepEqual(values(args, '-chardev'), ['pipe,id=qmp,path=pocketvm-1-qmp', 'pipe,id=console,path=pocketvm-1-con', 'pipe,id=agent,path=pocketvm-1-qga']);
  });

  it('confines QEMU with seccomp on Linux only', () => {
    assert.deepEqual(values(buildQemuArgs(spec({ hostOs: 'linux' })), '-sandbox'), ['on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny']);
    assert.deepEqual(values(buildQemuArgs(spec({ hostOs: 'windows', accelerator: 'whpx' })), '-sandbox'), []);
    assert.deepEqual(values(buildQemuArgs(spec({ hostOs: 'darwin', accelerator: 'hvf' })), '-sandbox'), []);
  });

  it('starts paused only when asked', () => {
    assert.ok(buildQemuArgs(spec({ startPaused: true })).includes('-S'));
    assert.ok(!buildQemuArgs(spec({ startPaused: false })).includes('-S'));
  });

  it('attaches disks through blockdev with commas in paths escaped', () => {
    const args = buildQemuArgs(spec({ disks: [{ id: 'home', file: '/stick/users/a,b/home.qcow2', format: 'qcow2', readOnly: false }] }));
    assert.deepEqual(values(args, '-blockdev'), [
      'driver=file,node-name=home-file,filename=/stick/users/a,,b/home.qcow2,read-only=off',
      'driver=qcow2,node-name=home,file=home-file,read-only=off',
    ]);
    assert.ok(values(args, '-device').includes('virtio-blk-pci,drive=home,id=home-dev'));
  });

  it('adds PCIe root ports for devices plugged over QMP only when asked', () => {
    assert.deepEqual(
      values(buildQemuArgs(spec()), '-device').filter((d) => d.startsWith('pcie-root-port')),
      [],
    );
    assert.deepEqual(
      values(buildQemuArgs(spec({ hotplugPorts: 2 })), '-device').filter((d) => d.startsWith('pcie-root-port')),
      ['pcie-root-port,id=pvm-port0,bus=pcie.0,chassis=1', 'pcie-root-port,id=pvm-port1,bus=pcie.0,chassis=2'],
    );
  });

  it('escapes commas in option values', () => {
    assert.equal(escapeOptionValue('a,b,,c'), 'a,,b,,,,c');
  });
});

describe('buildQemuArgs against the real QEMU', () => {
  for (const network of ['none', 'user', 'isolated'] as const) {
    it(`QEMU 7.2 accepts the Linux/TCG argument list with its fd channels and seccomp (network ${network})`, async function () {
      await acceptedByQemu(this, network);
    });
  }

  async function acceptedByQemu(test: Mocha.Context, network: MachineSpec['network']): Promise<void> {
    test.timeout(20_000);
    const { execa } = await import('execa');
    // -S + immediate quit over QMP proves the argument list parses and every
    // device and chardev exists, without booting anything; the kernel options
    // are dropped because QEMU loads the kernel even when paused.
    const all = buildQemuArgs(spec({ network }));
    const args = all.filter((arg, i) => !['-kernel', '-initrd', '-append'].includes(arg) && !['-kernel', '-initrd', '-append'].includes(all[i - 1]!));
    const child = execa('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe', 'pipe'], reject: false, buffer: { stderr: true } });
    const qmp = (child.stdio as unknown as NodeJS.ReadWriteStream[])[3]!;
    let greeted = false;
    qmp.on('data', (data: Buffer) => {
      if (!greeted && data.toString().includes('"QMP"')) {
        greeted = true;
        qmp.write('{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n');
      }
    });
    const result = await child;
    assert.equal(greeted, true, `QEMU refused the arguments: ${String(result.stderr)}`);
    assert.equal(result.exitCode, 0, String(result.stderr));
  }

  it('gives each extra serial port its own channel and device; raw streams get no device', () => {
    const args = buildQemuArgs(spec({ channels: fdChannels(['reg', 'mig']), serialPorts: [{ id: 'reg', name: 'org.pocketvm.registry.0' }], streams: ['mig'] }));
    assert.ok(values(args, '-chardev').includes('socket,id=ch-reg,fd=6'));
    assert.ok(values(args, '-device').includes('virtserialport,bus=vser0.0,chardev=ch-reg,id=reg,name=org.pocketvm.registry.0'));
    assert.ok(!args.some((arg) => arg.includes('mig')), 'a raw stream is only an inherited descriptor');
  });

  it('backs each extra network card with its own channel, no option ROM', () => {
    const args = buildQemuArgs(spec({ channels: fdChannels(['ninep']), nics: [{ id: 'ninep', mac: '02:70:76:6d:39:01' }] }));
    assert.ok(values(args, '-netdev').includes('socket,id=nd-ninep,fd=6'));
    assert.ok(values(args, '-device').includes('virtio-net-pci,netdev=nd-ninep,id=ninep,mac=02:70:76:6d:39:01,romfile=,ioeventfd=off'));
  });

  it('refuses a network card without a descriptor channel or with a bad address', () => {
    assert.throws(() => buildQemuArgs(spec({ nics: [{ id: 'ninep', mac: '02:70:76:6d:39:01' }] })), /no channel/);
    assert.throws(
      () =>
        buildQemuArgs(
          spec({ channels: { ...fdChannels(), extra: { ninep: { kind: 'pipe', name: 'x' } } }, nics: [{ id: 'ninep', mac: '02:70:76:6d:39:01' }] }),
        ),
      /descriptor/,
    );
    assert.throws(() => buildQemuArgs(spec({ channels: fdChannels(['ninep']), nics: [{ id: 'ninep', mac: '02:70:76:6d:39:01,x=y' }] })), /bad MAC/);
  });

  it('refuses a serial port without a channel', () => {
    assert.throws(() => buildQemuArgs(spec({ serialPorts: [{ id: 'reg', name: 'x' }] })), /no channel/);
  });

  it("puts guest RAM in the inherited file when it is shared, under q35's own RAM id", () => {
    const args = buildQemuArgs(spec({ memoryMiB: 512, ramFile: { fd: 9 } }));
    assert.deepEqual(values(args, '-object'), ['memory-backend-file,id=pc.ram,size=512M,mem-path=/proc/self/fd/9,share=on,prealloc=on']);
    assert.deepEqual(values(args, '-machine'), ['q35,memory-backend=pc.ram,dump-guest-core=off']);
    assert.deepEqual(values(args, '-m'), ['512M'], '-m stays, and agrees');
    const plain = buildQemuArgs(spec());
    assert.deepEqual(values(plain, '-object'), []);
    assert.deepEqual(values(plain, '-machine'), ['q35,dump-guest-core=off']);
  });

  it("keeps guest memory out of QEMU core dumps, and pauses on the guest's reboot and power-off (src/vmm/guest-life.ts)", () => {
    const args = buildQemuArgs(spec());
    assert.match(values(args, '-machine')[0]!, /dump-guest-core=off/);
    assert.deepEqual(values(args, '-action'), ['reboot=shutdown,shutdown=pause']);
  });
});
