// `launcher run` after login, when the user has a suspended guest on the
// stick: resume it (the session does), or, when this PC cannot, let the person
// choose between a cold boot and keeping the state for another PC. Decided
// here, in the foreground process that can ask, before the key is handed to
// the session (also for --detach).
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { deriveStateKey } from '../auth/state-key.ts';
import type { UnlockedUser } from '../auth/users.ts';
import { UsageError } from '../errors.ts';
import { resumeHostHere, unresumableError } from '../session/resume.ts';
import { deleteSavedState, describeUnresumable, examineSavedState, savedStatePaths, setStateAside } from '../session/saved-state.ts';
import { stickLayout } from '../stick/layout.ts';
import type { Accelerator } from '../vmm/machine-spec.ts';
import type { Output } from './output.ts';

export interface SavedStateFlags {
  coldBoot?: boolean;
  keepState?: boolean;
}

export function savedStateOptions(command: Command): Command {
  return command
    .option('--cold-boot', 'boot afresh even if a suspended guest is on the stick (it is set aside, never deleted)')
    .option('--keep-state', 'if the suspended guest cannot be resumed on this PC, keep it for another PC and start nothing (exit 17)');
}

const when = (iso: string) => iso.replace('T', ' ').replace(/\.\d+Z$/, ' UTC');

export async function settleSavedState(
  out: Output,
  stickRoot: string,
  guest: string,
  user: UnlockedUser,
  flags: SavedStateFlags,
  accelerator: Accelerator | 'auto',
): Promise<void> {
  const layout = stickLayout(stickRoot);
  const { file } = savedStatePaths(layout, user.name, guest);
  if (!existsSync(file)) return;
  if (flags.coldBoot && flags.keepState) throw new UsageError('--cold-boot and --keep-state contradict each other');
  if (flags.coldBoot) {
    const aside = await setStateAside(file);
    out.notice(`--cold-boot: the suspended ${guest} guest was set aside as ${aside} (it is never resumed; delete it when you are sure); booting afresh`);
    return;
  }
  const stateKey = deriveStateKey(user.diskKey);
  let verdict;
  try {
    verdict = await examineSavedState({ layout, guest, user, stateKey, host: () => resumeHostHere(stickRoot, accelerator) });
  } finally {
    stateKey.fill(0);
  }
  if (!verdict) return;
  if (verdict.resumable) {
    out.info(`found ${guest} suspended ${when(verdict.meta.createdAt)} on ${verdict.sameHost ? 'this PC' : 'another PC'}: resuming it`);
    return;
  }
  if (flags.keepState) throw unresumableError(verdict, 'keep-state');
  if (!process.stdin.isTTY || !process.stderr.isTTY) throw unresumableError(verdict);
  out.notice(describeUnresumable(verdict));
  const { select, confirm } = await import('@inquirer/prompts');
  const choice = await select(
    {
      message: 'what now?',
      choices: [
        { value: 'keep', name: 'keep the suspended guest for another PC, start nothing' },
        { value: 'aside', name: 'boot afresh here; set the suspended guest aside (kept, never resumed)' },
        { value: 'delete', name: 'boot afresh here; delete the suspended guest' },
      ],
    },
    { output: process.stderr },
  );
  if (choice === 'keep') throw unresumableError(verdict, 'keep-state');
  if (
    choice === 'delete' &&
    (await confirm({ message: 'delete it for good? whatever it had open and unsaved is lost', default: false }, { output: process.stderr }))
  ) {
    await deleteSavedState(file);
    out.info('the suspended guest was deleted; booting afresh');
    return;
  }
  const aside = await setStateAside(file);
  out.info(`the suspended guest was set aside as ${aside}; booting afresh`);
}
