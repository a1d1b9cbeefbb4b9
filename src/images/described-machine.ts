// What the catalog says an image's machine was: the descriptor `launcher
// import` recorded with it (src/export/import-machine.ts: memory, CPUs, NICs
// as an OVF, a libvirt domain, a QEMU script or a Proxmox config said them),
// or, for an image made from another (`image adapt`, `image customize`), the
// nearest ancestor's along its lineage. Read defensively: the catalog holds
// the descriptor as JSON written by whichever launcher imported it.
import { type CatalogImage, selfAndAncestors } from './image-catalog.ts';

export interface DescribedMachine {
  /** The image whose catalog record holds the descriptor: the image itself or an ancestor. */
  image: string;
  /** The descriptor file it was read from. */
  source: string;
  memoryMiB?: number;
  cpus?: number;
  /** Every NIC the machine had, in the descriptor's order (a MAC as written there). */
  nics: Array<{ mac?: string; model?: string }>;
}

const positive = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : undefined);
const text = (value: unknown): string | undefined => (typeof value === 'string' && value.length > 0 ? value : undefined);

function readDescribed(image: string, source: string, descriptor: Record<string, unknown>): DescribedMachine {
  const memoryMiB = positive(descriptor['memoryMiB']);
  const cpus = positive(descriptor['cpus']);
  const nics = (Array.isArray(descriptor['nics']) ? (descriptor['nics'] as unknown[]) : []).map((nic) => {
    const fields = typeof nic === 'object' && nic !== null ? (nic as Record<string, unknown>) : {};
    const mac = text(fields['mac']);
    const model = text(fields['model']);
    return { ...(mac ? { mac } : {}), ...(model ? { model } : {}) };
  });
  return { image, source, ...(memoryMiB ? { memoryMiB } : {}), ...(cpus ? { cpus } : {}), nics };
}

/**
 * The machine `image` was described as: its own latest descriptor, else its
 * parent's (`lineage.parent`, looked up by `byHash`), and so on; undefined
 * when none on the way has one (an image imported from a bare disk) or the
 * parent is no longer in the catalog.
 */
export function describedMachine(image: CatalogImage, byHash: (sha256: string) => CatalogImage | undefined): DescribedMachine | undefined {
  for (const at of selfAndAncestors(image, byHash)) {
    const described = at.described?.at(-1);
    if (described) return readDescribed(at.name, described.source, described.descriptor);
  }
  return undefined;
}
