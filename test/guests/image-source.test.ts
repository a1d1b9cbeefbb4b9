// imageSystem (src/guests/image-source.ts): what a catalog image must hold to
// be a guest's system. A root on LVM is named by VG/LV on the guest's kernel
// command line, so only names LVM itself makes are taken: a name read from an
// image's own metadata with a space or '=' in it would add kernel words.
import assert from 'node:assert/strict';
import { ImageGuestError } from '../../src/errors.ts';
import { imageSystem } from '../../src/guests/image-source.ts';
import type { CatalogImage } from '../../src/images/image-catalog.ts';
import { stickLayout } from '../../src/stick/layout.ts';

function imageWithRoot(root: { partition: number; volume: string | null; type: string }): CatalogImage {
  return {
    name: 'lvm-image',
    sha256: 'a'.repeat(64),
    file: `${'a'.repeat(64)}.qcow2`,
    fileSha256: 'b'.repeat(64),
    virtualBytes: 1 << 30,
    storedBytes: 1 << 28,
    partitionTable: { kind: 'mbr', partitions: [] },
    facts: { os: { family: 'linux' }, fileSystems: [{ ...root, mountpoint: '/' }] },
    createdAt: '2026-12-07T00:00:00Z',
    imports: [],
  };
}

describe('imageSystem: a catalog image as a guest system', () => {
  const layout = stickLayout('/stick');

  it('takes a root on an LVM volume with a name LVM makes, and keeps its VG/LV', () => {
    const system = imageSystem(layout, imageWithRoot({ partition: 2, volume: 'corpusvg/root', type: 'ext4' }));
    assert.equal(system.rootPartition, 2);
    assert.equal(system.rootVolume, 'corpusvg/root');
    assert.equal(imageSystem(layout, imageWithRoot({ partition: 1, volume: null, type: 'ext4' })).rootVolume, null);
  });

  for (const volume of ['vg/root init=/bin/sh', 'vg/root=x', 'vg', '-vg/root', 'vg/ro\not'])
    it(`refuses a root volume named ${JSON.stringify(volume)} (exit 50, no-system): it would reach the kernel command line`, () => {
      assert.throws(
        () => imageSystem(layout, imageWithRoot({ partition: 2, volume, type: 'ext4' })),
        (error: unknown) => error instanceof ImageGuestError && error.exitCode === 50 && error.details['reason'] === 'no-system',
      );
    });
});
