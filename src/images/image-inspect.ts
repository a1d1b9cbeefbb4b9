// `launcher image inspect IMAGE`: IMAGE is a catalog image (its store file is
// inspected and the facts saved in its row) or an image file; either way the
// appliance looks at it read-only (inspect-handler.ts) and the launcher
// turns its report into facts (inspect-report.ts). Nothing is booted.
import { stat } from 'node:fs/promises';
import { ImageError } from '../errors.ts';
import { applianceRequest } from '../appliance/appliance-client.ts';
import type { ApplianceAddress } from '../appliance/appliance-protocol.ts';
import type { StickLayout } from '../stick/layout.ts';
import type { CatalogImage } from './image-catalog.ts';
import type { ImageStore } from './image-store.ts';
import { detectImportSource } from './disk-format.ts';
import { factsFromReport, type ImageFacts } from './inspect-report.ts';

export interface InspectTarget {
  path: string;
  format: string;
  image?: CatalogImage;
}

/** A catalog name or hash first, else a file on the host. */
export async function resolveInspectTarget(store: ImageStore, ref: string): Promise<InspectTarget> {
  const image = store.catalog.find(ref);
  if (image) {
    // The row and its file must agree before the file is handed to QEMU.
    const size = await stat(store.fileOf(image)).then(
      (info) => info.size,
      () => undefined,
    );
    if (size !== image.storedBytes)
      throw new ImageError(
        'imageStore',
        `${image.name}: its store file ${size === undefined ? 'is missing' : `is ${size} bytes, the catalog says ${image.storedBytes}`}`,
        {
          hint: 'remove it (launcher image rm NAME) and import it again',
          details: { reason: size === undefined ? 'missing' : 'size', file: store.fileOf(image) },
        },
      );
    return { path: store.fileOf(image), format: 'qcow2', image };
  }
  const source = await detectImportSource(ref).catch((cause: unknown) => {
    throw new ImageError('imageMissing', `${ref} is neither an image in the catalog nor a disk image file`, {
      hint: 'launcher image list shows the catalog',
      cause,
      details: { reason: 'no-such-image' },
    });
  });
  if (source.kind === 'ova')
    throw new ImageError('imageFormat', `${ref} is an OVA: import it first (launcher image import ${ref})`, { details: { reason: 'ova' } });
  return { path: source.path, format: source.format };
}

export async function inspectImage(layout: StickLayout, address: ApplianceAddress, target: InspectTarget): Promise<{ facts: ImageFacts; applianceMs: number }> {
  const result = await applianceRequest(layout, address, 'inspect', { source: target.path, format: target.format });
  const facts = factsFromReport(result.report);
  if (facts.fileSystems.every((f) => f.type === null))
    throw new ImageError('imageInspect', `${target.image?.name ?? target.path}: no file system was found in it`, { details: { reason: 'nothing-found' } });
  return { facts, applianceMs: result.ms };
}

/**
 * A catalog image's facts: those in its row, else inspected now and kept
 * there (customize needs the root, a guest made from it needs the facts).
 * The appliance is asked for only when the image was never inspected.
 */
export async function catalogFacts(
  layout: StickLayout,
  appliance: () => Promise<ApplianceAddress>,
  store: ImageStore,
  image: CatalogImage,
  step: (message: string) => void,
): Promise<ImageFacts> {
  if (image.facts) return image.facts as unknown as ImageFacts;
  step(`inspecting ${image.name} first`);
  const { facts } = await inspectImage(layout, await appliance(), await resolveInspectTarget(store, image.sha256));
  store.catalog.setFacts(image.sha256, facts as unknown as Record<string, unknown>, new Date().toISOString());
  return facts;
}
