// Which guests a catalog image is the system of: `image rm` refuses to remove
// an image a guest record names (docs/guests.md, "Guests from catalog images").
import { readdir } from 'node:fs/promises';
import type { CatalogImage } from '../images/image-catalog.ts';
import { readJson } from '../primitives/read-json.ts';
import { guestsRoot, type StickLayout } from '../stick/layout.ts';
import { guestPaths } from './guest-store.ts';

/**
 * The guests made from a catalog image: a guest record whose source is
 * `{ kind: 'image', name|sha256 }`.
 */
export async function guestsUsing(layout: StickLayout, image: Pick<CatalogImage, 'name' | 'sha256'>): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(guestsRoot(layout));
  } catch {
    return [];
  }
  const using: string[] = [];
  for (const name of names.filter((n) => !n.startsWith('.'))) {
    const record = await readJson<{ source?: { kind?: string; name?: string; sha256?: string } }>(guestPaths(layout, name).record).catch(() => undefined);
    const source = record?.source;
    if (source?.kind === 'image' && (source.name === image.name || source.name === image.sha256 || source.sha256 === image.sha256)) using.push(name);
  }
  return using;
}
