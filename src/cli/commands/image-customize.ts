// `launcher image customize IMAGE [--hostname H] [--user NAME[:PASSWORD]]
// [--ssh-key [NAME:]FILE] [--copy-in LOCAL:PATH] [--first-boot CMD]
// [--generalize] [--name NEW]`: a new catalog image made offline in the
// helper appliance (src/images/image-customize.ts); the source stays as it was.
import type { Command } from 'commander';
import { customizeImage, prepareCustomize } from '../../images/image-customize.ts';
import type { CatalogImage } from '../../images/image-catalog.ts';
import type { ImageStore } from '../../images/image-store.ts';
import type { StickLayout } from '../../stick/layout.ts';
import type { Output } from '../output.ts';
import { appliance } from './files.ts';

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerImageCustomize(
  sub: (name: string, description: string) => Command,
  output: () => Output,
  withStore: <T>(stick: string | undefined, work: (layout: StickLayout, store: ImageStore) => Promise<T>) => Promise<T>,
  findImage: (store: ImageStore, ref: string) => CatalogImage,
): void {
  sub(
    'customize',
    'a new catalog image from IMAGE, customized offline in the helper appliance: hostname, users, keys, files, first-boot commands, generalisation',
  )
    .argument('<image>', 'a name or sha256 (prefix of 8 or more)')
    .option('--name <name>', "the new image's name (default: IMAGE-custom)")
    .option('--hostname <hostname>', 'its host name (/etc/hostname, /etc/hosts)')
    .option('--user <name[:password]>', "a user made with the image's own useradd; the password hashed by its own chpasswd (repeatable)", collect, [])
    .option('--ssh-key <[name:]file>', "an SSH public key for a user's authorized_keys (repeatable)", collect, [])
    .option('--copy-in <local:path>', 'a local file written at PATH in the image (repeatable)', collect, [])
    .option('--first-boot <command>', 'a command run once, as root, at the first boot (repeatable)', collect, [])
    .option('--generalize', 'done last: machine-id emptied, SSH host keys removed (made again at first boot), logs emptied')
    .action(
      async (
        ref: string,
        options: {
          stick?: string;
          name?: string;
          hostname?: string;
          user: string[];
          sshKey: string[];
          copyIn: string[];
          firstBoot: string[];
          generalize?: boolean;
        },
      ) => {
        const out = output();
        const made = await withStore(options.stick, async (layout, store) => {
          const image = findImage(store, ref);
          const prepared = await prepareCustomize(store, {
            ...(options.name === undefined ? {} : { name: options.name }),
            ...(options.hostname === undefined ? {} : { hostname: options.hostname }),
            users: options.user,
            sshKeys: options.sshKey,
            copyIn: options.copyIn,
            firstBoot: options.firstBoot,
            generalize: options.generalize === true,
          });
          const app = (await appliance(out, options.stick, true))!;
          return customizeImage(layout, store, app.address, image, prepared, { step: (message) => out.info(message), progress: () => {} });
        });
        out.data(made);
        out.line(`${made.name}: made from ${made.parent}, sha256 ${made.sha256.slice(0, 16)}…`);
        for (const step of made.steps) out.line(`  ${step}`);
      },
    );
}
