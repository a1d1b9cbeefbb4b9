// The presence monitor: debouncing and "first signal wins" with scripted
// sources; the direct I/O probe against a real folder and a real FUSE mount
// (bindfs) that is killed or unmounted; the drive-list and USB sources against
// fake listers, bindings and sysfs trees (this machine has no USB).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { drivelistSource, driveHolding, type ListedDrive } from '../../src/stick/presence-drivelist.ts';
import { devMajorMinor, ioSource, meansGone } from '../../src/stick/presence-io.ts';
import { PresenceMonitor, type RemovalEvent } from '../../src/stick/presence-monitor.ts';
import type { Evidence, PresenceSource, SourceReport } from '../../src/stick/presence-source.ts';
import { matchesIdentity, type UsbBinding, type UsbDeviceInfo, usbIdentityOfBlockDevice, usbSource } from '../../src/stick/presence-usb.ts';

/** A source driven by the test: `fail()` makes its looks fail, `heal()` succeed. */
function scripted(
  name: string,
): PresenceSource & { report?: SourceReport; failing: boolean; fail(): void; heal(): void; rechecks: number; stopped: boolean; look(): void } {
  const evidence: Evidence = { signal: 'io', detail: `${name} failed` };
  const source = {
    name,
    report: undefined as SourceReport | undefined,
    failing: false,
    rechecks: 0,
    stopped: false,
    async start(report: SourceReport) {
      source.report = report;
      return true;
    },
    look() {
      if (source.failing) source.report?.suspect(evidence);
      else source.report?.cleared();
    },
    recheck() {
      source.rechecks += 1;
      source.look();
    },
    stop() {
      source.stopped = true;
    },
    fail() {
      source.failing = true;
      source.look();
    },
    heal() {
      source.failing = false;
    },
  };
  return source;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Read afresh (an assert on `monitor.removal` would narrow it for the rest of the test). */
const removalOf = (monitor: PresenceMonitor): RemovalEvent | undefined => monitor.removal;

const hasBindfs = spawnSync('bindfs', ['--version']).status === 0 && existsSync('/dev/fuse');

describe('presence monitor', () => {
  describe('debouncing and the first signal', () => {
    it('one transient failure is not a removal: the second look clears it', async () => {
      const source = scripted('flaky');
      const monitor = await PresenceMonitor.start('/nowhere', { sources: [source], confirmMs: 20 });
      let removed = false;
      monitor.on('removed', () => (removed = true));
      source.failing = true;
      source.report!.suspect({ signal: 'io', detail: 'once' });
      source.heal();
      await sleep(80);
      assert.equal(source.rechecks, 1);
      assert.equal(removed, false);
      assert.equal(monitor.removal, undefined);
      monitor.stop();
      assert.equal(source.stopped, true);
    });

    it('a failure confirmed by the second look is a removal, reported once with both timestamps', async () => {
      const source = scripted('dead');
      const monitor = await PresenceMonitor.start('/nowhere', { sources: [source], confirmMs: 20 });
      const events: unknown[] = [];
      monitor.on('removed', (event) => events.push(event));
      const before = Date.now();
      source.fail();
      const event = await monitor.removed();
      await sleep(50);
      assert.equal(events.length, 1);
      assert.equal(event.source, 'dead');
      assert.equal(event.signal, 'io');
      assert.ok(event.firstEvidenceAt >= before && event.confirmedAt >= event.firstEvidenceAt);
      assert.ok(event.confirmedAt - event.firstEvidenceAt < 400);
      assert.equal(source.stopped, true);
    });

    it('two failures further apart than the window are two suspicions, not a removal', async () => {
      const source = scripted('slow');
      // The source never looks again by itself (recheck does nothing here).
      source.recheck = () => {};
      const monitor = await PresenceMonitor.start('/nowhere', { sources: [source], confirmMs: 10, debounceWindowMs: 50 });
      source.report!.suspect({ signal: 'io', detail: 'first' });
      await sleep(120);
      source.report!.suspect({ signal: 'io', detail: 'second' });
      await sleep(20);
      assert.equal(monitor.removal, undefined);
      source.report!.suspect({ signal: 'io', detail: 'third' });
      assert.equal(removalOf(monitor)?.detail, 'third');
      monitor.stop();
    });

    it('the first sure signal wins and every source is stopped', async () => {
      const slow = scripted('slow');
      const usb = scripted('usb');
      const monitor = await PresenceMonitor.start('/nowhere', { sources: [slow, usb] });
      usb.report!.removed({ signal: 'usb', detail: 'detached' });
      slow.report!.removed({ signal: 'drivelist', detail: 'later' });
      assert.equal(monitor.removal?.source, 'usb');
      assert.equal(monitor.removal?.signal, 'usb');
      assert.equal(slow.stopped && usb.stopped, true);
    });

    it('sources that cannot work here drop out; the others watch', async () => {
      const none: PresenceSource = { name: 'none', start: async () => false, recheck() {}, stop() {} };
      const broken: PresenceSource = { name: 'broken', start: async () => Promise.reject(new Error('no libusb')), recheck() {}, stop() {} };
      const io = scripted('io');
      const monitor = await PresenceMonitor.start('/nowhere', { sources: [none, broken, io] });
      assert.deepEqual(monitor.sources, ['io']);
      monitor.stop();
    });
  });

  describe('the direct probe (a stick that is only a folder)', () => {
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'pocketvm-presence-'));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('sees nothing while the folder is there, and its removal within a few intervals', async () => {
      const root = join(dir, 'stick');
      await mkdir(join(root, '.pocketvm'), { recursive: true });
      await writeFile(join(root, '.pocketvm', 'stick.json'), '{}');
      const monitor = await PresenceMonitor.start(root, { sources: [ioSource(root, { intervalMs: 50 })], confirmMs: 10 });
      await sleep(300);
      assert.equal(monitor.removal, undefined);
      const removedAt = performance.now();
      await rm(root, { recursive: true });
      const event = await monitor.removed();
      assert.equal(event.signal, 'root-gone');
      assert.match(event.detail, /ENOENT/);
      assert.ok(event.confirmedMonotonic - removedAt < 500, `${event.confirmedMonotonic - removedAt} ms`);
    });

    it('classifies the errors a yanked device gives', () => {
      for (const code of ['ENOTCONN', 'EIO', 'ENOENT', 'ENODEV', 'ENXIO', 'ESTALE'])
        assert.equal(meansGone(Object.assign(new Error(code), { code })), true, code);
      for (const code of ['EACCES', 'EMFILE', 'EINTR']) assert.equal(meansGone(Object.assign(new Error(code), { code })), false, code);
    });

    it('splits Linux dev_t like glibc (8:17 is sdb1; large minors too)', () => {
      assert.deepEqual(devMajorMinor(BigInt(8 * 256 + 17)), { major: 8n, minor: 17n });
      // makedev(259, 300): major 259 (NVMe), minor above 255.
      const dev = ((259n & 0xfffn) << 8n) | ((259n & ~0xfffn) << 32n) | (300n & 0xffn) | ((300n & ~0xffn) << 12n);
      assert.deepEqual(devMajorMinor(dev), { major: 259n, minor: 300n });
    });
  });

  (hasBindfs ? describe : describe.skip)('the direct probe on a FUSE mount (bindfs)', function () {
    this.timeout(20_000);
    let dir: string;
    let mount: string;
    let bindfs: ReturnType<typeof spawn> | undefined;
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'pocketvm-presence-fuse-'));
      await mkdir(join(dir, 'real', '.pocketvm'), { recursive: true });
      await writeFile(join(dir, 'real', '.pocketvm', 'stick.json'), '{}');
      mount = join(dir, 'mnt');
      await mkdir(mount);
      bindfs = spawn('bindfs', ['-f', join(dir, 'real'), mount], { stdio: 'ignore' });
      for (let i = 0; i < 100 && spawnSync('mountpoint', ['-q', mount]).status !== 0; i++) await sleep(20);
    });
    afterEach(async () => {
      bindfs?.kill('SIGKILL');
      spawnSync('fusermount', ['-u', '-z', mount]);
      await rm(dir, { recursive: true, force: true });
    });

    it('a killed FUSE daemon (every open file failing as on a yanked device) is seen within a second', async () => {
      const monitor = await PresenceMonitor.start(mount, { sources: [ioSource(mount, { intervalMs: 200 })] });
      await sleep(250);
      assert.equal(monitor.removal, undefined);
      const killedAt = performance.now();
      bindfs!.kill('SIGKILL');
      const event = await monitor.removed();
      const latency = event.confirmedMonotonic - killedAt;
      assert.equal(event.signal, 'io');
      assert.match(event.detail, /ENOTCONN/);
      assert.ok(latency < 1_000, `${latency.toFixed(0)} ms`);
    });

    it('an unmount (the mount point left behind is another directory) is a removal', async () => {
      const monitor = await PresenceMonitor.start(mount, { sources: [ioSource(mount, { intervalMs: 50 })], confirmMs: 10 });
      await sleep(100);
      spawnSync('fusermount', ['-u', '-z', mount]);
      const event = await monitor.removed();
      assert.equal(event.signal, 'root-replaced');
    });
  });

  describe('the drive list', () => {
    const stickDrive: ListedDrive = { device: '/dev/sdb', isSystem: false, isRemovable: true, isUSB: true, mountpoints: [{ path: '/media/me/STICK' }] };
    const systemDrive: ListedDrive = { device: '/dev/sda', isSystem: true, isRemovable: false, isUSB: false, mountpoints: [{ path: '/' }, { path: '/home' }] };

    it('finds the drive holding a path by its longest mount point', () => {
      assert.equal(driveHolding([systemDrive, stickDrive], '/media/me/STICK/pocketvm')?.drive.device, '/dev/sdb');
      assert.equal(driveHolding([systemDrive, stickDrive], '/home/me/stick')?.mountpoint, '/home');
      assert.equal(driveHolding([stickDrive], '/media/me/STICKY'), undefined);
    });

    it('the stick drive leaving the list is a removal (confirmed by a second listing)', async () => {
      // The source resolves the real path of the root: a real folder stands in for the mount point.
      const mountpoint = await realpath(await mkdtemp(join(tmpdir(), 'pocketvm-drive-')));
      try {
        const stick = { ...stickDrive, mountpoints: [{ path: mountpoint }] };
        let drives = [systemDrive, stick];
        let listings = 0;
        const lister = async () => {
          listings += 1;
          return drives;
        };
        const monitor = await PresenceMonitor.start(mountpoint, { sources: [drivelistSource(mountpoint, { intervalMs: 30, lister })], confirmMs: 5 });
        assert.deepEqual(monitor.sources, ['drivelist']);
        await sleep(100);
        assert.equal(monitor.removal, undefined);
        drives = [systemDrive];
        const event = await monitor.removed();
        assert.equal(event.signal, 'drivelist');
        assert.match(event.detail, /\/dev\/sdb is no longer listed/);
        assert.ok(listings >= 3);
      } finally {
        await rm(mountpoint, { recursive: true, force: true });
      }
    });

    it('watches the drive the host probe found, without listing first', async () => {
      let drives: ListedDrive[] = [stickDrive];
      const monitor = await PresenceMonitor.start('/', {
        sources: [drivelistSource('/', { intervalMs: 20, lister: async () => drives, known: { device: '/dev/sdb', mountpoint: '/media/me/STICK' } })],
        confirmMs: 5,
      });
      assert.deepEqual(monitor.sources, ['drivelist']);
      await sleep(60);
      assert.equal(removalOf(monitor), undefined);
      drives = [{ ...stickDrive, mountpoints: [] }];
      assert.match((await monitor.removed()).detail, /no longer mounts \/media\/me\/STICK/);
    });

    it('a folder on the system drive is not watched this way', async () => {
      const source = drivelistSource('/', { intervalMs: 30, lister: async () => [{ ...systemDrive, mountpoints: [{ path: '/' }] }] });
      const monitor = await PresenceMonitor.start('/', { sources: [source] });
      assert.deepEqual(monitor.sources, []);
      monitor.stop();
    });
  });

  describe('USB detach', () => {
    const identity = { vendorId: 0x0781, productId: 0x5581, busnum: 2, devnum: 7, serial: 'ABC123', sysfsPath: '/sys/devices/x/usb2/2-1' };
    const device = (overrides: Partial<UsbDeviceInfo> = {}): UsbDeviceInfo => ({
      vendorId: 0x0781,
      productId: 0x5581,
      address: 7,
      bus: '2',
      handle: 'h-7',
      serialNumber: 'ABC123',
      ...overrides,
    });

    it("matches only the stick's own device", () => {
      assert.equal(matchesIdentity(device(), identity), true);
      assert.equal(matchesIdentity(device({ address: 8 }), identity), false);
      assert.equal(matchesIdentity(device({ serialNumber: 'OTHER' }), identity), false);
      assert.equal(matchesIdentity(device({ bus: '3' }), identity), false);
      assert.equal(matchesIdentity(device({ serialNumber: null }), identity), true);
    });

    it("the stick's detach is a removal at once; another device's is nothing", async () => {
      let onDetach: ((handle: string) => void) | undefined;
      let removedListener = false;
      const binding: UsbBinding = {
        nativeGetDevices: async () => [device({ handle: 'mouse', vendorId: 1, productId: 2, address: 3 }), device()],
        Emitter: class {
          async addDetach(callback: (handle: string) => void) {
            onDetach = callback;
          }
          async removeDetach() {
            removedListener = true;
          }
        },
      };
      const monitor = await PresenceMonitor.start('/', { sources: [usbSource('/', { identity: async () => identity, binding: async () => binding })] });
      assert.deepEqual(monitor.sources, ['usb']);
      onDetach!('mouse');
      assert.equal(monitor.removal, undefined);
      onDetach!('h-7');
      assert.equal(removalOf(monitor)?.signal, 'usb');
      assert.match(removalOf(monitor)!.detail, /0781:5581/);
      assert.equal(removedListener, true);
    });

    it("falls back to the host probe's match (vendor, product, serial), and only for a device it can tell apart", async () => {
      const known = { vendorId: 0x0781, productId: 0x5581, serial: 'ABC123' };
      const binding = (devices: UsbDeviceInfo[]): UsbBinding => ({
        nativeGetDevices: async () => devices,
        Emitter: class {
          async addDetach() {}
          async removeDetach() {}
        },
      });
      const one = await PresenceMonitor.start('/', {
        sources: [usbSource('/', { identity: async () => undefined, known, binding: async () => binding([device()]) })],
      });
      assert.deepEqual(one.sources, ['usb']);
      one.stop();
      const twins = await PresenceMonitor.start('/', {
        sources: [
          usbSource('/', {
            identity: async () => undefined,
            known: { vendorId: 0x0781, productId: 0x5581 },
            binding: async () => binding([device(), device({ handle: 'h-8', address: 8, serialNumber: 'XYZ' })]),
          }),
        ],
      });
      assert.deepEqual(twins.sources, []);
    });

    it('does not start without a USB device behind the stick, or without the binding', async () => {
      const monitor = await PresenceMonitor.start('/', {
        sources: [usbSource('/', { identity: async () => undefined }), usbSource('/', { identity: async () => identity, binding: async () => undefined })],
      });
      assert.deepEqual(monitor.sources, []);
      monitor.stop();
    });

    it('walks sysfs from the block device up to the USB device', async () => {
      const sys = await mkdtemp(join(tmpdir(), 'pocketvm-sysfs-'));
      try {
        const usbDir = join(sys, 'devices', 'pci0000:00', 'usb2', '2-1');
        const part = join(usbDir, '2-1:1.0', 'host6', 'target6:0:0', '6:0:0:0', 'block', 'sdb', 'sdb1');
        await mkdir(part, { recursive: true });
        for (const [name, value] of Object.entries({ busnum: '2', devnum: '7', idVendor: '0781', idProduct: '5581', serial: 'ABC123' }))
          await writeFile(join(usbDir, name), `${value}\n`);
        await mkdir(join(sys, 'dev', 'block'), { recursive: true });
        await symlink(part, join(sys, 'dev', 'block', '8:17'));
        const found = await usbIdentityOfBlockDevice(join(sys, 'dev', 'block', '8:17'));
        assert.deepEqual({ ...found, sysfsPath: undefined }, { ...identity, sysfsPath: undefined });
      } finally {
        await rm(sys, { recursive: true, force: true });
      }
    });
  });
});
