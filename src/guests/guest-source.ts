// Where a guest's environment comes from: a payload on the stick
// (payload/<name>/: kernel + initrd) or a catalog image of the image store
// (./image-source.ts: `--from IMAGE`). Each kind is one driver behind the same interface, chosen by the
// record's `source.kind`, so the lifecycle never asks which kind it holds.
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ImageGuestError } from '../errors.ts';
import { CHECKSUM_FILE, openGuestPayload, parseChecksums } from '../payload/guest-payload.ts';
import { loadManifest } from '../payload/guest-manifest.ts';
import type { StickLayout } from '../stick/layout.ts';
import { configFromDescribed, type DescriptorConfig } from './described-config.ts';
import type { GuestConfig, SourceNeeds } from './guest-config.ts';
import { catalogDescribedMachine, checkImageFile, findCatalogImage, guestImage, IMAGE_GUEST_PAYLOAD, imageSystem } from './image-source.ts';

export type GuestSourceRef =
  | { kind: 'payload'; name: string }
  /** A catalog image: `name` as it was at create, `sha256` its content (what the guest is pinned to). */
  | { kind: 'image'; name: string; sha256: string };

/** What install pinned: the files the guest boots, by content. */
export interface InstallRecord {
  source: GuestSourceRef;
  /** File name → sha256, as verified at install. */
  files: Record<string, string>;
  installedAt: string;
}

export interface SourceDriver {
  /** Is the source on the stick at all (a guest without it is unavailable)? */
  present(layout: StickLayout, name: string): Promise<boolean>;
  /** The minimums verify checks a configuration against. */
  needs(layout: StickLayout, name: string): Promise<SourceNeeds>;
  /** A new guest's configuration: what the source recommends, and for an imported image what its machine was over that. */
  initial(layout: StickLayout, name: string): Promise<{ config: GuestConfig; fromDescriptor?: DescriptorConfig }>;
  /** Checks the source whole (checksums) and pins what the guest will boot. */
  install(layout: StickLayout, name: string): Promise<Record<string, string>>;
}

/** What a payload recommends for a guest: its manifest's network, no display, nothing added; memory and CPUs sized from the host. */
async function payloadDefaults(layout: StickLayout, name: string): Promise<GuestConfig> {
  const manifest = await loadManifest(join(layout.payloadRoot, name));
  return { network: manifest.devices.network, display: 'none', shares: [], disks: [], devices: [] };
}

const payloadDriver: SourceDriver = {
  async present(layout, name) {
    try {
      await access(join(layout.payloadRoot, name, 'guest.json'));
      return true;
    } catch {
      return false;
    }
  },
  async needs(layout, name) {
    const manifest = await loadManifest(join(layout.payloadRoot, name));
    return { minimumMiB: manifest.memory.minimumMiB, minimumCpus: manifest.cpus.minimum };
  },
  async initial(layout, name) {
    return { config: await payloadDefaults(layout, name) };
  },
  async install(layout, name) {
    // openGuestPayload hashes the kernel and initrd against SHA256SUMS; what it accepted is pinned.
    const payload = await openGuestPayload(layout.payloadRoot, name);
    const sums = parseChecksums(await readFile(join(payload.dir, CHECKSUM_FILE), 'utf8'));
    const files: Record<string, string> = {};
    for (const file of [payload.manifest.kernel, payload.manifest.initrd]) files[file] = sums.get(file) ?? '';
    return files;
  },
};

/**
 * A catalog image's guest: its platform's minimums and defaults are the
 * payload's it boots with, its first configuration what the image's
 * descriptor says its machine was (./described-config.ts); install pins the store file's sha256. Its `name`
 * here is the image's sha256 (the record's `source.sha256`).
 */
function imageDriver(guest: string): SourceDriver {
  return {
    present: (layout, sha256) => Promise.resolve(findCatalogImage(layout, sha256)?.sha256 === sha256),
    needs: (layout) => payloadDriver.needs(layout, IMAGE_GUEST_PAYLOAD),
    async initial(layout, sha256) {
      const defaults = await payloadDefaults(layout, IMAGE_GUEST_PAYLOAD);
      const machine = catalogDescribedMachine(layout, sha256);
      return machine ? configFromDescribed(defaults, await payloadDriver.needs(layout, IMAGE_GUEST_PAYLOAD), machine) : { config: defaults };
    },
    async install(layout, sha256) {
      const system = guestImage(layout, sha256, guest);
      await checkImageFile(system, system.image.fileSha256, guest);
      // The payload it boots with is checked and pinned too.
      return { ...(await payloadDriver.install(layout, IMAGE_GUEST_PAYLOAD)), [system.image.file]: system.image.fileSha256 };
    },
  };
}

/** The driver and the name it knows the source by. */
export function sourceDriver(source: GuestSourceRef, guest = source.name): SourceDriver {
  return source.kind === 'image' ? imageDriver(guest) : payloadDriver;
}

/** The name a source's driver takes: a payload's folder, an image's sha256. */
export function sourceKey(source: GuestSourceRef): string {
  return source.kind === 'image' ? source.sha256 : source.name;
}

/** `--from NAME`: a payload on the stick, else a catalog image (name, sha256 or prefix) with a system pocketvm can start. */
export async function resolveSource(layout: StickLayout, from: string): Promise<GuestSourceRef> {
  if (await payloadDriver.present(layout, from)) return { kind: 'payload', name: from };
  const image = findCatalogImage(layout, from);
  if (image) {
    imageSystem(layout, image);
    return { kind: 'image', name: image.name, sha256: image.sha256 };
  }
  throw new ImageGuestError('guestFromImage', `there is no payload and no catalog image named ${from} on ${layout.root}`, {
    hint: 'launcher image list names the images; launcher init-stick DIR --guest NAME puts a payload on the stick',
    details: { reason: 'no-source', source: from },
  });
}

export function describeSource(source: GuestSourceRef): string {
  return `${source.kind} ${source.name}`;
}
