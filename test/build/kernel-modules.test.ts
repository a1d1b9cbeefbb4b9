import assert from 'node:assert/strict';
import { modulesDep, parseModinfo, softdepPre, type KernelModule } from '../../build/payload/kernel-modules.ts';
import { parseControlRecords } from '../../build/payload/apt.ts';

describe('kernel module metadata', () => {
  it('parses a .modinfo section (NUL-separated, repeated keys kept)', () => {
    const info = parseModinfo(Buffer.from('license=GPL\0depends=jbd2,mbcache,crc16\0alias=fs-ext4\0alias=ext3\0softdep=pre: crc32c\0\0'));
    assert.deepEqual(info.get('depends'), ['jbd2,mbcache,crc16']);
    assert.deepEqual(info.get('alias'), ['fs-ext4', 'ext3']);
    assert.deepEqual(softdepPre(info.get('softdep') ?? []), ['crc32c']);
    assert.deepEqual(softdepPre(['pre: a b-c post: d', 'pre: e']), ['a', 'b_c', 'e']);
  });

  it('writes modules.dep with every transitive dependency, the first to load last', () => {
    const mod = (name: string, depends: string[]): KernelModule => ({ name, path: `kernel/${name}.ko`, source: '', depends });
    const text = modulesDep([mod('virtio_ring', []), mod('virtio', []), mod('virtio_pci', ['virtio', 'virtio_ring']), mod('virtio_console', ['virtio_pci'])]);
    assert.equal(
      text.split('\n').find((l) => l.startsWith('kernel/virtio_console.ko')),
      'kernel/virtio_console.ko: kernel/virtio_pci.ko kernel/virtio_ring.ko kernel/virtio.ko',
    );
    assert.ok(text.includes('kernel/virtio.ko:\n'));
  });
});

describe('apt output parsing', () => {
  it('splits apt-cache show output into records, with continuation lines', () => {
    const records = parseControlRecords('Package: a\nVersion: 1\nDescription: one\n two\n\nPackage: b\nVersion: 2\n');
    assert.equal(records.length, 2);
    assert.equal(records[0]?.get('Description'), 'one\ntwo');
    assert.equal(records[1]?.get('Version'), '2');
  });
});
