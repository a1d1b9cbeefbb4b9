// The image store on the stick (docs/image-store.md): images/store/<sha256>.qcow2,
// one sparse qcow2 per distinct guest-visible content, and the catalog beside
// it. Opening makes the folders; nothing else here writes.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { imageStorePaths, type StickLayout } from '../stick/layout.ts';
import { ImageCatalog, type CatalogImage } from './image-catalog.ts';

export interface ImageStore {
  paths: ReturnType<typeof imageStorePaths>;
  catalog: ImageCatalog;
  fileOf(image: Pick<CatalogImage, 'file'>): string;
}

export async function openImageStore(layout: StickLayout): Promise<ImageStore> {
  const paths = imageStorePaths(layout);
  await mkdir(paths.store, { recursive: true });
  await mkdir(paths.incoming, { recursive: true });
  const catalog = ImageCatalog.open(paths.catalog);
  return { paths, catalog, fileOf: (image) => join(paths.store, image.file) };
}

/** A catalog name from a file name: lower-case letters, digits and -, unique among `taken`. */
export function imageNameFor(source: string, taken: (name: string) => boolean): string {
  const stem =
    source
      .replace(/^.*[/\\]/, '')
      .replace(/\.(img|raw|qcow2|vmdk|vhdx|vhd|vdi|ova|iso|bin)$/i, '')
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 32) || 'image';
  const base = /^[a-z]/.test(stem) ? stem : `i-${stem}`;
  if (!taken(base)) return base;
  for (let i = 2; ; i++) if (!taken(`${base}-${i}`)) return `${base}-${i}`;
}

export const IMAGE_NAME_PATTERN = /^[a-z][a-z0-9-]{0,39}$/;
