// A guest made from a catalog image (docs/guests.md, "Guests from catalog
// images") as a launch feature: the image's store file opened read-only as a
// qcow2 node, the user's encrypted copy-on-write overlay over it plugged in
// while QEMU is paused, as an image guest's system is (../system-disk.ts),
// and the words that make the payload's boot step start the image's own init
// on its root (payload/rootfs/etc/pocketvm/boot.d/45-image-system.sh).
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, dirname, relative } from 'node:path';
import type { UnlockedUser } from '../../auth/users.ts';
import { SystemImageError } from '../../errors.ts';
import { attachEncryptedDisk } from '../../vmm/encrypted-disk.ts';
import { hotplugPort } from '../../vmm/qemu-args.ts';
import type { LaunchFeature } from '../launch/feature.ts';
import type { CatalogImageSystem } from '../launch/launch-options.ts';
import { overlayBacking } from '../system-disk.ts';

export const IMAGE_DISK_SERIAL = 'pocketvm-image';
/** The personal disk takes port 0 (../personal-disk.ts). */
const IMAGE_DISK_PORT = 1;

/** Kernel words: which disk holds the image, which of its partitions is `/` (or holds the LVM volume that is). */
export function imageSystemCmdline(image: Pick<CatalogImageSystem, 'rootPartition' | 'rootVolume'>): string[] {
  return [
    `pocketvm.image=${IMAGE_DISK_SERIAL}`,
    `pocketvm.imagepart=${image.rootPartition}`,
    ...(image.rootVolume ? [`pocketvm.imagelv=${image.rootVolume}`] : []),
  ];
}

/**
 * An overlay is valid only over the exact disk it was made on: one made over
 * another image (a guest deleted and made again under the same name) is
 * refused, never opened over this one.
 */
export async function checkOverlayBase(overlay: string, image: CatalogImageSystem, user: string, guest: string): Promise<void> {
  if (!existsSync(overlay)) return;
  const backing = await overlayBacking(overlay, `move it away to start ${user}'s ${guest} system afresh from the image`);
  if (backing === undefined || basename(backing) !== basename(image.file))
    throw new SystemImageError(`${user}'s ${guest} system was made over another disk (${backing ?? 'none'}), not the image ${image.name}`, {
      hint: `move ${overlay} away to start ${user}'s ${guest} system afresh from the image; nothing was changed`,
      details: { reason: 'other-base', overlay, backing: backing ?? null, base: basename(image.file) },
    });
}

export function imageSystemFeature(args: {
  image: CatalogImageSystem;
  overlay: string;
  user: UnlockedUser;
  onMessage: (message: string) => void;
}): LaunchFeature {
  const { image, overlay, user } = args;
  return {
    name: 'image-system',
    cmdline: imageSystemCmdline(image),
    hotplugPorts: 1,
    attach: async ({ qmp }) => {
      await mkdir(dirname(overlay), { recursive: true });
      // The store file is QEMU's read-only qcow2 node; nothing is ever written to it.
      await qmp.execute('blockdev-add', {
        driver: 'qcow2',
        'node-name': 'pvm-image',
        'read-only': true,
        file: { driver: 'file', filename: image.file, 'read-only': true },
      });
      // keepSecret: a session can be suspended and resumed, as the personal disk's.
      const result = await attachEncryptedDisk(
        qmp,
        {
          path: overlay,
          key: user.diskKey,
          id: 'pvm-imgroot',
          serial: IMAGE_DISK_SERIAL,
          bus: hotplugPort(IMAGE_DISK_PORT),
          sizeBytes: image.bytes,
          keepSecret: true,
          // Relative, so `qemu-img info` on the stick finds the image wherever the stick is mounted.
          backing: { node: 'pvm-image', fileName: relative(dirname(overlay), image.file) },
        },
        existsSync,
      );
      args.onMessage(
        result.created
          ? `created ${user.name}'s encrypted system overlay over the image ${image.name} (${(result.createMs / 1000).toFixed(1)} s)`
          : `opened ${user.name}'s encrypted system overlay over the image ${image.name}`,
      );
    },
  };
}
