// `launcher image deploy IMAGE TARGET [--format raw|vmdk|vhdx] [--size N]`:
// a catalog image written to a block device or a new file (src/images/image-deploy.ts).
import type { Command } from 'commander';
import { ImageError } from '../../errors.ts';
import { DEPLOY_FORMATS, type DeployFormat, deployImage, parseDeploySize } from '../../images/image-deploy.ts';
import type { ImageStore } from '../../images/image-store.ts';
import type { CatalogImage } from '../../images/image-catalog.ts';
import type { StickLayout } from '../../stick/layout.ts';
import type { Output } from '../output.ts';
import { percentRenderer } from '../progress.ts';

export function registerImageDeploy(
  sub: (name: string, description: string) => Command,
  output: () => Output,
  withStore: <T>(stick: string | undefined, work: (layout: StickLayout, store: ImageStore) => Promise<T>) => Promise<T>,
  findImage: (store: ImageStore, ref: string) => CatalogImage,
): void {
  sub('deploy', 'write a catalog image to a block device or a new raw, vmdk or vhdx file (virtual to physical)')
    .argument('<image>', 'a name or sha256 (prefix of 8 or more)')
    .argument('<target>', 'a block device, or a new file')
    .option('--format <format>', `the file's format: ${DEPLOY_FORMATS.join(', ')}`, 'raw')
    .option('--size <size>', "the file's size (e.g. 4G); its last partition grows to the end (default: the image's size)")
    .action(async (ref: string, target: string, options: { stick?: string; format: string; size?: string }) => {
      const out = output();
      if (!(DEPLOY_FORMATS as readonly string[]).includes(options.format))
        throw new ImageError('imageDeploy', `--format ${options.format}: deploy writes ${DEPLOY_FORMATS.join(', ')}`, { details: { reason: 'bad-format' } });
      const sizeBytes = options.size === undefined ? undefined : parseDeploySize(options.size);
      const shown = percentRenderer(out);
      const result = await withStore(options.stick, (layout, store) =>
        deployImage(
          layout,
          store,
          () => findImage(store, ref),
          target,
          { format: options.format as DeployFormat, ...(sizeBytes === undefined ? {} : { sizeBytes }) },
          shown,
        ),
      );
      shown.finish();
      out.data(result);
      out.line(
        `${result.image} written to ${result.target} (${result.format}, ${result.bytes} bytes${result.grownPartition ? `; partition ${result.grownPartition} grown to the end` : ''})`,
      );
    });
}
