// This run may write the personal disk: every state saved before it is stale
// from now on (src/session/disk-generation.ts). Bumped while QEMU is paused,
// after a resume has loaded its state; the new generation goes in the state a
// later suspend writes.
import type { UnlockedUser } from '../../auth/users.ts';
import type { StickLayout } from '../../stick/layout.ts';
import { bumpDiskGeneration } from '../disk-generation.ts';
import type { LaunchFeature } from '../launch/feature.ts';
import type { StateContext } from '../suspend.ts';

export function diskGenerationFeature(args: { layout: StickLayout; guest: string; user: UnlockedUser; stateContext: StateContext }): LaunchFeature {
  return {
    name: 'disk-generation',
    attach: async () => {
      args.stateContext.diskGeneration = await bumpDiskGeneration({ layout: args.layout, user: args.user, guest: args.guest, stateKey: args.stateContext.key });
    },
  };
}
