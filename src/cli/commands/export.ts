// `launcher export GUEST --to libvirt|ova|qemu|proxmox|nocloud DEST`: a stick
// guest written for another engine (docs/export.md, src/export/). With
// --user the person signs in and agrees (at the prompt, or --yes) before
// their encrypted system overlay is flattened and written decrypted.
import type { Command } from 'commander';
import { Option } from 'commander';
import type { UnlockedUser } from '../../auth/users.ts';
import { ExportError } from '../../errors.ts';
import type { ExportRequest } from '../../export/export-guest.ts';
import type { ExportTarget } from '../../export/targets.ts';
import { openStick, resolveStickRoot } from '../../stick/stick-root.ts';
import type { Output } from '../output.ts';
import { percentRenderer } from '../progress.ts';
import { jsonOption, stickOption } from './options.ts';

interface ExportOptions {
  to: 'libvirt' | 'ova' | 'qemu' | 'proxmox' | 'nocloud';
  flavour?: 'vmware' | 'virtualbox';
  user?: string;
  passphraseStdin?: boolean;
  yes?: boolean;
  stick?: string;
  domainType: 'kvm' | 'qemu';
  sshKey: string[];
}

function targetOf(options: ExportOptions): ExportTarget {
  if (options.to === 'ova') return options.flavour === 'virtualbox' ? 'virtualbox-ova' : 'vmware-ova';
  if (options.flavour !== undefined)
    throw new ExportError('exportSource', `--flavour is for --to ova, not --to ${options.to}`, { details: { reason: 'bad-flavour' } });
  return options.to;
}

/** The user's say-so for writing their system decrypted: --yes, or yes at a terminal. */
async function agree(out: Output, user: string, guest: string, yes: boolean | undefined): Promise<void> {
  if (yes) return;
  const warning = `${user}'s ${guest} system will be written decrypted: anyone who reads the export reads their system`;
  if (!process.stdin.isTTY)
    throw new ExportError('exportSource', `${warning}; nothing was written`, { hint: 'say so with --yes', details: { reason: 'not-confirmed' } });
  out.notice(warning);
  const { confirm } = await import('@inquirer/prompts');
  if (!(await confirm({ message: `export ${user}'s ${guest} system decrypted?`, default: false }, { output: process.stderr })))
    throw new ExportError('exportSource', 'not confirmed; nothing was written', { details: { reason: 'not-confirmed' } });
}

export function registerExport(program: Command, output: () => Output): void {
  const command = program
    .command('export')
    .description('write a guest for libvirt, an OVA (VMware, VirtualBox), a QEMU script, Proxmox or a cloud-init NoCloud seed')
    .argument('<guest>', 'the guest (or payload) on the stick')
    .argument('<destination>', 'a new folder (libvirt, qemu, proxmox, nocloud) or a new .ova file')
    .addOption(new Option('--to <target>', 'what to write').choices(['libvirt', 'ova', 'qemu', 'proxmox', 'nocloud']).makeOptionMandatory())
    .addOption(new Option('--flavour <flavour>', 'the OVF dialect of an OVA (default vmware)').choices(['vmware', 'virtualbox']))
    .option('--user <name>', "sign in and export this user's system (their overlay over the base, decrypted); nocloud: the guest user's name")
    .option('--passphrase-stdin', 'read the passphrase from the first line of stdin (for scripts)')
    .option('--yes', "agree to writing the user's system decrypted (for scripts)")
    .addOption(new Option('--domain-type <type>', 'libvirt: kvm, or qemu for TCG').choices(['kvm', 'qemu']).default('kvm'))
    .option(
      '--ssh-key <file>',
      'nocloud: an SSH public key file for the user (repeat for more)',
      (file: string, all: string[]) => [...all, file],
      [] as string[],
    );
  stickOption(command);
  jsonOption(command);
  command.action(async (guest: string, destination: string, options: ExportOptions) => {
    const out = output();
    const target = targetOf(options);
    const layout = await openStick(resolveStickRoot(options.stick));
    const { exportGuest, readSshKeys } = await import('../../export/export-guest.ts');
    const request: ExportRequest = { guest, target, destination, domainType: options.domainType };
    if (target === 'nocloud') {
      if (options.user !== undefined) request.seedUser = options.user;
      request.sshKeys = (await Promise.all(options.sshKey.map(readSshKeys))).flat();
    }
    let user: UnlockedUser | undefined;
    if (options.user !== undefined && target !== 'nocloud') {
      const { loginForLaunch } = await import('../login.ts');
      user = await loginForLaunch(out, layout.root, { user: options.user, ...(options.passphraseStdin ? { passphraseStdin: true } : {}) });
      const { readAdmins, authorize } = await import('../../guests/guest-admins.ts');
      const admins = await readAdmins(layout);
      if (admins.owner !== undefined && user.name !== admins.owner) authorize(admins, user.name, { guest, right: 'export', says: 'export' });
      request.user = user;
    } else {
      const { requireRight } = await import('../session-rights.ts');
      await requireRight(out, layout, options.passphraseStdin ? { passphraseStdin: true } : {}, { guest, right: 'export', says: 'export' });
    }
    const shown = percentRenderer(out);
    try {
      if (user) await agree(out, user.name, guest, options.yes);
      const result = await exportGuest(layout, request, shown);
      shown.finish();
      out.data(result);
      out.line(
        `${result.guest} exported to ${result.destination} (${result.target}${result.user ? `, ${result.user}'s system` : ', the base'}): ${result.files.join(', ')}`,
      );
      if (result.losses.length > 0) {
        out.line(`what ${result.target} does not carry:`);
        for (const loss of result.losses) out.line(`  - ${loss.part}: ${loss.says}`);
      }
    } finally {
      shown.finish();
      user?.diskKey.fill(0);
    }
  });
}
