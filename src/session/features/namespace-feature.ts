// The dyntable namespace as a launch feature: this user's confirmations
// checked with their key (the disk key is still in memory), the at-rest key
// derived, the 9P card (src/session/namespace-channel.ts) with the guest's RAM
// shared for placed reads; after a resume, the guest mounts /host again.
import type { UnlockedUser } from '../../auth/users.ts';
import { confirmationsAreCurrent, trustedConfirmations } from '../../dyntable/confirmations.ts';
import { deriveAtRestKey } from '../../dyntable/sealed/keys.ts';
import type { RegistryRuleReader } from '../../dyntable/registry-rules.ts';
import type { StoreQuota } from '../../dyntable/store-quota.ts';
import type { GuestManifest } from '../../payload/guest-manifest.ts';
import { dyntablePaths, type StickLayout } from '../../stick/layout.ts';
import type { LaunchFeature } from '../launch/feature.ts';
import type { Teardown } from '../launch/teardown.ts';
import { NAMESPACE_CMDLINE_WORD, namespaceChannel, remountNamespace } from '../namespace-channel.ts';

export async function namespaceFeature(args: {
  layout: StickLayout;
  guest: string;
  user: UnlockedUser;
  registry: RegistryRuleReader;
  manifest: Pick<GuestManifest, 'tables'>;
  logFile: string;
  quota: StoreQuota;
  teardown: Teardown;
  notice: (message: string) => void;
}): Promise<LaunchFeature> {
  const { layout, user } = args;
  // Only confirmations signed with this user's key count; a forged one is said and ignored.
  const tables = await trustedConfirmations(dyntablePaths(layout, user.name).confirmations, user.diskKey, user.id);
  for (const refused of tables.refused) args.notice(refused.message);
  /** Seals what the guest writes through /host (src/dyntable/sealed/keys.ts); zeroed at teardown. */
  const atRestKey = deriveAtRestKey(user.diskKey);
  args.teardown.add(() => void atRestKey.fill(0));
  // An older copy of the file, bringing back a withdrawn confirmation, is refused (exit 10).
  confirmationsAreCurrent(dyntablePaths(layout, user.name).confirmations, tables.records, atRestKey);
  return {
    name: 'namespace',
    channels: [
      namespaceChannel({
        layout,
        guest: args.guest,
        user: user.name,
        registry: args.registry,
        manifest: args.manifest,
        confirmed: tables.trusted,
        logFile: args.logFile,
        atRestKey,
        quota: args.quota,
      }),
    ],
    cmdline: [NAMESPACE_CMDLINE_WORD],
    // The namespace's reads are placed in the guest's pages when its RAM is a file the launcher shares.
    sharesGuestRam: true,
    ready: async ({ machine, resumed }) => {
      if (resumed && !(await remountNamespace(machine)))
        args.notice('the resumed guest could not mount /host again; the host folders are unavailable until its next boot');
    },
  };
}
