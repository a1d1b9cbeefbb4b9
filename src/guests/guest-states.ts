// The lifecycle of a guest, modelled on Solaris zones (seed 003): the states,
// and for every command the states it accepts and where it leaves the guest.
// The one table every guest command consults before it touches anything, so a
// refusal always names the current state and what the command would need.
import { GuestStateError } from '../errors.ts';

/**
 * - configured: its platform (configuration) is committed; nothing installed.
 * - incomplete: an install, uninstall or delete was interrupted, or is running now.
 * - installed: its environment (image) is in place; no QEMU.
 * - ready: QEMU started paused with disks and channels in place; not booted.
 * - running: booted.
 * - shutting_down: asked to shut down; not down yet.
 * - down: the guest is down, QEMU and its channels not yet torn down.
 * - suspended: its running state is saved on the stick.
 * - unavailable: its files (configuration, image) or the stick are missing.
 */
export const GUEST_STATES = ['configured', 'incomplete', 'installed', 'ready', 'running', 'shutting_down', 'down', 'suspended', 'unavailable'] as const;
export type GuestState = (typeof GUEST_STATES)[number];

/** How a state is written for a person ("shutting down"); JSON keeps the identifier. */
export function stateLabel(state: GuestState): string {
  return state.replace('_', ' ');
}

export const GUEST_COMMANDS = [
  'config-stage',
  'config-commit',
  'install',
  'uninstall',
  'delete',
  'clone',
  'ready',
  'boot',
  'halt',
  'reboot',
  'shutdown',
  'suspend',
  'console',
  'login',
] as const;
export type GuestCommand = (typeof GUEST_COMMANDS)[number];

interface Rule {
  /** What a person types (for messages). */
  says: string;
  accepts: readonly GuestState[];
  /** Where an accepted command leaves the guest; `same` keeps the state; `gone` removes the guest. */
  to: GuestState | 'same' | 'gone';
}

/**
 * Every command and the states it accepts. Why some are refused:
 * - a configuration is staged in any state but committed only while nothing
 *   half-done (incomplete) or saved (suspended: a resume needs the platform it
 *   was saved with) depends on the old one; in ready/running it applies at the next boot;
 * - install accepts incomplete (an interrupted install or uninstall is finished by
 *   installing again); uninstall and delete accept it too, so no state is a dead end;
 * - delete accepts unavailable: a guest whose files are gone can always be removed;
 * - boot of a suspended guest resumes it;
 * - clone copies a guest at rest: installed (or down to installed), never one that runs.
 */
export const TRANSITIONS: Readonly<Record<GuestCommand, Rule>> = {
  'config-stage': {
    says: 'guest config set|add|remove|verify|revert',
    accepts: ['configured', 'incomplete', 'installed', 'ready', 'running', 'shutting_down', 'down', 'suspended'],
    to: 'same',
  },
  'config-commit': { says: 'guest config commit', accepts: ['configured', 'installed', 'ready', 'running'], to: 'same' },
  install: { says: 'guest install', accepts: ['configured', 'incomplete'], to: 'installed' },
  uninstall: { says: 'guest uninstall', accepts: ['installed', 'incomplete'], to: 'configured' },
  delete: { says: 'guest delete', accepts: ['configured', 'installed', 'incomplete', 'unavailable'], to: 'gone' },
  clone: { says: 'guest clone', accepts: ['installed'], to: 'same' },
  ready: { says: 'guest ready', accepts: ['installed'], to: 'ready' },
  boot: { says: 'guest boot', accepts: ['installed', 'ready', 'suspended'], to: 'running' },
  halt: { says: 'guest halt', accepts: ['ready', 'running', 'shutting_down', 'down'], to: 'installed' },
  reboot: { says: 'guest reboot', accepts: ['running'], to: 'running' },
  shutdown: { says: 'guest shutdown', accepts: ['running'], to: 'installed' },
  suspend: { says: 'guest suspend', accepts: ['running'], to: 'suspended' },
  console: { says: 'launcher console', accepts: ['ready', 'running', 'shutting_down'], to: 'same' },
  // A ready guest has no agent to open a shell through yet: refused (boot it first), never a wait.
  login: { says: 'launcher login', accepts: ['running'], to: 'same' },
};

export function accepts(command: GuestCommand, state: GuestState): boolean {
  return TRANSITIONS[command].accepts.includes(state);
}

/** Where `command` leaves a guest that was in `state` (which it must accept). */
export function nextState(command: GuestCommand, state: GuestState): GuestState | 'gone' {
  const rule = TRANSITIONS[command];
  if (!rule.accepts.includes(state)) throw refusal(command, 'guest', state);
  return rule.to === 'same' ? state : rule.to;
}

function refusal(command: GuestCommand, guest: string, state: GuestState, why?: string): GuestStateError {
  const rule = TRANSITIONS[command];
  return new GuestStateError(
    `${rule.says} refuses guest ${guest}: it is ${stateLabel(state)}${why ? ` (${why})` : ''}; it accepts a guest that is ${rule.accepts.map(stateLabel).join(', ')}`,
    { hint: hintFor(command, state, guest), details: { reason: 'state', guest, state, command: rule.says, accepts: rule.accepts } },
  );
}

/** Throws the typed refusal unless `command` accepts `state`. */
export function requireState(command: GuestCommand, guest: string, state: GuestState, why?: string): void {
  if (!accepts(command, state)) throw refusal(command, guest, state, why);
}

function hintFor(command: GuestCommand, state: GuestState, guest: string): string {
  switch (state) {
    case 'configured':
      return `install it first: launcher guest install ${guest}`;
    case 'incomplete':
      return `finish what was interrupted: launcher guest install ${guest} (or guest uninstall / guest delete)`;
    case 'unavailable':
      return `its files are missing: put the stick or its payload back, or remove it with launcher guest delete ${guest}`;
    case 'suspended':
      return `resume it first (launcher run --guest ${guest}), then shut it down`;
    case 'ready':
    case 'running':
    case 'shutting_down':
    case 'down':
      if (command === 'login' && state === 'ready') return `boot it first: launcher guest boot ${guest}`;
      return command === 'boot' || command === 'ready' ? 'it is up already: launcher guest list shows it' : 'stop it first: launcher stop';
    case 'installed':
      return command === 'install' ? 'it is installed already' : `boot it first: launcher guest boot ${guest} (or launcher run --guest ${guest})`;
  }
}
