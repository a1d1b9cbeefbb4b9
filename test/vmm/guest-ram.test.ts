import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GuestRamFile, LOWEST_PLACEMENT, q35RamOffset } from '../../src/vmm/guest-ram.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe('q35RamOffset: guest-physical address → RAM file offset', () => {
  it('maps RAM below the PCI hole 1:1 when all of it fits there', () => {
    assert.equal(q35RamOffset(MiB, 4096, 256 * MiB), MiB);
    assert.equal(q35RamOffset(0x1234000, 8192, 256 * MiB), 0x1234000);
    assert.equal(q35RamOffset(256 * MiB - 4096, 4096, 256 * MiB), 256 * MiB - 4096);
  });

  it('refuses segments past the end of RAM or reaching into the hole', () => {
    assert.equal(q35RamOffset(256 * MiB - 4096, 4097, 256 * MiB), undefined);
    assert.equal(q35RamOffset(256 * MiB, 1, 256 * MiB), undefined);
    assert.equal(q35RamOffset(3 * GiB, 4096, 256 * MiB), undefined);
    assert.equal(q35RamOffset(4 * GiB, 4096, 256 * MiB), undefined, 'no RAM above 4 GiB for a small guest');
  });

  it('splits RAM at 2 GiB once it reaches 2.75 GiB; the rest starts at 4 GiB', () => {
    const ram = 3 * GiB;
    assert.equal(q35RamOffset(2 * GiB - 4096, 4096, ram), 2 * GiB - 4096);
    assert.equal(q35RamOffset(2 * GiB - 4096, 8192, ram), undefined, 'across the start of the hole');
    assert.equal(q35RamOffset(2 * GiB, 4096, ram), undefined, 'in the hole');
    assert.equal(q35RamOffset(4 * GiB, 4096, ram), 2 * GiB);
    assert.equal(q35RamOffset(5 * GiB - 4096, 4096, ram), 3 * GiB - 4096);
    assert.equal(q35RamOffset(5 * GiB - 4096, 4097, ram), undefined, 'past the end');
    assert.equal(q35RamOffset(0x8000_0000, 1, 0xb000_0000), undefined, 'exactly 2.75 GiB splits at 2 GiB too');
    assert.equal(q35RamOffset(0xa000_0000, 4096, 0xafff_f000), 0xa000_0000, 'just under 2.75 GiB stays low');
  });

  it('refuses the first megabyte (IVT, BIOS data, VGA window, shadowed BIOS)', () => {
    assert.equal(LOWEST_PLACEMENT, MiB);
    assert.equal(q35RamOffset(0, 4096, 256 * MiB), undefined);
    assert.equal(q35RamOffset(0xa0000, 4096, 256 * MiB), undefined, 'the VGA window');
    assert.equal(q35RamOffset(0xf0000, 4096, 256 * MiB), undefined, 'the shadowed BIOS');
    assert.equal(q35RamOffset(MiB - 4096, 8192, 256 * MiB), undefined, 'starting just below 1 MiB');
    assert.equal(q35RamOffset(MiB - 1, 1, 256 * MiB), undefined);
    assert.equal(q35RamOffset(MiB, 1, 256 * MiB), MiB);
  });

  it('refuses nonsense', () => {
    assert.equal(q35RamOffset(-4096, 4096, 256 * MiB), undefined);
    assert.equal(q35RamOffset(0, -1, 256 * MiB), undefined);
    assert.equal(q35RamOffset(2 ** 60, 4096, 256 * MiB), undefined);
    assert.equal(q35RamOffset(0.5, 4096, 256 * MiB), undefined);
  });
});

describe('GuestRamFile', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'guest-ram-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is an unnamed file of the guest RAM size that writes land in at their offsets', () => {
    const ram = GuestRamFile.create(4, { dir });
    assert.ok(ram instanceof GuestRamFile, JSON.stringify(ram));
    try {
      assert.deepEqual(fs.readdirSync(dir), [], 'nothing in the folder');
      assert.match(fs.readlinkSync(`/proc/self/fd/${ram.fd}`), /\(deleted\)$/);
      assert.equal(fs.fstatSync(ram.fd!).size, 4 * MiB);
      const data = Buffer.from('abcdefghij');
      assert.equal(
        ram.write(
          [
            { phys: MiB + 4096, len: 4 },
            { phys: 3 * MiB, len: 100 },
          ],
          data,
        ),
        true,
      );
      const back = Buffer.alloc(10);
      fs.readSync(ram.fd!, back, 0, 4, MiB + 4096);
      fs.readSync(ram.fd!, back, 4, 6, 3 * MiB);
      assert.equal(back.toString(), 'abcdefghij');
    } finally {
      ram.close();
    }
  });

  it('writes nothing when a segment is outside RAM, below 1 MiB, or the segments are too short', () => {
    const ram = GuestRamFile.create(4, { dir }) as GuestRamFile;
    try {
      assert.equal(
        ram.write(
          [
            { phys: MiB, len: 4 },
            { phys: 4 * MiB, len: 4096 },
          ],
          Buffer.from('abcdefgh'),
        ),
        false,
      );
      assert.equal(
        ram.write(
          [
            { phys: MiB, len: 4 },
            { phys: 0xa0000, len: 4096 },
          ],
          Buffer.from('abcdefgh'),
        ),
        false,
      );
      assert.equal(ram.write([{ phys: MiB, len: 4 }], Buffer.from('abcdefgh')), false);
      assert.equal(ram.write([{ phys: 0xb8000, len: 4096 }], Buffer.from('abcdefgh')), false, 'the VGA text buffer');
      for (const at of [0, 0xa0000, 0xb8000, MiB]) {
        const back = Buffer.alloc(4);
        fs.readSync(ram.fd!, back, 0, 4, at);
        assert.deepEqual(back, Buffer.alloc(4), `nothing written at ${at.toString(16)} (a first segment inside RAM is not written either)`);
      }
    } finally {
      ram.close();
    }
  });

  it('reads placed writes back from their segments, and nothing outside RAM or below 1 MiB', () => {
    const ram = GuestRamFile.create(4, { dir }) as GuestRamFile;
    try {
      fs.writeSync(ram.fd!, Buffer.from('abcd'), 0, 4, MiB + 4096);
      fs.writeSync(ram.fd!, Buffer.from('efghij'), 0, 6, 3 * MiB);
      const into = Buffer.alloc(10);
      assert.equal(
        ram.read(
          [
            { phys: MiB + 4096, len: 4 },
            { phys: 3 * MiB, len: 100 },
          ],
          into,
        ),
        true,
      );
      assert.equal(into.toString(), 'abcdefghij');
      assert.equal(
        ram.read(
          [
            { phys: MiB, len: 4 },
            { phys: 4 * MiB, len: 4096 },
          ],
          Buffer.alloc(8),
        ),
        false,
        'past the end of RAM',
      );
      assert.equal(ram.read([{ phys: 0xa0000, len: 4096 }], Buffer.alloc(8)), false, 'below 1 MiB');
      assert.equal(ram.read([{ phys: MiB, len: 4 }], Buffer.alloc(8)), false, 'segments too short');
      ram.close();
      assert.equal(ram.read([{ phys: MiB, len: 4 }], Buffer.alloc(4)), false, 'closed');
    } finally {
      ram.close();
    }
  });

  it('refuses to write once closed (the descriptor number may be reused)', () => {
    const ram = GuestRamFile.create(1, { dir }) as GuestRamFile;
    ram.close();
    assert.equal(ram.fd, undefined);
    assert.equal(ram.write([{ phys: MiB, len: 4 }], Buffer.from('abcd')), false);
    ram.close();
  });

  it('says why there is none: not Linux, no folder, not enough room', () => {
    const notLinux = GuestRamFile.create(4, { dir, platform: 'win32' });
    assert.ok(!(notLinux instanceof GuestRamFile) && /Linux/.test(notLinux.reason));
    const noDir = GuestRamFile.create(4, { dir: path.join(dir, 'missing') });
    assert.ok(!(noDir instanceof GuestRamFile) && /missing/.test(noDir.reason));
    const tooBig = GuestRamFile.create(1024 * 1024 * 1024, { dir });
    assert.ok(!(tooBig instanceof GuestRamFile) && /MiB free/.test(tooBig.reason), JSON.stringify(tooBig));
    assert.deepEqual(fs.readdirSync(dir), []);
  });
});
