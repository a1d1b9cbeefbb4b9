// The image's own /boot and /boot/efi, which `image adapt` mounts under its
// root before its steps (docs/adapt.md "How it works"): on LVM (Debian's
// installer's "use LVM") /boot is a file system of its own, and an initramfs
// made again on the root's empty /boot folder would not be the one the boot
// loader reads. Found from the image's fstab (as inspect read it), by UUID=,
// LABEL=, PARTUUID=, their /dev/disk/by-* links, an LVM volume's name or a
// kernel device name. Pure: tested on facts (test/images/guest-mounts.test.ts).
import { AdaptError } from '../errors.ts';
import type { GuestMount } from '../appliance/appliance-protocol.ts';
import type { ImageFacts } from './inspect-report.ts';
import type { RootLocation } from './image-customize.ts';

const MOUNTED: GuestMount['mountpoint'][] = ['/boot', '/boot/efi'];
const trimmed = (path: string) => path.replace(/\/+$/, '');

/** /boot then /boot/efi, each where the image's fstab has it; refused (exit 52, `no-boot`) when its fstab names one that is not in the image or not reachable with the root. */
export function bootMounts(facts: Pick<ImageFacts, 'fstab' | 'fileSystems'>, root: Pick<RootLocation, 'volume'>): GuestMount[] {
  const mounts: GuestMount[] = [];
  for (const mountpoint of MOUNTED) {
    const entry = facts.fstab.find((e) => trimmed(e.mountpoint) === mountpoint);
    if (!entry) continue;
    // inspect gave each file system its fstab mount point (factsFromReport): none here, the fstab names one the image does not hold.
    const fs = facts.fileSystems.find((f) => f.mountpoint !== null && trimmed(f.mountpoint) === mountpoint);
    const refuse = (why: string) =>
      new AdaptError('adaptRefused', `the image's fstab mounts ${entry.spec} on ${mountpoint}, ${why}: its steps would change files its boot does not read`, {
        details: { reason: 'no-boot', mountpoint, spec: entry.spec },
      });
    if (!fs) throw refuse('which is no file system of the image');
    // An LV is reachable only in the group activated for the root.
    if (fs.volume && fs.volume.split('/')[0] !== root.volume?.split('/')[0]) throw refuse(`a volume outside the root's volume group`);
    if (!fs.volume && fs.partition === 0) throw refuse('the whole disk');
    mounts.push({ mountpoint, partition: fs.partition, volume: fs.volume });
  }
  return mounts;
}
