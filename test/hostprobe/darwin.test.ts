// The macOS adapter against recorded command outputs (fixtures/darwin-*.json):
// it is never run on macOS here.
import assert from 'node:assert/strict';
import { darwinHost, darwinProbe, parseScutilProxy } from '../../src/hostprobe/darwin.ts';
import { HostProfileSchema } from '../../src/hostprobe/host-profile.ts';
import { probeHost } from '../../src/hostprobe/probe-host.ts';
import { fixtureSource, loadFixture } from './fixture-source.ts';

const m2 = loadFixture('darwin-arm64-rosetta-de');
const intel = loadFixture('darwin-intel-us');

describe('darwin host adapter (recorded fixtures)', () => {
  it('OS version from sw_vers; Rosetta 2 reveals the arm64 machine under the x64 launcher', async () => {
    assert.deepEqual(await darwinProbe(fixtureSource(m2)).os(), {
      family: 'darwin',
      name: 'macOS',
      version: '14.4.1 (23E224)',
      kernel: '23.4.0',
      arch: 'x64',
      machineArch: 'arm64',
    });
    assert.equal((await darwinProbe(fixtureSource(intel)).os()).machineArch, null);
  });

  it('CPU from sysctl: Apple silicon has only Hypervisor.framework support, Intel lists VMX', async () => {
    assert.deepEqual(await darwinProbe(fixtureSource(m2)).cpu(), { model: 'Apple M2', cores: 8, threads: 8, virtualization: ['hv'], hypervisor: false });
    assert.deepEqual(await darwinProbe(fixtureSource(intel)).cpu(), {
      model: 'Intel(R) Core(TM) i7-9750H CPU @ 2.60GHz',
      cores: 6,
      threads: 12,
      virtualization: ['vmx', 'hv'],
      hypervisor: false,
    });
  });

  it("available memory is free + inactive + speculative pages (vm_stat), not node's free pages", async () => {
    const memory = await darwinProbe(fixtureSource(m2)).memory();
    assert.equal(memory.totalMiB, 16384);
    assert.equal(memory.availableMiB, Math.floor(((3905 + 279012 + 1813) * 16384) / 1048576));
    assert.deepEqual(await darwinProbe(fixtureSource(intel)).memory(), { totalMiB: 16384, availableMiB: 4096 }, "without vm_stat: node's figure");
  });

  it('hvf from kern.hv_support; one sysctl call serves CPU, memory and accelerator', async () => {
    const source = fixtureSource(m2);
    const probe = darwinProbe(source);
    await Promise.all([probe.cpu(), probe.memory(), probe.accelerators()]);
    assert.deepEqual(await probe.accelerators(), [{ name: 'hvf', usable: true, reason: 'sysctl kern.hv_support = 1' }]);
    assert.equal(source.ran.filter((c) => c.startsWith('sysctl hw.physicalcpu')).length, 1);
    const none = darwinProbe(fixtureSource(m2, { commands: {} }));
    assert.deepEqual(await none.accelerators(), [{ name: 'hvf', usable: false, reason: 'sysctl kern.hv_support could not be read' }]);
  });

  it('keyboard, locale and time zone', async () => {
    const probe = darwinProbe(fixtureSource(m2));
    assert.deepEqual(await probe.keyboard(), {
      layout: 'de',
      variant: null,
      native: 'com.apple.keylayout.German',
      source: 'com.apple.HIToolbox AppleCurrentKeyboardLayoutInputSourceID',
    });
    assert.equal(await probe.locale(), 'de_DE');
    assert.deepEqual(await probe.timezone(), { name: 'Europe/Berlin', native: null, source: '/etc/localtime' });
    assert.deepEqual(
      await darwinProbe(fixtureSource(intel)).timezone(),
      { name: 'America/New_York', native: null, source: 'TZ' },
      'TZ wins over /etc/localtime',
    );
    assert.equal((await darwinProbe(fixtureSource(intel)).keyboard())?.layout, 'us');
  });

  it('proxy from scutil --proxy; disabled entries are no proxy', async () => {
    assert.deepEqual(await darwinProbe(fixtureSource(m2)).proxy(), {
      http: 'http://proxy.example.net:3128',
      https: 'http://proxy.example.net:3128',
      noProxy: ['*.local', '169.254/16', 'intranet.example'],
      autoConfigUrl: 'http://wpad.example.net/proxy.pac',
      source: 'scutil',
    });
    assert.equal((await darwinProbe(fixtureSource(intel)).proxy()).source, 'none');
    assert.equal(parseScutilProxy('<dictionary> {\n}\n'), null);
  });

  it('without drivelist.node (none for macOS on the stick): the drive from df and diskutil', async () => {
    const profile = await probeHost({
      adapter: darwinHost,
      source: fixtureSource(m2),
      stickRoot: '/Volumes/POCKETVM',
      listDrives: () => Promise.reject(new Error('the native addon drivelist.node is missing beside the launcher')),
      listUsbDevices: async () => [],
    });
    HostProfileSchema.parse(profile);
    assert.deepEqual(profile.stick?.drive, {
      device: '/dev/disk4',
      description: 'SanDisk 3.2Gen1',
      bus: 'USB',
      removable: true,
      usb: true,
      system: false,
      virtual: false,
      sizeBytes: 61524148224,
      readOnly: false,
    });
    assert.equal(profile.stick?.mountpoint, '/Volumes/POCKETVM');
    assert.equal(profile.stick?.kind, 'removable');
    assert.equal(profile.stick?.usbIdentity, null);
    assert.match(profile.notes.map((n) => n.message).join('\n'), /could not be tied to one USB device/);
  });

  it('a whole profile: the display is always there; a folder on the internal disk is said to be one', async () => {
    const profile = await probeHost({
      adapter: darwinHost,
      source: fixtureSource(m2),
      stickRoot: '/Users/anna/pocketvm',
      listDrives: async () => [
        {
          device: '/dev/disk3',
          description: 'AppleAPFSMedia',
          busType: 'PCI',
          size: 494384795648,
          isReadOnly: false,
          isRemovable: false,
          isSystem: true,
          isVirtual: true,
          isUSB: false,
          mountpoints: [{ path: '/' }, { path: '/System/Volumes/Data' }],
        },
      ],
      listUsbDevices: async () => assert.fail('a fixed disk is not looked up on USB'),
    });
    HostProfileSchema.parse(profile);
    assert.deepEqual(profile.display, { kind: 'quartz', present: true, detail: null });
    assert.equal(profile.stick?.mountpoint, '/');
    assert.equal(profile.stick?.kind, 'fixed-disk-folder');
    assert.match(profile.notes.map((n) => n.message).join('\n'), /folder on a fixed disk/);
  });
});
