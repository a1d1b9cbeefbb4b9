// `launcher import SOURCE` (docs/import.md): an export — ours or another
// tool's — back onto a stick, only through the paths that already exist:
// its descriptor read (src/export/import-descriptor.ts), its disks into the
// store by `image import` (checked, sparse, by content, provenance), what
// the descriptor said recorded with them as facts, then `image adapt --for
// pocketvm` (its pre-flight shown first) and, when asked, a guest made by
// `guest create --from` over the result (inspected first, as that needs).
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import type { ApplianceAddress } from '../appliance/appliance-protocol.ts';
import { AdaptError, GuestStateError, UsageError } from '../errors.ts';
import type { DescriptorConfig } from '../guests/described-config.ts';
import { checkGuestName, guestPaths } from '../guests/guest-store.ts';
import { type AdaptPlan, type AdaptResult, adaptImage } from '../images/image-adapt.ts';
import { type ImportedImage, importImage } from '../images/image-import.ts';
import { IMAGE_NAME_PATTERN, type ImageStore, imageNameFor } from '../images/image-store.ts';
import type { StickLayout } from '../stick/layout.ts';
import { type ImportKind, type MachineDescription, readExport } from './import-descriptor.ts';

export interface ImportRequest {
  source: string;
  /** The imported image's name (default: the descriptor's machine name). */
  name?: string;
  /** Adapt for the stick (default); false: `--no-adapt`. */
  adapt: boolean;
  noAgent: boolean;
  /** Make a guest of this name from the result (`guest create --from`). */
  guest?: string;
}

export interface ImportEvents {
  step(message: string): void;
  progress(percent: number): void;
  preflight(plan: AdaptPlan): void;
}

export interface ImportResult {
  source: string;
  kind: ImportKind;
  descriptor: string;
  machine: MachineDescription;
  imported: ImportedImage[];
  /** The adapt's result; `skipped` says why there was none (--no-adapt, or nothing to change). */
  adapt: AdaptResult | { skipped: string };
  /** The image a guest boots: the adapted one, else the imported system disk. */
  image: string;
  guest?: string;
  /** With --guest: what the guest's configuration took from the descriptor (memory, CPUs, network, MAC), and what it left. */
  fromDescriptor?: DescriptorConfig;
}

/** Checks what can be checked before anything is read or written: names that are taken or malformed. */
export function checkImportNames(layout: StickLayout, store: ImageStore, request: ImportRequest): void {
  if (request.name !== undefined && !IMAGE_NAME_PATTERN.test(request.name))
    throw new UsageError(`--name ${request.name}: not an image name`, 'image names are 1 to 40 lower-case letters, digits and -, starting with a letter');
  if (request.guest !== undefined) {
    checkGuestName(request.guest);
    if (existsSync(guestPaths(layout, request.guest).dir))
      throw new GuestStateError(`there is a guest named ${request.guest} already`, {
        hint: 'pick another --guest name, or delete it first',
        details: { reason: 'exists', guest: request.guest },
      });
  }
}

export async function importMachine(
  layout: StickLayout,
  store: ImageStore,
  appliance: () => Promise<ApplianceAddress>,
  request: ImportRequest,
  events: ImportEvents,
): Promise<ImportResult> {
  checkImportNames(layout, store, request);
  events.step(`reading ${request.source}`);
  const read = await readExport(request.source);
  const said = [
    read.machine.name && `name ${read.machine.name}`,
    read.machine.firmware,
    read.machine.machine,
    read.machine.memoryMiB && `${read.machine.memoryMiB} MiB`,
    read.machine.cpus && `${read.machine.cpus} CPU(s)`,
    ...read.machine.nics.map((nic) => `NIC ${nic.model ?? '?'} ${nic.mac ?? ''}`.trim()),
  ].filter(Boolean);
  events.step(`${read.kind} descriptor ${basename(read.descriptor)}: ${said.join(', ')}`);
  const name = request.name ?? imageNameFor(read.machine.name ?? basename(read.descriptor), (n) => store.catalog.nameTaken(n));
  const imported: ImportedImage[] = [];
  if (read.kind === 'ova') imported.push(...(await importImage(layout, store, read.descriptor, { name }, events)));
  else
    for (const [index, disk] of read.disks.entries())
      imported.push(...(await importImage(layout, store, disk, { name: index === 0 ? name : `${name}-${index + 1}` }, events)));
  const importedAt = new Date().toISOString();
  const descriptor = { kind: read.kind, file: basename(read.descriptor), ...read.machine };
  for (const image of imported) store.catalog.addDescribed(image.sha256, { source: read.descriptor, descriptor, importedAt });
  const system = store.catalog.byHash(imported[0]!.sha256)!;
  let adapt: ImportResult['adapt'] = { skipped: '--no-adapt' };
  let final = system.name;
  if (request.adapt) {
    try {
      adapt = await adaptImage(layout, store, await appliance(), system, { target: 'pocketvm', dryRun: false, noAgent: request.noAgent }, events);
      final = adapt.made!.name;
    } catch (error) {
      if (!(error instanceof AdaptError && error.details.reason === 'nothing-to-do')) throw error;
      adapt = { skipped: `${system.name} needs nothing changed for pocketvm` };
    }
  }
  const result: ImportResult = { source: request.source, kind: read.kind, descriptor: read.descriptor, machine: read.machine, imported, adapt, image: final };
  if (request.guest !== undefined) {
    const { catalogFacts } = await import('../images/image-inspect.ts');
    await catalogFacts(layout, appliance, store, store.catalog.find(final)!, (message) => events.step(`${message} (a guest needs its facts)`));
    events.step(`guest create ${request.guest} --from ${final}`);
    const { createGuest } = await import('../guests/guest-lifecycle.ts');
    const record = await createGuest(layout, request.guest, final);
    result.guest = request.guest;
    if (record.fromDescriptor) {
      result.fromDescriptor = record.fromDescriptor;
      const { describeFromDescriptor } = await import('../guests/described-config.ts');
      for (const line of describeFromDescriptor(record.fromDescriptor)) events.step(`guest ${request.guest} from the descriptor: ${line}`);
    }
  }
  return result;
}
