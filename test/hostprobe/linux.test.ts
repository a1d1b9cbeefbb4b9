// The Linux adapter: parsing checked against a recorded desktop host
// (fixtures/linux-desktop-de.json), and the whole probe run live on this machine.
import assert from 'node:assert/strict';
import { constants, existsSync } from 'node:fs';
import { access, mkdir, mkdtemp, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostProfileSchema } from '../../src/hostprobe/host-profile.ts';
import { linuxHost, linuxProbe } from '../../src/hostprobe/linux.ts';
import { probeHost } from '../../src/hostprobe/probe-host.ts';
import { mountHolds } from '../../src/hostprobe/stick-drive.ts';
import { fixtureSource, loadFixture } from './fixture-source.ts';

const desktop = loadFixture('linux-desktop-de');

describe('linux host adapter (recorded desktop)', () => {
  const probe = linuxProbe(fixtureSource(desktop));

  it('OS from os-release, CPU cores from core ids, vmx from the flags', async () => {
    assert.deepEqual(await probe.os(), {
      family: 'linux',
      name: 'Debian GNU/Linux 12 (bookworm)',
      version: '12',
      kernel: '6.1.0-18-amd64',
      arch: 'x64',
      machineArch: null,
    });
    assert.deepEqual(await probe.cpu(), {
      model: 'Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz',
      cores: 2,
      threads: 8,
      virtualization: ['vmx'],
      hypervisor: false,
    });
  });

  it("a cgroup memory limit below the machine's memory counts as the host's", async () => {
    const memory = await probe.memory();
    assert.equal(memory.totalMiB, 4096);
    assert.equal(memory.availableMiB, 3072);
    assert.match(memory.note ?? '', /cgroup limits memory to 4096 MiB/);
  });

  it('/dev/kvm present but not accessible is reported, not usable', async () => {
    assert.deepEqual(await probe.accelerators(), [
      { name: 'kvm', usable: false, reason: '/dev/kvm exists but this user may not open it (join the kvm group)' },
    ]);
  });

  it('Wayland before X11; keyboard from /etc/default/keyboard (first layout); zone from the /etc/localtime link', async () => {
    assert.deepEqual(await probe.display(), { kind: 'wayland', present: true, detail: 'wayland-0' });
    assert.deepEqual(await probe.keyboard(), { layout: 'de', variant: 'nodeadkeys', native: null, source: '/etc/default/keyboard' });
    assert.deepEqual(await probe.timezone(), { name: 'Europe/Berlin', native: null, source: '/etc/localtime' });
    assert.equal(await probe.locale(), 'de_DE.UTF-8');
  });

  it('proxy from the environment, credentials redacted', async () => {
    assert.deepEqual(await probe.proxy(), {
      http: null,
      https: 'http://anna:***@proxy.example:3128',
      noProxy: ['localhost', '127.0.0.1', '.example'],
      autoConfigUrl: null,
      source: 'env',
    });
  });

  it('the USB port path of a block device from sysfs', async () => {
    assert.equal(await probe.usbPortOf('/dev/sdb'), '2-1.4');
    assert.equal(await probe.usbPortOf('/dev/vda'), null);
    assert.equal(await probe.usbPortOf('../../etc/passwd'), null);
  });

  it("other keyboard sources: XKB_DEFAULT_LAYOUT, vconsole.conf, localed's xorg file", async () => {
    const env = linuxProbe(fixtureSource(desktop, { env: { XKB_DEFAULT_LAYOUT: 'fr', XKB_DEFAULT_VARIANT: 'azerty' } }));
    assert.deepEqual(await env.keyboard(), { layout: 'fr', variant: 'azerty', native: null, source: 'XKB_DEFAULT_LAYOUT' });
    const vconsole = linuxProbe(fixtureSource(desktop, { files: { '/etc/vconsole.conf': 'KEYMAP=de-latin1\n' } }));
    assert.deepEqual(await vconsole.keyboard(), { layout: 'de', variant: null, native: 'de-latin1', source: '/etc/vconsole.conf KEYMAP' });
    const xorg = linuxProbe(
      fixtureSource(desktop, {
        files: { '/etc/X11/xorg.conf.d/00-keyboard.conf': 'Section "InputClass"\n  Option "XkbLayout" "ch"\n  Option "XkbVariant" "fr"\nEndSection\n' },
      }),
    );
    assert.deepEqual(await xorg.keyboard(), { layout: 'ch', variant: 'fr', native: null, source: '/etc/X11/xorg.conf.d/00-keyboard.conf' });
    assert.equal(await linuxProbe(fixtureSource(desktop, { files: {} })).keyboard(), null);
  });

  it('TZ wins, /etc/timezone next; a TZ that is not a zone name is ignored', async () => {
    assert.equal((await linuxProbe(fixtureSource(desktop, { env: { TZ: ':America/Chicago' } })).timezone())?.name, 'America/Chicago');
    assert.equal(
      (await linuxProbe(fixtureSource(desktop, { env: { TZ: '../../etc/shadow' }, files: { '/etc/timezone': 'Asia/Tokyo\n' } })).timezone())?.source,
      '/etc/timezone',
    );
  });
});

describe('linux host probe (live, this machine)', function () {
  this.timeout(30_000);
  let parent: string;
  before(async () => {
    parent = await mkdtemp(join(tmpdir(), 'pocketvm-probe-'));
  });
  after(() => rm(parent, { recursive: true, force: true }));

  it('gives a valid, sane profile and finds the drive holding a folder used as a stick', async () => {
    const stick = join(parent, 'folder-stick');
    await mkdir(stick);
    const profile = await probeHost({ stickRoot: stick });
    HostProfileSchema.parse(profile);
    assert.equal(profile.os.family, 'linux');
    assert.equal(profile.os.arch, process.arch);
    assert.equal(profile.cpu.threads, availableParallelism());
    assert.ok(
      profile.memory.totalMiB > 256 && profile.memory.availableMiB > 0 && profile.memory.availableMiB <= profile.memory.totalMiB,
      JSON.stringify(profile.memory),
    );
    const kvm = profile.accelerators.find((a) => a.name === 'kvm');
    const accessible = await access('/dev/kvm', constants.R_OK | constants.W_OK).then(
      () => true,
      () => false,
    );
    assert.equal(kvm?.usable, accessible, kvm?.reason);
    assert.ok(profile.display && ['x11', 'wayland', 'none'].includes(profile.display.kind));
    assert.equal(profile.stick?.root, await realpath(stick));
    assert.ok(profile.stick?.drive, `no drive found: ${JSON.stringify(profile.notes)}`);
    assert.ok(profile.stick.mountpoint && mountHolds(profile.stick.mountpoint, profile.stick.root, false));
    assert.notEqual(profile.stick.kind, 'unknown');
    assert.ok(profile.probeMs < 5000, `${profile.probeMs} ms`);
    // Not a stick (no marker): no fingerprint, and nothing written into the folder.
    assert.equal(profile.fingerprint, null);
    assert.deepEqual(await readdir(stick), []);
  });

  it('a stick (its marker present) gets the salted fingerprint, stable across probes', async () => {
    const stick = join(parent, 'real-stick');
    await mkdir(join(stick, '.pocketvm'), { recursive: true });
    await writeFile(join(stick, '.pocketvm', 'stick.json'), '{"format":1}\n');
    const first = await probeHost({ stickRoot: stick });
    const second = await probeHost({ stickRoot: stick });
    assert.match(first.fingerprint ?? '', /^[0-9a-f]{32}$/);
    assert.equal(second.fingerprint, first.fingerprint);
    assert.ok(existsSync(join(stick, '.pocketvm', 'host-salt')));
  });

  it('a failing or hanging step yields null and a note, never a throw', async () => {
    const profile = await probeHost({
      stickRoot: parent,
      stepTimeoutMs: 200,
      listDrives: () => new Promise(() => {}),
    });
    assert.equal(profile.stick?.kind, 'unknown');
    assert.equal(profile.stick?.drive, null);
    assert.deepEqual(
      profile.notes.find((n) => n.step === 'stick drive'),
      { step: 'stick drive', message: 'no answer within 400 ms' },
    );
    const broken = await probeHost({
      adapter: {
        ...linuxHost,
        probe: () => ({ ...linuxProbe(), cpu: () => Promise.reject(new Error('cpuinfo unreadable')), timezone: () => Promise.reject(new Error('no zone')) }),
      },
    });
    HostProfileSchema.parse(broken);
    assert.equal(broken.cpu.threads, availableParallelism(), 'the node:os fallback');
    assert.equal(broken.locale.timezone, null);
    assert.deepEqual(
      broken.notes.filter((n) => n.step === 'cpu' || n.step === 'timezone'),
      [
        { step: 'cpu', message: 'cpuinfo unreadable' },
        { step: 'timezone', message: 'no zone' },
      ],
    );
  });

  it('no USB access (no /sys/bus/usb here, or no permission) is a note, not a crash', async () => {
    const profile = await probeHost({
      stickRoot: parent,
      listDrives: async () => [
        {
          device: '/dev/sdz',
          busType: 'USB',
          isUSB: true,
          size: 1,
          isReadOnly: false,
          isRemovable: true,
          isSystem: false,
          isVirtual: false,
          mountpoints: [{ path: '/' }],
        },
      ],
      listUsbDevices: () => Promise.reject(new Error('getDevices error: /sys/bus/usb/devices/ not found (errno 2)')),
    });
    assert.equal(profile.stick?.kind, 'removable');
    assert.equal(profile.stick?.usbIdentity, null);
    assert.match(profile.notes.find((n) => n.step === 'stick usb')?.message ?? '', /getDevices error/);
  });
});
