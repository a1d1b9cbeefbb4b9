// Fault injection for the guest lifecycle: run a real `launcher guest ...`
// and SIGKILL it, either at a named step (POCKETVM_FAILPOINT, every step of
// every command) or at a random moment while it runs; then check that what it
// left is a state the command may leave (`guest list` answers and shows it)
// and that the next command a person would type finishes the job with no
// manual step. Shared by test/guests/fault-injection.test.ts and bench/guests.ts.
import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { personalDiskPath } from '../../src/auth/users.ts';
import { execa } from 'execa';
import { cloneGuest, createGuest, deleteGuest, installGuest, uninstallGuest } from '../../src/guests/guest-lifecycle.ts';
import type { GuestState } from '../../src/guests/guest-states.ts';
import { listGuests, viewGuest } from '../../src/guests/guest-view.ts';
import { guestsRoot, type StickLayout } from '../../src/stick/layout.ts';

const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const node = process.execPath;

export type FaultCommand = 'create' | 'install' | 'uninstall' | 'delete' | 'clone';

/** Every failpoint in src/guests/guest-lifecycle.ts, by command. */
export const FAILPOINTS: Record<FaultCommand, string[]> = {
  create: ['create:scratch', 'create:written', 'create:renamed'],
  install: ['install:marked', 'install:verified', 'install:pinned', 'install:done'],
  uninstall: ['uninstall:marked', 'uninstall:user-data', 'uninstall:unpinned'],
  delete: ['delete:marked', 'delete:user-data', 'delete:renamed'],
  clone: ['clone:scratch', 'clone:written', 'clone:renamed'],
};

/** What a killed command may leave the guest it works on in ('absent': no such guest). */
const MAY_LEAVE: Record<FaultCommand, ReadonlyArray<GuestState | 'absent'>> = {
  create: ['absent', 'configured'],
  install: ['configured', 'incomplete', 'installed'],
  uninstall: ['installed', 'incomplete', 'configured'],
  delete: ['installed', 'incomplete', 'absent'],
  clone: ['absent', 'installed'],
};

/** Where the command would have left it. */
const TARGET: Record<FaultCommand, GuestState | 'absent'> = {
  create: 'configured',
  install: 'installed',
  uninstall: 'configured',
  delete: 'absent',
  clone: 'installed',
};

export interface TrialResult {
  command: FaultCommand;
  kill: string;
  /** Did the process die of the kill (not finish first)? */
  killed: boolean;
  left: GuestState | 'absent';
  recovered: boolean;
  problem?: string;
}

/** Puts guest `name` where `command` starts from; returns the guest the command acts on. */
async function prepare(layout: StickLayout, command: FaultCommand, name: string): Promise<string> {
  if (command === 'create') return name;
  await createGuest(layout, name, 'default');
  if (command === 'install') return name;
  await installGuest(layout, name);
  if (command === 'clone') return `${name}-c`;
  // A user's personal disk for the guest (a stand-in file: the step under test deletes it, never opens it).
  await mkdir(dirname(personalDiskPath(layout, 'alice', name)), { recursive: true });
  await writeFile(personalDiskPath(layout, 'alice', name), 'disk');
  return name;
}

function argv(layout: StickLayout, command: FaultCommand, name: string): string[] {
  const stick = ['--stick', layout.root];
  switch (command) {
    case 'create':
      return ['guest', 'create', name, '--from', 'default', ...stick];
    case 'clone':
      return ['guest', 'clone', name, `${name}-c`, ...stick];
    case 'install':
      return ['guest', 'install', name, ...stick];
    default:
      return ['guest', command, name, '--yes', ...stick];
  }
}

/** The next command a person types after seeing `left` in `guest list`. */
async function recover(layout: StickLayout, command: FaultCommand, name: string, target: string, left: GuestState | 'absent'): Promise<void> {
  if (left === TARGET[command]) return;
  switch (command) {
    case 'create':
      await createGuest(layout, name, 'default');
      return;
    case 'install':
      await installGuest(layout, name);
      return;
    case 'uninstall':
      await uninstallGuest(layout, name, { yes: true });
      return;
    case 'delete':
      await deleteGuest(layout, name, { yes: true });
      return;
    case 'clone':
      await cloneGuest(layout, name, target);
      return;
  }
}

async function stateOf(layout: StickLayout, name: string): Promise<GuestState | 'absent'> {
  // Through the list, as a person sees it: one guest mid-change must not make it fail.
  const guests = await listGuests(layout);
  return guests.find((g) => g.name === name)?.state ?? 'absent';
}

/**
 * One trial: `kill` is a failpoint name, or `after:<ms>` for a SIGKILL that
 * many milliseconds after the launcher was started.
 */
export async function runTrial(layout: StickLayout, command: FaultCommand, name: string, kill: string): Promise<TrialResult> {
  const target = await prepare(layout, command, name);
  const env = kill.startsWith('after:') ? {} : { POCKETVM_FAILPOINT: kill };
  const child = execa(node, [main, ...argv(layout, command, name)], { env, reject: false });
  if (kill.startsWith('after:')) setTimeout(() => child.kill('SIGKILL'), Number(kill.slice('after:'.length)));
  const done = await child;
  const killed = done.signal === 'SIGKILL';
  const result: TrialResult = { command, kill, killed, left: 'absent', recovered: false };
  try {
    result.left = await stateOf(layout, target);
    if (!MAY_LEAVE[command].includes(result.left)) {
      result.problem = `left ${result.left}, which ${command} may not leave`;
      return result;
    }
    await recover(layout, command, name, target, result.left);
    const final = await stateOf(layout, target);
    if (final !== TARGET[command]) {
      result.problem = `recovery ended in ${final}, not ${TARGET[command]}`;
      return result;
    }
    // Nothing left behind once a list has swept: no scratch folder, no lock.
    const leftovers = (await readdir(guestsRoot(layout))).filter((entry) => entry.startsWith('.'));
    if (leftovers.length > 0) {
      result.problem = `left ${leftovers.join(', ')} in guests/`;
      return result;
    }
    if (final !== 'absent' && (await viewGuest(layout, target))?.busy) {
      result.problem = 'still busy after recovery';
      return result;
    }
    if ((command === 'delete' || command === 'uninstall') && existsSync(personalDiskPath(layout, 'alice', name))) {
      result.problem = "a user's disk for the guest is still there";
      return result;
    }
    if (command === 'delete' && existsSync(join(guestsRoot(layout), name))) {
      result.problem = 'the folder of a deleted guest is still there';
      return result;
    }
    result.recovered = true;
  } catch (error) {
    result.problem = `the next command failed: ${(error as Error).message}`;
  }
  return result;
}

/** How long the command takes unkilled here: the window random kills are drawn from. */
export async function timeCommand(layout: StickLayout, command: FaultCommand, name: string): Promise<number> {
  await prepare(layout, command, name);
  const started = performance.now();
  const done = await execa(node, [main, ...argv(layout, command, name)], { reject: false });
  if (done.exitCode !== 0) throw new Error(`${command} failed unkilled: ${done.stderr}`);
  return performance.now() - started;
}

/**
 * The trials: every failpoint once, then random kills spread over each
 * command's run until `total` (the window is 40 % to 105 % of its unkilled
 * time: the first part is Node starting, where nothing is written yet).
 */
export async function runTrials(layout: StickLayout, total: number, random: () => number = Math.random): Promise<TrialResult[]> {
  const results: TrialResult[] = [];
  let n = 0;
  for (const [command, points] of Object.entries(FAILPOINTS) as Array<[FaultCommand, string[]]>) {
    for (const point of points) results.push(await runTrial(layout, command, `f${++n}`, point));
  }
  const commands = Object.keys(FAILPOINTS) as FaultCommand[];
  const windows = new Map<FaultCommand, number>();
  for (const command of commands) windows.set(command, await timeCommand(layout, command, `t${++n}`));
  while (results.length < total) {
    const command = commands[results.length % commands.length]!;
    const window = windows.get(command)!;
    const at = Math.round(window * (0.4 + 0.65 * random()));
    results.push(await runTrial(layout, command, `r${++n}`, `after:${at}`));
  }
  return results;
}
