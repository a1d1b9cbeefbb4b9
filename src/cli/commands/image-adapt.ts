// `launcher image adapt IMAGE --for pocketvm|libvirt|proxmox|vmware|virtualbox
// [--name NEW] [--no-agent] [--dry-run]`: a new catalog image that boots on the
// target's devices, made in the helper appliance (src/images/image-adapt.ts,
// docs/adapt.md). The pre-flight (what it changes) is printed before any change.
import type { Command } from 'commander';
import { AdaptError } from '../../errors.ts';
import { HYPERVISORS, type Hypervisor } from '../../images/hypervisor-targets.ts';
import { adaptImage, checkAdaptName } from '../../images/image-adapt.ts';
import type { CatalogImage } from '../../images/image-catalog.ts';
import type { ImageStore } from '../../images/image-store.ts';
import type { StickLayout } from '../../stick/layout.ts';
import type { Output } from '../output.ts';
import { appliance } from './files.ts';

export function registerImageAdapt(
  sub: (name: string, description: string) => Command,
  output: () => Output,
  withStore: <T>(stick: string | undefined, work: (layout: StickLayout, store: ImageStore) => Promise<T>) => Promise<T>,
  findImage: (store: ImageStore, ref: string) => CatalogImage,
): void {
  sub('adapt', "a new catalog image from IMAGE made to boot on a hypervisor's devices: initramfs drivers, UUIDs, serial console, interface names, guest agent")
    .argument('<image>', 'a name or sha256 (prefix of 8 or more)')
    .requiredOption('--for <target>', HYPERVISORS.join(' | '))
    .option('--name <name>', "the new image's name (default: IMAGE-TARGET)")
    .option('--no-agent', 'leave qemu-guest-agent out')
    .option('--dry-run', 'print the pre-flight (what would change) and stop; nothing is made')
    .action(async (ref: string, options: { stick?: string; for: string; name?: string; agent: boolean; dryRun?: boolean }) => {
      const out = output();
      if (!(HYPERVISORS as readonly string[]).includes(options.for))
        throw new AdaptError('adaptRefused', `--for ${options.for}: not a target (${HYPERVISORS.join(', ')})`, { details: { reason: 'bad-target' } });
      const result = await withStore(options.stick, async (layout, store) => {
        const image = findImage(store, ref);
        checkAdaptName(store, options.name);
        const app = (await appliance(out, options.stick, true))!;
        return adaptImage(
          layout,
          store,
          app.address,
          image,
          {
            target: options.for as Hypervisor,
            ...(options.name === undefined ? {} : { name: options.name }),
            dryRun: options.dryRun === true,
            noAgent: !options.agent,
          },
          {
            step: (message) => out.info(message),
            progress: () => {},
            preflight: (plan) => {
              out.line(`pre-flight: ${image.name} for ${plan.target} (disk ${plan.devices.disk}, NIC ${plan.devices.nic})`);
              for (const change of plan.changes) out.line(`  ${change.change ? 'change ' : 'as is  '} ${change.step}: ${change.what}`);
            },
          },
        );
      });
      out.data(result);
      if (result.made)
        out.line(
          `${result.made.name}: made from ${result.image} for ${result.target}, sha256 ${result.made.sha256.slice(0, 16)}… (${(result.ms / 1000).toFixed(1)} s)`,
        );
      else out.line('dry run: nothing was changed');
    });
}
