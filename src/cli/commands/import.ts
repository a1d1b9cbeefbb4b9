// `launcher import SOURCE [--name NAME] [--for pocketvm] [--no-adapt]
// [--no-agent] [--guest NAME]`: an OVA, or a libvirt, QEMU or Proxmox export
// folder, back onto the stick (docs/import.md, src/export/import-machine.ts):
// image import, then image adapt (its pre-flight printed first), then guest
// create --from when --guest names one.
import type { Command } from 'commander';
import { Option } from 'commander';
import { openImageStore } from '../../images/image-store.ts';
import { openStick, resolveStickRoot } from '../../stick/stick-root.ts';
import type { Output } from '../output.ts';
import { percentRenderer } from '../progress.ts';
import { appliance } from './files.ts';
import { jsonOption, stickOption } from './options.ts';

interface ImportOptions {
  name?: string;
  for: 'pocketvm';
  adapt: boolean;
  agent: boolean;
  guest?: string;
  user?: string;
  passphraseStdin?: boolean;
  stick?: string;
}

export function registerImport(program: Command, output: () => Output): void {
  const command = program
    .command('import')
    .description('bring an export back onto the stick: an OVA (ours, VMware, VirtualBox, others), a libvirt, QEMU or Proxmox export folder')
    .argument('<source>', 'an .ova file, an export folder, or the descriptor in one (.ovf, domain .xml, run.sh, .conf)')
    .option('--name <name>', "the imported image's name (default: the descriptor's machine name)")
    // The stick is the one target an import lands on; the option says so, and leaves room for none other.
    .addOption(new Option('--for <target>', 'adapt for this hypervisor').choices(['pocketvm']).default('pocketvm'))
    .option('--no-adapt', 'import only: no image adapt')
    .option('--no-agent', 'adapt without qemu-guest-agent')
    .option('--guest <name>', 'make a guest of this name from the result (guest create --from)')
    .option('--user <name>', 'sign in as this user to create the guest (needed on a stick with an owner)')
    .option('--passphrase-stdin', 'read the passphrase from the first line of stdin (for scripts)');
  stickOption(command);
  jsonOption(command);
  command.action(async (source: string, options: ImportOptions) => {
    const out = output();
    const layout = await openStick(resolveStickRoot(options.stick));
    if (options.guest !== undefined) {
      // The same right guest create asks for, before anything is imported.
      const { readAdmins, authorize } = await import('../../guests/guest-admins.ts');
      const admins = await readAdmins(layout);
      let user: string | undefined;
      if (options.user !== undefined || options.passphraseStdin || (admins.owner !== undefined && process.stdin.isTTY)) {
        const { loginForLaunch } = await import('../login.ts');
        const unlocked = await loginForLaunch(out, layout.root, {
          ...(options.user ? { user: options.user } : {}),
          ...(options.passphraseStdin ? { passphraseStdin: true } : {}),
        });
        unlocked.diskKey.fill(0);
        user = unlocked.name;
      }
      authorize(admins, user, { global: 'create guests' });
    }
    const { importMachine } = await import('../../export/import-machine.ts');
    const store = await openImageStore(layout);
    const shown = percentRenderer(out);
    try {
      const result = await importMachine(
        layout,
        store,
        async () => (await appliance(out, options.stick, true))!.address,
        {
          source,
          ...(options.name === undefined ? {} : { name: options.name }),
          adapt: options.adapt,
          noAgent: !options.agent,
          ...(options.guest === undefined ? {} : { guest: options.guest }),
        },
        {
          step: (message) => shown.step(message),
          progress: (percent) => shown.progress(percent),
          preflight: (plan) => {
            shown.finish();
            out.line(`pre-flight: for ${plan.target} (disk ${plan.devices.disk}, NIC ${plan.devices.nic})`);
            for (const change of plan.changes) out.line(`  ${change.change ? 'change ' : 'as is  '} ${change.step}: ${change.what}`);
          },
        },
      );
      shown.finish();
      out.data(result);
      for (const i of result.imported)
        out.line(`${i.name}: imported from ${result.kind}${i.member ? ` (${i.member})` : ''}${i.deduplicated ? ' (the same content was stored already)' : ''}`);
      out.line(
        'skipped' in result.adapt ? `not adapted: ${result.adapt.skipped}` : `${result.image}: adapted for pocketvm (${(result.adapt.ms / 1000).toFixed(1)} s)`,
      );
      if (result.guest) out.line(`guest ${result.guest} created from ${result.image}; next: launcher guest install ${result.guest}`);
    } finally {
      shown.finish();
      store.catalog.close();
    }
  });
}
