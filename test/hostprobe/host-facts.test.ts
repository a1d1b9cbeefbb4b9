import assert from 'node:assert/strict';
import { checkValue, checkValueName, keyComponents } from '../../src/guestregistry/value.ts';
import { hostFacts } from '../../src/hostprobe/host-facts.ts';
import type { HostProfile } from '../../src/hostprobe/host-profile.ts';

const profile: HostProfile = {
  schemaVersion: 1,
  probedAt: '2026-01-01T00:00:00.000Z',
  probeMs: 12,
  os: { family: 'windows', name: 'Windows 11 Pro', version: '23H2 (build 22631.3447)', kernel: '10.0.22631', arch: 'x64', machineArch: null },
  cpu: { model: 'Intel', cores: 10, threads: 12, virtualization: ['vmx'], hypervisor: true },
  memory: { totalMiB: 32490, availableMiB: 19873 },
  accelerators: [{ name: 'whpx', usable: true, reason: 'ok' }],
  display: { kind: 'windows', present: true, detail: null },
  stick: {
    root: 'E:\\',
    mountpoint: 'E:\\',
    drive: {
      device: '\\\\.\\PHYSICALDRIVE2',
      description: null,
      bus: 'USB',
      removable: true,
      usb: true,
      system: false,
      virtual: false,
      sizeBytes: 61530439680,
      readOnly: false,
    },
    kind: 'removable',
    usbIdentity: { vendorId: '0781', productId: '5581', serial: null, manufacturer: 'SanDisk', product: 'Ultra', matchedBy: 'only-mass-storage-device' },
  },
  locale: {
    locale: 'de-DE',
    keyboard: { layout: 'de', variant: null, native: '00000407', source: 'x' },
    timezone: { name: 'Europe/Berlin', native: 'W. Europe Standard Time', source: 'x' },
  },
  proxy: { http: 'proxy:8080', https: null, noProxy: ['<local>'], autoConfigUrl: null, source: 'registry' },
  fingerprint: '0123456789abcdef0123456789abcdef',
  notes: [],
};

describe('host facts for the guest registry', () => {
  it('maps the profile to typed Host\\... session facts, leaving out what is unknown', () => {
    const facts = hostFacts(profile);
    const get = (key: string, name: string) => facts.find((f) => f.key === key && f.name === name)?.value;
    assert.deepEqual(get('Host', 'Os'), { type: 'string', data: 'windows' });
    assert.deepEqual(get('Host', 'Keyboard'), { type: 'string', data: 'de' });
    assert.deepEqual(get('Host', 'Timezone'), { type: 'string', data: 'Europe/Berlin' });
    assert.deepEqual(get('Host', 'Fingerprint'), { type: 'string', data: profile.fingerprint });
    assert.deepEqual(get('Host\\Cpu', 'Threads'), { type: 'int32', data: 12 });
    assert.deepEqual(get('Host\\Cpu', 'Virtualization'), { type: 'multi-string', data: ['vmx'] });
    assert.deepEqual(get('Host\\Memory', 'AvailableMiB'), { type: 'int32', data: 19873 });
    assert.deepEqual(get('Host\\Accelerators', 'whpx'), { type: 'bool', data: true });
    assert.deepEqual(get('Host\\Stick', 'SizeBytes'), { type: 'int64', data: 61530439680n });
    assert.deepEqual(get('Host\\Stick', 'UsbVendorId'), { type: 'string', data: '0781' });
    assert.equal(get('Host\\Stick', 'UsbSerial'), undefined, 'no serial: no value');
    assert.equal(get('Host', 'KeyboardVariant'), undefined);
    assert.deepEqual(get('Host\\Proxy', 'NoProxy'), { type: 'multi-string', data: ['<local>'] });
    assert.equal(get('Host\\Proxy', 'Https'), undefined);
    for (const fact of facts) {
      assert.match(fact.key, /^Host(\\[A-Za-z]+)?$/);
      // Within the registry's own limits and types.
      keyComponents(fact.key);
      checkValueName(fact.name);
      checkValue(fact.value);
    }
  });

  it('no stick and no proxy: no such keys', () => {
    const facts = hostFacts({
      ...profile,
      stick: null,
      proxy: { http: null, https: null, noProxy: [], autoConfigUrl: null, source: 'none' },
      fingerprint: null,
    });
    assert.ok(!facts.some((f) => f.key === 'Host\\Stick' || f.key === 'Host\\Proxy' || f.name === 'Fingerprint'));
  });
});
