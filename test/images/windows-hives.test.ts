// The registry hive reader (src/images/regf.ts) and the Windows facts read
// from it (src/images/windows-hives.ts), on SOFTWARE and SYSTEM hives the
// test writes itself (test/images/regf-writer.ts) and hivex (Debian's
// libhivex-bin: hivexget, hivexsh) reads independently; damaged hives give
// a HiveError naming what is wrong, and the inspect report of an image with
// a damaged SYSTEM still holds everything SOFTWARE and the disk say.
// Test tier: integration (runs hivexget and hivexsh from libhivex-bin)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { Hive, HiveError, stringOf } from '../../src/images/regf.ts';
import { windowsFactsFromHives } from '../../src/images/windows-hives.ts';
import { factsFromReport } from '../../src/images/inspect-report.ts';
import { WINDOWS_EXPECTED, windowsSoftwareHive, windowsSystemHive } from './windows-image.ts';

const hivex = (command: string, args: string[], input?: string) => execFileSync(command, args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });

/** Sets a base block field and makes its checksum right again, so the damage is found past the header. */
function withHeaderField(hive: Buffer, offset: number, value: number): Buffer {
  const copy = Buffer.from(hive);
  copy.writeUInt32LE(value, offset);
  let sum = 0;
  for (let i = 0; i < 0x1fc; i += 4) sum ^= copy.readUInt32LE(i);
  copy.writeUInt32LE(sum >>> 0, 0x1fc);
  return copy;
}

describe('Windows registry hives: the regf reader and the facts inspect reads', () => {
  let dir: string;
  const software = windowsSoftwareHive();
  const system = windowsSystemHive();

  before(() => {
    dir = tempDir('pocketvm-hives-');
    writeFileSync(join(dir, 'SOFTWARE'), software);
    writeFileSync(join(dir, 'SYSTEM'), system);
  });
  after(() => removeDir(dir));

  it("the test's hives are real hives: hivex reads them as the test wrote them", () => {
    assert.equal(
      hivex('hivexget', [join(dir, 'SYSTEM'), 'ControlSet002\\Control\\ComputerName\\ComputerName', 'ComputerName']).trim(),
      WINDOWS_EXPECTED.computerName,
    );
    assert.equal(hivex('hivexget', [join(dir, 'SYSTEM'), 'ControlSet002\\Services\\Tcpip\\Parameters', 'Hostname']).trim(), WINDOWS_EXPECTED.hostname);
    assert.equal(hivex('hivexget', [join(dir, 'SOFTWARE'), 'Microsoft\\Windows NT\\CurrentVersion', 'ProductName']).trim(), WINDOWS_EXPECTED.productName);
    // Services is an ri index of li lists: hivex walks it to the same names.
    const services = hivex('hivexsh', [join(dir, 'SYSTEM')], 'cd ControlSet002\\Services\nls\n')
      .trim()
      .split('\n');
    assert.deepEqual(
      services.filter((s) => !s.startsWith('Svc')).sort(),
      [...WINDOWS_EXPECTED.drivers.map((d) => d.name), ...WINDOWS_EXPECTED.services].sort(),
    );
    assert.equal(services.filter((s) => s.startsWith('Svc')).length, 12);
  });

  it('reads keys and values as hivex does: lh, ri/li lists, inline, plain and big-data (db) values', () => {
    const hive = new Hive(software);
    const key = hive.key('Microsoft\\Windows NT\\CurrentVersion')!;
    assert.equal(stringOf(hive.get(key, 'productname')), WINDOWS_EXPECTED.productName);
    const big = hive.get(key, 'DigitalProductId4')!;
    assert.equal(big.data.length, 40_000);
    assert.ok(big.data.every((b) => b === 0x5a));
    assert.equal(hive.key('Microsoft\\Nothing'), null);
    const sys = new Hive(system);
    const services = sys.subkeys(sys.key('ControlSet002\\Services')!).map((k) => k.name);
    assert.equal(services.length, WINDOWS_EXPECTED.drivers.length + WINDOWS_EXPECTED.services.length + 12);
    // Every value hivexsh lists for a driver, the reader lists with the same data.
    const viostor = sys.key('ControlSet002\\Services\\viostor')!;
    const fromHivex = hivex('hivexsh', [join(dir, 'SYSTEM')], 'cd ControlSet002\\Services\\viostor\nlsval\n')
      .trim()
      .split('\n');
    assert.deepEqual(
      sys.values(viostor).map((v) => v.name),
      fromHivex.map((line) => /^"([^"]*)"/.exec(line)![1]),
    );
  });

  it('gives the edition, build, hostname of the current control set and the drivers with their start types', () => {
    const driverFiles = new Set(WINDOWS_EXPECTED.drivers.filter((d) => d.file).map((d) => d.imagePath.split('\\').at(-1)!.toLowerCase()));
    const facts = windowsFactsFromHives({ software, system, driverFiles });
    assert.equal(facts.productName, WINDOWS_EXPECTED.productName);
    assert.equal(facts.editionId, WINDOWS_EXPECTED.editionId);
    assert.equal(facts.installationType, WINDOWS_EXPECTED.installationType);
    assert.equal(facts.version, WINDOWS_EXPECTED.version);
    assert.equal(facts.build, WINDOWS_EXPECTED.build);
    assert.equal(facts.displayVersion, WINDOWS_EXPECTED.displayVersion);
    assert.equal(facts.hostname, WINDOWS_EXPECTED.hostname, 'Select\\Current names ControlSet002, not the stale ControlSet001');
    assert.equal(facts.computerName, WINDOWS_EXPECTED.computerName);
    assert.equal(facts.controlSet, 'ControlSet002');
    assert.equal(facts.architecture, 'x86_64');
    assert.deepEqual(
      facts.drivers.map((d) => [d.name, d.type, d.start, d.imagePath, d.fileFound]),
      WINDOWS_EXPECTED.drivers.map((d) => [d.name, d.type, d.start, d.imagePath, d.file]),
    );
    assert.deepEqual(facts.virtio, { viostor: 'boot', vioscsi: 'disabled', netkvm: 'demand' });
    assert.deepEqual(facts.hives, { software: { status: 'read' }, system: { status: 'read' } });
  });

  it('refuses damaged hives with a HiveError that says what is wrong', () => {
    const cases: [string, Buffer, RegExp][] = [
      ['not a hive', Buffer.from('MZ not a hive at all'.padEnd(8192, '\0')), /too short|no "regf" signature/],
      ['another signature', Buffer.concat([Buffer.from('xxxx'), system.subarray(4)]), /no "regf" signature/],
      [
        'a flipped byte in the base block',
        Buffer.concat([system.subarray(0, 0x31), Buffer.from([system[0x31]! ^ 0xff]), system.subarray(0x32)]),
        /bad checksum/,
      ],
      ['the root outside the hive', withHeaderField(system, 0x24, 0x7ffffff0), /outside the hive/],
      ['truncated after the base block', system.subarray(0, 0x1010), /too short/],
    ];
    for (const [what, bytes, error] of cases)
      assert.throws(
        () => new Hive(bytes),
        (e: unknown) => e instanceof HiveError && error.test(e.message),
        what,
      );
    // Cut in the middle of its cells: the header still opens, the walk stops at the first cell past the end.
    const cut = withHeaderField(system, 0x28, 0x1000);
    const hive = new Hive(cut.subarray(0, 0x1400));
    assert.throws(() => hive.key('ControlSet002\\Services\\viostor'), HiveError);
    // A subkey list pointing at itself through an ri: refused, not walked for ever.
    const loop = Buffer.from(system);
    const rootNk = 0x1000 + loop.readUInt32LE(0x24) + 4;
    const listAt = loop.readUInt32LE(rootNk + 28);
    loop.write('ri', 0x1000 + listAt + 4, 'latin1');
    loop.writeUInt32LE(listAt, 0x1000 + listAt + 8);
    assert.throws(() => new Hive(loop).subkeys(new Hive(loop).root()), HiveError);
  });

  it('a damaged SYSTEM hive: the facts of SOFTWARE are still read and SYSTEM is named as unreadable', () => {
    const damaged = withHeaderField(system, 0x24, 0x7ffffff0);
    const facts = windowsFactsFromHives({ software, system: damaged });
    assert.equal(facts.productName, WINDOWS_EXPECTED.productName);
    assert.equal(facts.hostname, null);
    assert.deepEqual(facts.drivers, []);
    assert.equal(facts.hives.system.status, 'unreadable');
    assert.match(facts.hives.system.status === 'unreadable' ? facts.hives.system.error : '', /outside the hive/);
    // The same through the appliance's report lines: the disk's facts are all there.
    const b64 = (bytes: Buffer | string) => Buffer.from(bytes).toString('base64');
    const report = factsFromReport(
      [
        `blkid 0 /dev/sdb 1000 ${b64('PTTYPE=gpt\n')}`,
        `blkid 1 /dev/sdb1 100 ${b64('TYPE=vfat\nPART_ENTRY_TYPE=c12a7328-f81f-11d2-ba4b-00a0c93ec93b\n')}`,
        'mounted 1 vfat',
        'path 1 EFI/Microsoft/Boot/bootmgfw.efi',
        `blkid 2 /dev/sdb2 900 ${b64('TYPE=ntfs\nUUID=W1\n')}`,
        'mounted 2 ntfs',
        'path 2 Windows/System32/config/SOFTWARE',
        `hive 2 SOFTWARE ${b64(software)}`,
        `hive 2 SYSTEM ${b64(damaged)}`,
        'hive-size 3 SYSTEM 999',
      ].join('\n'),
    );
    assert.equal(report.os.family, 'windows');
    assert.equal(report.os.name, WINDOWS_EXPECTED.productName);
    assert.equal(report.firmware, 'uefi');
    assert.equal(report.bootloader, 'windows-boot-manager');
    assert.equal(report.rootPartition, 2);
    assert.equal(report.windows?.hives.software.status, 'read');
    assert.equal(report.windows?.hives.system.status, 'unreadable');
    // A hive too large to be sent is named so, not read.
    const large = windowsFactsFromHives({ software: 200 * 1024 * 1024 });
    assert.match(large.hives.software.status === 'unreadable' ? large.hives.software.error : '', /more than inspect reads/);
  });
});
