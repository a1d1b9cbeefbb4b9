// What a guest made from a catalog image (guest create --from IMAGE) needs
// to boot off the stick, from what the catalog knows of its image: on the
// stick the default payload's kernel starts the image's init in its root,
// but another engine has no such kernel, so the machine's firmware must
// start the image's own bootloader (UEFI when it boots from an ESP, else
// BIOS), and its disk and card must be ones the image's own initramfs
// drives. `image inspect` (src/images/inspect-report.ts) found the
// bootloader and firmware; which drivers the initramfs has only `image
// adapt` knows (its probe), and it records the devices it readied the image
// for in the catalog's lineage ("adapt for T: disk D, NIC N"), so that record,
// on the image or an image it was made from, is what says virtio is there.
// Without one, the emulated SATA and e1000 every Linux drives are chosen
// (the fallback of src/images/hypervisor-targets.ts).
import { ExportError } from '../errors.ts';
import { catalogLineage } from '../guests/image-source.ts';
import { HYPERVISORS, TARGET_DEVICES, type DiskBus, type NicModel } from '../images/hypervisor-targets.ts';
import type { CatalogImage } from '../images/image-catalog.ts';
import type { ImageFacts } from '../images/inspect-report.ts';
import type { StickLayout } from '../stick/layout.ts';

/** The machine's firmware starts the system disk's own bootloader: a guest made from a catalog image. */
export interface DiskBoot {
  from: 'disk';
  /** What `image inspect` found on the disk (grub, systemd-boot, syslinux). */
  bootloader: string;
}

/** The disk bus and NIC model an `image adapt` readied the image's initramfs for (null: none recorded). */
export interface GuestDrives {
  diskBus: DiskBus | null;
  nicModel: NicModel | null;
}

/** The firmware and boot of an image with its own bootloader; an image without one is refused (54, no-bootloader). */
export function diskBootOf(image: CatalogImage, guest: string): { firmware: 'bios' | 'uefi'; boot: DiskBoot } {
  const facts = image.facts as unknown as Pick<ImageFacts, 'firmware' | 'bootloader'>;
  if (!facts.bootloader || facts.firmware === 'unknown')
    throw new ExportError(
      'exportSource',
      `${guest}'s image ${image.name} has ${facts.bootloader ? `a ${facts.bootloader} that no BIOS or UEFI firmware starts` : 'no bootloader'} of its own: off the stick nothing would boot it`,
      {
        // image adapt changes the initramfs, fstab and kernel line, never the bootloader (docs/adapt.md).
        hint: `import ${image.name} from a whole disk that boots (GRUB, systemd-boot), then guest create --from it; launcher image adapt does not install a bootloader`,
        details: { reason: 'no-bootloader', guest, image: image.name, firmware: facts.firmware, bootloader: facts.bootloader },
      },
    );
  // uefi+bios boots either way: BIOS needs no firmware files on the target.
  return { firmware: facts.firmware === 'uefi' ? 'uefi' : 'bios', boot: { from: 'disk', bootloader: facts.bootloader } };
}

/** The first line image adapt records in the lineage (src/images/image-adapt.ts): `adapt for TARGET: disk BUS, NIC MODEL`. */
const ADAPT_RECORD = /^adapt for (\S+): disk (\S+), NIC ([^\s,]+)/;

/** The devices the newest adapt record in these lineage steps readied the initramfs for. */
export function adaptedDevices(steps: readonly string[]): GuestDrives | undefined {
  for (const step of steps) {
    const match = ADAPT_RECORD.exec(step);
    if (!match || !(HYPERVISORS as readonly string[]).includes(match[1]!)) continue;
    const devices = TARGET_DEVICES[match[1] as (typeof HYPERVISORS)[number]];
    const diskBus = devices.diskBuses.find((bus) => bus === match[2]) ?? null;
    const nicModel = devices.nicModels.find((model) => model === match[3]) ?? null;
    return { diskBus, nicModel };
  }
  return undefined;
}

/** The devices the image, or the nearest image it was made from by adapt, was readied for (its lineage, parent by parent). */
export function drivesOf(layout: StickLayout, image: CatalogImage): GuestDrives {
  for (const at of catalogLineage(layout, image)) {
    const adapted = at.lineage && adaptedDevices(at.lineage.steps);
    if (adapted) return adapted;
  }
  return { diskBus: null, nicModel: null };
}
