// A guest made from a catalog image (`guest create NAME --from IMAGE`,
// docs/guests.md, "Guests from catalog images"): its system is the image's
// store file in images/store/, read-only, under each user's own encrypted
// overlay; it boots on the default payload's kernel and initramfs, which
// start the image's own init on its root file system
// (payload/rootfs/etc/pocketvm/boot.d/45-image-system.sh). What a launch
// needs of the image is read from the catalog row `image inspect` filled.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ImageGuestError } from '../errors.ts';
import { type DescribedMachine, describedMachine } from '../images/described-machine.ts';
import { ImageCatalog, type CatalogImage, selfAndAncestors } from '../images/image-catalog.ts';
import type { ImageFacts } from '../images/inspect-report.ts';
import { fileSha256 } from '../images/virtual-disk.ts';
import type { CatalogImageSystem } from '../session/launch/launch-options.ts';
import { imageStorePaths, type StickLayout } from '../stick/layout.ts';

/** The payload whose kernel, initramfs and services every catalog-image guest boots with. */
export const IMAGE_GUEST_PAYLOAD = 'default';
/** The file systems the payload's kernel mounts as an image's root. */
const ROOT_TYPES = new Set(['ext4', 'ext3', 'ext2']);

export interface ImageSystem {
  image: CatalogImage;
  /** The store file: the overlay's read-only base (qcow2). */
  file: string;
  /** The partition holding `/` (0: the whole disk is the file system; on LVM, its physical volume's). */
  rootPartition: number;
  /** `/` on an LVM logical volume (VG/LV); the boot step maps a linear one in one segment (payload/rootfs/lib/pocketvm/lvm-volume.sh). */
  rootVolume: string | null;
  rootType: string;
}

/** `read` over the stick's catalog, opened for it and closed after; undefined when the stick has none. */
function readCatalog<T>(layout: StickLayout, read: (catalog: ImageCatalog) => T | undefined): T | undefined {
  const { catalog } = imageStorePaths(layout);
  if (!existsSync(catalog)) return undefined;
  const opened = ImageCatalog.open(catalog);
  try {
    return read(opened);
  } finally {
    opened.close();
  }
}

/** What a launch (and the user's overlay over it) needs of the image system: its store file, size and root. */
export function launchImage(system: ImageSystem): CatalogImageSystem {
  return {
    name: system.image.name,
    file: system.file,
    bytes: system.image.virtualBytes,
    rootPartition: system.rootPartition,
    ...(system.rootVolume ? { rootVolume: system.rootVolume } : {}),
  };
}

/** The catalog row for `ref` (name, sha256 or prefix); undefined when the stick has no catalog or no such image. */
export function findCatalogImage(layout: StickLayout, ref: string): CatalogImage | undefined {
  return readCatalog(layout, (catalog) => catalog.find(ref));
}

/** `image` and the images it was made from, read from one opening of the stick's catalog (parent by parent, while the catalog holds them). */
export function catalogLineage(layout: StickLayout, image: CatalogImage): CatalogImage[] {
  return readCatalog(layout, (catalog) => [...selfAndAncestors(image, (parent) => catalog.byHash(parent))]) ?? [image];
}

/** What the catalog says the image `sha256`'s machine was, following its lineage (src/images/described-machine.ts). */
export function catalogDescribedMachine(layout: StickLayout, sha256: string): DescribedMachine | undefined {
  return readCatalog(layout, (catalog) => {
    const image = catalog.byHash(sha256);
    return image && describedMachine(image, (parent) => catalog.byHash(parent));
  });
}

/** A VG/LV name as LVM allows them (lvm(8), "VALID NAMES"). */
const LVM_VOLUME = /^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*\/[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$/;

/** What the image must hold to be a guest's system: inspected, with a Linux root the payload's kernel mounts. */
export function imageSystem(layout: StickLayout, image: CatalogImage): ImageSystem {
  const facts = image.facts as unknown as ImageFacts | undefined;
  if (!facts)
    throw new ImageGuestError('guestFromImage', `${image.name} was never inspected, so it is not known what system it holds`, {
      hint: `launcher image inspect ${image.name}, then create the guest again`,
      details: { reason: 'not-inspected', image: image.name },
    });
  const root = facts.fileSystems.find((f) => f.mountpoint === '/');
  // The volume's name goes on the guest's kernel command line (pocketvm.imagelv): only the characters LVM allows in
  // VG and LV names, so a name read from an image's own metadata cannot add kernel words.
  const badVolume = root?.volume && !LVM_VOLUME.test(root.volume);
  if (facts.os.family !== 'linux' || !root || !ROOT_TYPES.has(root.type ?? '') || badVolume)
    throw new ImageGuestError(
      'guestFromImage',
      `${image.name} has no bootable system pocketvm can start: ${
        facts.os.family !== 'linux'
          ? `its OS is ${facts.os.family}`
          : !root
            ? 'no root file system was found'
            : badVolume
              ? `its root's LVM volume name ${JSON.stringify(root.volume)} is not one LVM makes`
              : `its root is ${root.type}, not ext2/3/4`
      }`,
      { details: { reason: 'no-system', image: image.name } },
    );
  return { image, file: join(imageStorePaths(layout).store, image.file), rootPartition: root.partition, rootVolume: root.volume, rootType: root.type! };
}

/** The image a guest record names, still in the store: refused (51) when it is gone. */
export function guestImage(layout: StickLayout, sha256: string, guest: string): ImageSystem {
  const image = findCatalogImage(layout, sha256);
  if (!image || image.sha256 !== sha256 || !existsSync(join(imageStorePaths(layout).store, image.file)))
    throw new ImageGuestError(
      'imageGuestBase',
      `the image the ${guest} guest was made from (sha256 ${sha256.slice(0, 16)}…) is not in this stick's image store`,
      {
        hint: `import it again, or delete the guest (launcher guest delete ${guest})`,
        details: { reason: 'missing', sha256 },
      },
    );
  return imageSystem(layout, image);
}

/**
 * The store file checked whole against the sha256 the catalog recorded for it
 * (pinned at install): an overlay over another file would patch the wrong
 * disk. Hashed in full, as a payload base without a block list is
 * (docs/images.md, "How the base is checked").
 */
export async function checkImageFile(system: ImageSystem, pinned: string, guest: string): Promise<void> {
  const actual = await fileSha256(system.file);
  if (actual !== pinned)
    throw new ImageGuestError('imageGuestBase', `the ${guest} guest's image file ${system.file} is not the one its install pinned`, {
      hint: `launcher guest uninstall ${guest} && launcher guest install ${guest} pins the file as it is now; nothing was started`,
      details: { reason: 'changed', file: system.file },
    });
}
