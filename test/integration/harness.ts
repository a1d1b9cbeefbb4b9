// Shared by the integration tests: the real `launcher` shim run as a person
// would run it, and sticks made from the one built payload.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type Options } from 'execa';
import { harvestApplianceState, seedApplianceState } from './shared-appliance-state.ts';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const launcherPath = join(repoRoot, 'launcher');

export interface LauncherResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function launcher(args: string[], options: Options = {}): Promise<LauncherResult> {
  const result = await execa(launcherPath, args, {
    reject: false,
    ...(options.input === undefined ? { stdin: 'ignore' as const } : {}),
    stripFinalNewline: false,
    env: { NO_COLOR: '1' },
    timeout: 180_000,
    ...options,
  });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

export async function launcherJson<T>(args: string[], options: Options = {}): Promise<{ exitCode: number; json: T; stderr: string }> {
  const result = await launcher([...args, '--json'], options);
  let json: T;
  try {
    json = JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`launcher ${args.join(' ')} printed no JSON (exit ${result.exitCode}):\n${result.stdout}\n${result.stderr}`);
  }
  return { exitCode: result.exitCode, json, stderr: result.stderr };
}

/**
 * A fresh stick with the built default payload on it, removed afterwards.
 * `savedAppliance`: with the helper appliance's state an earlier stick saved,
 * so its first appliance start resumes instead of booting
 * (shared-appliance-state.ts); for tests that use the appliance but are not
 * about its start. Every stick hands its own saved state on when it is removed.
 */
export async function freshStick(options: { savedAppliance?: boolean } = {}): Promise<{ root: string; dispose: () => Promise<void> }> {
  const parent = await mkdtemp(join(tmpdir(), 'pocketvm-it-'));
  const root = join(parent, 'stick');
  const made = await launcher(['init-stick', root]);
  if (made.exitCode !== 0) throw new Error(`init-stick failed: ${made.stderr}`);
  if (options.savedAppliance) await seedApplianceState(root);
  return {
    root,
    dispose: async () => {
      await harvestApplianceState(root);
      await rm(parent, { recursive: true, force: true });
    },
  };
}

/** The kernel version the payload build recorded, to compare with the guest's `uname -r`. */
export async function payloadKernelVersion(): Promise<string> {
  const lock = JSON.parse(await readFile(join(repoRoot, 'payload', 'payload.lock.json'), 'utf8')) as { packages: Array<{ name: string }> };
  const kernel = lock.packages.find((p) => /^linux-image-\d/.test(p.name));
  if (!kernel) throw new Error('no kernel package in payload.lock.json');
  return kernel.name.replace(/^linux-image-/, '');
}

export { processAlive } from '../../src/stick/lock.ts';

export async function waitUntil(condition: () => boolean, timeoutMs: number, stepMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return condition();
}

/** QEMU processes started from this stick (its payload path is on their command line). */
export async function qemuPidsFor(stickRoot: string): Promise<number[]> {
  const { stdout } = await execa('ps', ['-eo', 'pid=,args='], { reject: false });
  return String(stdout)
    .split('\n')
    .filter((line) => line.includes('qemu-system') && line.includes(stickRoot))
    .map((line) => Number(line.trim().split(/\s+/)[0]));
}

export const hostHasKvmDevice = existsSync('/dev/kvm');

/** Creates a stick user with `launcher user add` (the passphrase on stdin). */
export async function addStickUser(stickRoot: string, name: string, passphrase: string): Promise<void> {
  const made = await launcher(['user', 'add', name, '--passphrase-stdin', '--stick', stickRoot], { input: `${passphrase}\n` });
  if (made.exitCode !== 0) throw new Error(`user add ${name} failed: ${made.stderr}`);
}

/** `launcher run --detach` as `name`, the passphrase on stdin. */
export function loginArgs(name: string): string[] {
  return ['--user', name, '--passphrase-stdin'];
}
