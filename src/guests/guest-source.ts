// Where a guest's environment comes from: a payload on the stick today
// (payload/<name>/: kernel + initrd), a disk image when image guests land
// (issue 18). Each kind is one driver behind the same interface, chosen by the
// record's `source.kind`, so the lifecycle never asks which kind it holds.
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GuestStateError } from '../errors.ts';
import { CHECKSUM_FILE, openGuestPayload, parseChecksums } from '../payload/guest-payload.ts';
import { loadManifest } from '../payload/guest-manifest.ts';
import type { StickLayout } from '../stick/layout.ts';
import type { GuestConfig, SourceNeeds } from './guest-config.ts';

export interface GuestSourceRef {
  kind: 'payload';
  name: string;
}

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
  /** A new guest's configuration: what the source recommends. */
  defaults(layout: StickLayout, name: string): Promise<GuestConfig>;
  /** Checks the source whole (checksums) and pins what the guest will boot. */
  install(layout: StickLayout, name: string): Promise<Record<string, string>>;
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
  async defaults(layout, name) {
    const manifest = await loadManifest(join(layout.payloadRoot, name));
    return { network: manifest.devices.network, display: 'none', shares: [], disks: [], devices: [] };
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

const DRIVERS: Record<GuestSourceRef['kind'], SourceDriver> = { payload: payloadDriver };

export function sourceDriver(source: GuestSourceRef): SourceDriver {
  return DRIVERS[source.kind];
}

/** `--from NAME`: a payload on the stick (an image, once image guests land). */
export async function resolveSource(layout: StickLayout, from: string): Promise<GuestSourceRef> {
  if (await payloadDriver.present(layout, from)) return { kind: 'payload', name: from };
  throw new GuestStateError(`there is no payload named ${from} on ${layout.root}`, {
    hint: 'put it on the stick with: launcher init-stick DIR --guest NAME',
    details: { reason: 'no-source', source: from },
  });
}

export function describeSource(source: GuestSourceRef): string {
  return `${source.kind} ${source.name}`;
}
