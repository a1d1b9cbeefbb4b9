// The users of a stick: create, log in, change passphrase, list, remove.
// A user is users/<name>/user.json (user-file.ts) plus what is theirs beside
// it: the back-off state and the personal disks (users/<name>/disks/).
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AuthError, UsageError } from '../errors.ts';
import { LoginBackoff } from './backoff.ts';
import { newDiskKey, unwrapKey, UnwrapError, wrapKey } from './key-wrap.ts';
import { calibrate, checkPassphrasePolicy, deriveKek, KDF_POLICY, type KdfParams, meetsMinimum, type Passphrase, PASSPHRASE_POLICY } from './passphrase.ts';
import { readUserFile, sealUserFile, type UserFile, USER_FILE_FORMAT, USER_FILE_VERSION, USER_NAME_PATTERN, writeUserFile } from './user-file.ts';

export interface UserPaths {
  dir: string;
  file: string;
  backoff: string;
  disksDir: string;
}

export function checkUserName(name: string): void {
  if (!USER_NAME_PATTERN.test(name))
    throw new UsageError(`"${name}" is not a user name`, 'user names are 1 to 32 lower-case letters, digits, _ and -, starting with a letter or _');
}

/** Where the users live: the stick's users/ folder (StickLayout, src/stick/layout.ts, has it; auth does not depend on the rest of the layout). */
export interface UsersFolder {
  usersRoot: string;
}

export function userPaths(layout: UsersFolder, name: string): UserPaths {
  checkUserName(name);
  const dir = join(layout.usersRoot, name);
  return { dir, file: join(dir, 'user.json'), backoff: join(dir, 'backoff.json'), disksDir: join(dir, 'disks') };
}

/** The personal disk of `name` for `guest`. */
export function personalDiskPath(layout: UsersFolder, name: string, guest: string): string {
  return join(userPaths(layout, name).disksDir, `${guest}.qcow2`);
}

/** A logged-in user: the disk key lives here, in memory, and nowhere else. */
export interface UnlockedUser {
  name: string;
  id: string;
  diskKey: Buffer;
  kdf: KdfParams;
  /** How long the argon2id derivation took. */
  deriveMs: number;
  /** The stored parameters were below the current policy and were raised. */
  rehashed: boolean;
}

export interface KdfOptions {
  /** Fixed parameters instead of calibrating (tests, benchmarks). */
  params?: KdfParams;
}

/** Binds a wrapped key to its user: moved into another user.json it does not open. */
const associatedData = (file: Pick<UserFile, 'name' | 'id'>) => `pocketvm-user:${file.name}:${file.id}`;

async function kdfParams(options: KdfOptions): Promise<KdfParams> {
  if (options.params) return options.params;
  const { estimatedMs: _estimate, ...params } = await calibrate();
  return params;
}

async function sealed(
  base: Pick<UserFile, 'name' | 'id' | 'createdAt'>,
  diskKey: Buffer,
  passphrase: Passphrase,
  params: KdfParams,
): Promise<{ file: UserFile; deriveMs: number }> {
  const salt = randomBytes(16);
  const started = performance.now();
  const kek = await deriveKek(passphrase, salt, params);
  const deriveMs = performance.now() - started;
  const wrappedKey = wrapKey(diskKey, kek, associatedData(base));
  kek.fill(0);
  const file = sealUserFile({
    format: USER_FILE_FORMAT,
    version: USER_FILE_VERSION,
    name: base.name,
    id: base.id,
    createdAt: base.createdAt,
    updatedAt: new Date().toISOString(),
    kdf: { algorithm: 'argon2id', policy: KDF_POLICY, ...params, salt: salt.toString('base64') },
    wrappedKey: { algorithm: 'aes-256-gcm', ...wrappedKey },
  });
  return { file, deriveMs };
}

export async function addUser(
  layout: UsersFolder,
  name: string,
  passphrase: Passphrase,
  options: KdfOptions = {},
): Promise<{ file: UserFile; deriveMs: number }> {
  const paths = userPaths(layout, name);
  checkPassphrasePolicy(passphrase);
  if (existsSync(paths.file)) throw new UsageError(`the user "${name}" already exists on this stick`, 'launcher user passwd NAME changes the passphrase');
  const params = await kdfParams(options);
  const diskKey = newDiskKey();
  try {
    const result = await sealed({ name, id: randomUUID(), createdAt: new Date().toISOString() }, diskKey, passphrase, params);
    await mkdir(paths.disksDir, { recursive: true });
    await writeUserFile(paths.file, result.file);
    return result;
  } finally {
    diskKey.fill(0);
  }
}

/**
 * Passphrases are taken as Buffers (or public strings: src/auth/passphrase.ts)
 * and left as they are: the caller zeroes them, since a prompt may try the
 * same one again after a back-off and a login may remember it in the keychain.
 * Every copy made here (argon2's input) is zeroed once the key is derived.
 */

/**
 * Checks the passphrase and unwraps the disk key. Refuses while a back-off
 * is running; a failure lengthens it. A file under an older KDF policy is
 * re-wrapped with current parameters (the disk key itself never changes).
 */
export async function login(layout: UsersFolder, name: string, passphrase: Passphrase, options: KdfOptions = {}): Promise<UnlockedUser> {
  const paths = userPaths(layout, name);
  const file = await readUserFile(paths.file, name);
  if (passphrase.length === 0) throw new UsageError('the passphrase is empty', PASSPHRASE_POLICY);
  const backoff = new LoginBackoff(paths.backoff);
  const wait = await backoff.waitSeconds();
  if (wait > 0) {
    throw new AuthError(`too many failed logins for ${name}: the next attempt is allowed in ${wait} s`, {
      hint: 'wait, then try again',
      details: { reason: 'backoff', user: name, waitSeconds: wait },
    });
  }
  const { algorithm: _a, policy, salt, ...params } = file.kdf;
  const started = performance.now();
  const kek = await deriveKek(passphrase, Buffer.from(salt, 'base64'), params);
  const deriveMs = performance.now() - started;
  let diskKey: Buffer;
  try {
    diskKey = unwrapKey(file.wrappedKey, kek, associatedData(file));
  } catch (error) {
    if (!(error instanceof UnwrapError)) throw error;
    const { failures, waitSeconds } = await backoff.recordFailure();
    throw new AuthError(
      `wrong passphrase for ${name} (${failures} failed ${failures === 1 ? 'attempt' : 'attempts'} in a row); ${waitSeconds > 0 ? `the next attempt is allowed in ${waitSeconds} s` : 'you may try again now'}`,
      {
        hint: 'failed attempts slow down progressively: 0, 0, 2, 4, 8 … s',
        details: { reason: 'wrong-passphrase', user: name, failures, waitSeconds },
      },
    );
  } finally {
    kek.fill(0);
  }
  await backoff.reset();
  let rehashed = false;
  if (policy < KDF_POLICY || !meetsMinimum(params)) {
    const upgraded = await sealed(file, diskKey, passphrase, await kdfParams(options));
    await writeUserFile(paths.file, upgraded.file);
    rehashed = true;
  }
  return { name, id: file.id, diskKey, kdf: params, deriveMs, rehashed };
}

/** Re-wraps the same disk key under the new passphrase: the disk is not touched. */
export async function changePassphrase(
  layout: UsersFolder,
  name: string,
  oldPassphrase: Passphrase,
  newPassphrase: Passphrase,
  options: KdfOptions = {},
): Promise<{ file: UserFile; deriveMs: number }> {
  checkPassphrasePolicy(newPassphrase);
  const user = await login(layout, name, oldPassphrase, options);
  try {
    const file = await readUserFile(userPaths(layout, name).file, name);
    const result = await sealed(file, user.diskKey, newPassphrase, await kdfParams(options));
    await writeUserFile(userPaths(layout, name).file, result.file);
    return result;
  } finally {
    user.diskKey.fill(0);
  }
}

export interface UserSummary {
  name: string;
  /** Empty when user.json is fine; else why it is not. */
  problem?: string;
  kdf?: KdfParams & { policy: number };
  disks: Array<{ guest: string; path: string; bytes: number }>;
}

export async function listUsers(layout: UsersFolder): Promise<UserSummary[]> {
  let names: string[];
  try {
    names = (await readdir(layout.usersRoot, { withFileTypes: true }))
      .filter((e) => e.isDirectory() && USER_NAME_PATTERN.test(e.name))
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
  const users: UserSummary[] = [];
  for (const name of names) {
    const paths = userPaths(layout, name);
    if (!existsSync(paths.file)) continue;
    const disks: UserSummary['disks'] = [];
    for (const entry of await readdir(paths.disksDir).catch(() => [] as string[])) {
      if (!entry.endsWith('.qcow2')) continue;
      const path = join(paths.disksDir, entry);
      disks.push({ guest: entry.slice(0, -'.qcow2'.length), path, bytes: (await stat(path)).size });
    }
    try {
      const file = await readUserFile(paths.file, name);
      const { algorithm: _a, salt: _s, ...kdf } = file.kdf;
      users.push({ name, kdf, disks });
    } catch (error) {
      users.push({ name, problem: (error as Error).message, disks });
    }
  }
  return users;
}

export async function userExists(layout: UsersFolder, name: string): Promise<boolean> {
  return existsSync(userPaths(layout, name).file);
}

/**
 * Destroys the user's wrapped key (overwritten in place, then removed) and
 * everything of theirs: without the wrapped key the disk cannot be opened by
 * anyone, whatever passphrase they know.
 */
export async function removeUser(layout: UsersFolder, name: string): Promise<void> {
  const paths = userPaths(layout, name);
  if (!existsSync(paths.dir)) throw new AuthError(`there is no user "${name}" on this stick`, { details: { reason: 'unknown-user', user: name } });
  // A user.json that is not a file (a folder left by hand) has no key to overwrite.
  if ((await stat(paths.file).catch(() => undefined))?.isFile()) {
    const handle = await open(paths.file, 'r+');
    try {
      const { size } = await handle.stat();
      await handle.write(randomBytes(Math.max(size, 1)), 0, Math.max(size, 1), 0);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
  await rm(paths.dir, { recursive: true, force: true });
}
