// The Windows adapter against recorded registry values and command outputs
// (fixtures/windows-*.json): it is never run on Windows here.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HostProfileSchema } from '../../src/hostprobe/host-profile.ts';
import { probeHost } from '../../src/hostprobe/probe-host.ts';
import { parseRegQuery } from '../../src/platform/probe-source.ts';
import { windowsHost, windowsProbe } from '../../src/hostprobe/windows.ts';
import { fixtureSource, loadFixture } from './fixture-source.ts';

const w11 = loadFixture('windows-11-de');
const w10 = loadFixture('windows-10-gb-minimal');

describe('windows host adapter (recorded fixtures)', () => {
  it('names Windows 11 by its build although ProductName says Windows 10', async () => {
    assert.deepEqual(await windowsProbe(fixtureSource(w11)).os(), {
      family: 'windows',
      name: 'Windows 11 Pro',
      version: '23H2 (build 22631.3447)',
      kernel: '10.0.22631',
      arch: 'x64',
      machineArch: null,
    });
    assert.equal((await windowsProbe(fixtureSource(w10)).os()).name, 'Windows 10 Home');
  });

  it('reads cores and virtualisation from one CIM call; a running hypervisor means VT-x is there', async () => {
    const source = fixtureSource(w11);
    const probe = windowsProbe(source);
    const [cpu, accelerators] = await Promise.all([probe.cpu(), probe.accelerators()]);
    assert.deepEqual(cpu, { model: '13th Gen Intel(R) Core(TM) i7-1365U', cores: 10, threads: 12, virtualization: ['vmx'], hypervisor: true });
    assert.deepEqual(accelerators, [{ name: 'whpx', usable: true, reason: 'Windows Hypervisor Platform is installed and the hypervisor is running' }]);
    assert.equal(source.ran.filter((c) => c.startsWith('powershell.exe')).length, 1, 'the CIM call is made once per probe');
  });

  it('without PowerShell and without the WHPX feature: cores unknown, whpx not usable, AMD named', async () => {
    const probe = windowsProbe(fixtureSource(w10));
    assert.deepEqual(await probe.cpu(), {
      model: 'AMD Ryzen 5 3500U with Radeon Vega Mobile Gfx',
      cores: null,
      threads: 8,
      virtualization: [],
      hypervisor: null,
    });
    const [whpx] = await probe.accelerators();
    assert.equal(whpx?.usable, false);
    assert.match(whpx!.reason, /Windows Hypervisor Platform is not installed/);
  });

  it('memory from node (GlobalMemoryStatusEx); the display is always there', async () => {
    const probe = windowsProbe(fixtureSource(w11));
    assert.deepEqual(await probe.memory(), { totalMiB: 32490, availableMiB: 19873 });
    assert.deepEqual(await probe.display(), { kind: 'windows', present: true, detail: null });
  });

  it('keyboard from HKCU\\Keyboard Layout\\Preload, through Substitutes', async () => {
    assert.deepEqual(await windowsProbe(fixtureSource(w11)).keyboard(), {
      layout: 'de',
      variant: null,
      native: '00000407',
      source: 'HKCU\\Keyboard Layout\\Preload',
    });
    assert.deepEqual(await windowsProbe(fixtureSource(w10)).keyboard(), {
      layout: 'gb',
      variant: null,
      native: '00000809',
      source: 'HKCU\\Keyboard Layout\\Preload',
    });
  });

  it('locale and time zone from the registry; an unmapped zone name falls back to Intl', async () => {
    assert.equal(await windowsProbe(fixtureSource(w11)).locale(), 'de-DE');
    assert.equal(await windowsProbe(fixtureSource(w10)).locale(), 'en-GB');
    assert.deepEqual(await windowsProbe(fixtureSource(w11)).timezone(), {
      name: 'Europe/Berlin',
      native: 'W. Europe Standard Time',
      source: 'HKLM\\SYSTEM\\CurrentControlSet\\Control\\TimeZoneInformation',
    });
    assert.deepEqual(await windowsProbe(fixtureSource(w10)).timezone(), {
      name: 'America/Halifax',
      native: 'Atlantic Standard Time',
      source: 'HKLM\\SYSTEM\\CurrentControlSet\\Control\\TimeZoneInformation',
    });
  });

  it('proxy from Internet Settings: per-scheme servers and the bypass list; a disabled proxy leaves only the PAC URL', async () => {
    assert.deepEqual(await windowsProbe(fixtureSource(w11)).proxy(), {
      http: 'proxy.corp.example:8080',
      https: 'proxy.corp.example:8443',
      noProxy: ['*.corp.example', '10.*', '<local>'],
      autoConfigUrl: null,
      source: 'registry',
    });
    assert.deepEqual(await windowsProbe(fixtureSource(w10)).proxy(), {
      http: null,
      https: null,
      noProxy: [],
      autoConfigUrl: 'http://wpad.home.example/proxy.pac',
      source: 'registry',
    });
  });

  it('an environment proxy wins over the registry', async () => {
    const proxy = await windowsProbe(fixtureSource(w11, { env: { ...w11.env, HTTPS_PROXY: 'http://envproxy:3128' } })).proxy();
    assert.equal(proxy.source, 'env');
    assert.equal(proxy.https, 'http://envproxy:3128');
  });

  it("parses reg.exe query output (the fallback without registry-js's addon)", () => {
    const text = readFileSync(fileURLToPath(new URL('./fixtures/windows-reg-query.txt', import.meta.url)), 'utf8');
    const values = parseRegQuery(text);
    const byName = Object.fromEntries(values.map((v) => [v.name, v]));
    assert.deepEqual(byName['ProxyEnable'], { name: 'ProxyEnable', type: 'REG_DWORD', data: 1 });
    assert.deepEqual(byName['SecureProtocols'], { name: 'SecureProtocols', type: 'REG_DWORD', data: 0xa80 });
    assert.deepEqual(byName['User Agent'], { name: 'User Agent', type: 'REG_SZ', data: 'Mozilla/4.0 (compatible; MSIE 8.0; Win32)' });
    assert.deepEqual(byName['ProxyOverride'], { name: 'ProxyOverride', type: 'REG_SZ', data: '' });
    assert.deepEqual(byName[''], { name: '', type: 'REG_SZ', data: '' });
    assert.deepEqual(byName['Languages'], { name: 'Languages', type: 'REG_MULTI_SZ', data: 'de-DE\nen-US' });
    assert.equal(values.length, 12, 'subkey lines are not values');
  });

  it('without drivelist.node (none on the Windows stick): the drive from the Storage module, by drive letter', async () => {
    const profile = await probeHost({
      adapter: windowsHost,
      source: fixtureSource(w11),
      stickRoot: 'E:\\',
      listDrives: () => Promise.reject(new Error('the native addon drivelist.node is missing beside the launcher')),
      listUsbDevices: async () => [{ vendorId: 0x0781, productId: 0x5581, serialNumber: null, interfaceClasses: [8] }],
    });
    HostProfileSchema.parse(profile);
    assert.deepEqual(profile.stick?.drive, {
      device: '\\\\.\\PHYSICALDRIVE2',
      description: 'SanDisk Ultra USB 3.0',
      bus: 'USB',
      removable: true,
      usb: true,
      system: false,
      virtual: false,
      sizeBytes: 61530439680,
      readOnly: false,
    });
    assert.equal(profile.stick?.mountpoint, 'E:\\');
    assert.equal(profile.stick?.kind, 'removable');
    assert.equal(profile.stick?.usbIdentity?.productId, '5581');
    assert.match(profile.notes.find((n) => n.step === 'stick drive')?.message ?? '', /drivelist\.node is missing/);
    assert.equal(await windowsProbe(fixtureSource(w11)).driveHolding('\\\\server\\share\\stick'), null, 'a network share has no drive letter');
  });

  it('a whole profile on a Windows host: a stick on E:\\ found case-insensitively, its USB identity the only mass-storage device', async () => {
    const profile = await probeHost({
      adapter: windowsHost,
      source: fixtureSource(w11),
      stickRoot: 'e:\\PocketVM',
      listDrives: async () => [
        {
          device: '\\\\.\\PHYSICALDRIVE0',
          description: 'NVMe SAMSUNG',
          busType: 'NVME',
          size: 512110190592,
          isReadOnly: false,
          isRemovable: false,
          isSystem: true,
          isVirtual: false,
          isUSB: false,
          mountpoints: [{ path: 'C:\\' }],
        },
        {
          device: '\\\\.\\PHYSICALDRIVE2',
          description: 'SanDisk Ultra USB Device',
          busType: 'USB',
          size: 61530439680,
          isReadOnly: false,
          isRemovable: true,
          isSystem: false,
          isVirtual: false,
          isUSB: true,
          mountpoints: [{ path: 'E:\\' }],
        },
      ],
      listUsbDevices: async () => [
        { vendorId: 0x8087, productId: 0x0033, deviceClass: 224, interfaceClasses: [224] },
        {
          vendorId: 0x0781,
          productId: 0x5581,
          serialNumber: '4C530001230507119221',
          manufacturerName: 'SanDisk',
          productName: 'Ultra',
          deviceClass: 0,
          interfaceClasses: [8],
        },
      ],
    });
    HostProfileSchema.parse(profile);
    assert.equal(profile.stick?.mountpoint, 'E:\\');
    assert.equal(profile.stick?.kind, 'removable');
    assert.equal(profile.stick?.drive?.bus, 'USB');
    assert.deepEqual(profile.stick?.usbIdentity, {
      vendorId: '0781',
      productId: '5581',
      serial: '4C530001230507119221',
      manufacturer: 'SanDisk',
      product: 'Ultra',
      matchedBy: 'only-mass-storage-device',
    });
    assert.equal(profile.fingerprint, null, 'no stick marker: no salt written');
    assert.deepEqual(profile.notes, []);
  });
});
