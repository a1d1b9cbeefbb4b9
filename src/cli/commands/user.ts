// `launcher user add|passwd|list|remove`: the users of a stick (src/auth/).
import type { Command } from 'commander';
import { PocketError, UsageError } from '../../errors.ts';
import type { StickLayout } from '../../stick/layout.ts';
import { assertWritable, openStick, resolveStickRoot } from '../../stick/stick-root.ts';
import { loginAtPrompt, PROMPT_ATTEMPTS, promptPassphrase, stdinLine } from '../login.ts';
import type { Output } from '../output.ts';
import { jsonOption, stickOption } from './options.ts';

interface UserCommandOptions {
  stick?: string;
  json?: boolean;
  passphraseStdin?: boolean;
  yes?: boolean;
}

/** A new passphrase: stdin line `index`, or typed twice at a terminal; a Buffer the caller zeroes. */
async function newPassphrase(out: Output, options: UserCommandOptions, index: number, name: string): Promise<Buffer> {
  const { checkPassphrasePolicy, PASSPHRASE_POLICY, samePassphrase } = await import('../../auth/passphrase.ts');
  if (options.passphraseStdin) return stdinLine(index, 'the new passphrase');
  // At a terminal a typo asks again, a few times, before the command ends.
  for (let attempt = 1; ; attempt++) {
    const first = await promptPassphrase(`new passphrase for ${name} (${PASSPHRASE_POLICY})`);
    let problem: string | undefined;
    try {
      checkPassphrasePolicy(first);
      const again = await promptPassphrase('the same passphrase again');
      if (!samePassphrase(again, first)) problem = 'the two passphrases differ';
      again.fill(0);
    } catch (error) {
      first.fill(0);
      if (!(error instanceof UsageError)) throw error;
      problem = error.message;
    }
    if (problem === undefined) return first;
    first.fill(0);
    if (attempt >= PROMPT_ATTEMPTS) throw new UsageError(`${problem}; nothing was changed`, PASSPHRASE_POLICY);
    out.notice(`${problem}; try again`);
  }
}

/**
 * A session of `name` (or one whose user is not known yet: still logging in)
 * has their personal disk open in QEMU: removing the user would delete it
 * under the guest, and what the guest writes afterwards would be lost.
 */
async function refuseWhileSessionRuns(layout: StickLayout, name: string): Promise<void> {
  const { describeHolder } = await import('../../stick/lock.ts');
  const { liveSessions } = await import('../../stick/session-locks.ts');
  // Any guest's session: several may run at once.
  const session = (await liveSessions(layout)).find(({ holder }) => (holder.user === undefined || holder.user === name) && holder.command !== 'init-stick');
  if (!session) return;
  const { holder } = session;
  throw new PocketError(
    'stickLocked',
    `${name}'s session is running (${describeHolder(holder)}): removing ${name} now would delete the disk it has open; nothing was removed`,
    {
      hint: 'stop that session first (launcher stop), then remove the user',
      details: { user: name, holder, lockPath: session.layout.lockFile },
    },
  );
}

const kdfText = (kdf: { memoryCost: number; timeCost: number; parallelism: number }) =>
  `argon2id m=${kdf.memoryCost} KiB t=${kdf.timeCost} p=${kdf.parallelism}`;

export function registerUser(program: Command, output: () => Output): void {
  const user = program.command('user').description("the stick's users: add, passwd, list, remove");

  const add = user.command('add').description('create a user with a passphrase and an encrypted personal disk key').argument('<name>');
  add.option('--passphrase-stdin', 'read the passphrase from the first line of stdin');
  stickOption(add);
  jsonOption(add);
  add.action(async (name: string, options: UserCommandOptions) => {
    const out = output();
    const layout = await openStick(resolveStickRoot(options.stick));
    await assertWritable(layout.root);
    const { addUser, checkUserName, userExists } = await import('../../auth/users.ts');
    checkUserName(name);
    if (await userExists(layout, name))
      throw new UsageError(`the user "${name}" already exists on this stick`, 'launcher user passwd NAME changes the passphrase');
    const passphrase = await newPassphrase(out, options, 0, name);
    let created: Awaited<ReturnType<typeof addUser>>;
    try {
      (await import('../../auth/passphrase.ts')).checkPassphrasePolicy(passphrase);
      out.info('calibrating argon2id to about 0.5 s on this machine');
      created = await addUser(layout, name, passphrase);
    } finally {
      passphrase.fill(0);
    }
    const { file, deriveMs } = created;
    out.data({ name, kdf: file.kdf, deriveMs: Math.round(deriveMs) });
    out.line(`created ${name} (${kdfText(file.kdf)}: ${(deriveMs / 1000).toFixed(2)} s); the personal disk is made on first launch`);
  });

  const passwd = user.command('passwd').description("change a user's passphrase (re-wraps the disk key; the disk is not rewritten)").argument('<name>');
  passwd.option('--passphrase-stdin', 'read the current passphrase and the new one from the first two lines of stdin');
  stickOption(passwd);
  jsonOption(passwd);
  passwd.action(async (name: string, options: UserCommandOptions) => {
    const out = output();
    const layout = await openStick(resolveStickRoot(options.stick));
    await assertWritable(layout.root);
    const { changePassphrase, userPaths } = await import('../../auth/users.ts');
    const { readUserFile } = await import('../../auth/user-file.ts');
    await readUserFile(userPaths(layout, name).file, name);
    // At a terminal the current passphrase is checked before the new one is asked for, and a typo asks again.
    let current: Buffer;
    if (options.passphraseStdin) current = await stdinLine(0, 'the current passphrase');
    else {
      const checked = await loginAtPrompt(out, layout, name, `current passphrase for ${name}`);
      checked.user.diskKey.fill(0);
      current = checked.passphrase;
    }
    let changed: Awaited<ReturnType<typeof changePassphrase>>;
    let next: Buffer | undefined;
    try {
      next = await newPassphrase(out, options, 1, name);
      changed = await changePassphrase(layout, name, current, next);
    } finally {
      current.fill(0);
      next?.fill(0);
    }
    const { file, deriveMs } = changed;
    out.data({ name, kdf: file.kdf, deriveMs: Math.round(deriveMs) });
    out.line(`changed the passphrase of ${name} (${kdfText(file.kdf)}); the personal disk keeps its key and its data`);
  });

  const list = user.command('list').description('the users on this stick and their personal disks');
  stickOption(list);
  jsonOption(list);
  list.action(async (options: UserCommandOptions) => {
    const out = output();
    const layout = await openStick(resolveStickRoot(options.stick));
    const { listUsers } = await import('../../auth/users.ts');
    const users = await listUsers(layout);
    out.data(users);
    if (users.length === 0) out.line('no users on this stick (launcher user add NAME creates one)');
    for (const u of users) {
      const disks = u.disks.map((d) => `${d.guest} ${(d.bytes / 2 ** 20).toFixed(1)} MiB`).join(', ') || 'no disk yet';
      out.line(`${u.name.padEnd(16)} ${u.problem ? `PROBLEM: ${u.problem}` : kdfText(u.kdf!)}  disks: ${disks}`);
    }
  });

  const remove = user
    .command('remove')
    .description('remove a user: destroys their wrapped disk key, so their personal disk can never be opened again')
    .argument('<name>')
    .option('--yes', 'do not ask for confirmation');
  stickOption(remove);
  jsonOption(remove);
  remove.action(async (name: string, options: UserCommandOptions) => {
    const out = output();
    const layout = await openStick(resolveStickRoot(options.stick));
    await assertWritable(layout.root);
    const { removeUser, userPaths } = await import('../../auth/users.ts');
    const paths = userPaths(layout, name);
    const { existsSync } = await import('node:fs');
    if (!existsSync(paths.dir)) {
      const { AuthError } = await import('../../errors.ts');
      throw new AuthError(`there is no user "${name}" on this stick`, {
        hint: 'launcher user list shows the users',
        details: { reason: 'unknown-user', user: name },
      });
    }
    await refuseWhileSessionRuns(layout, name);
    const warning = `removing ${name} destroys their wrapped disk key: their personal disks (${paths.disksDir}) become unrecoverable, whatever passphrase anyone knows`;
    if (!options.yes) {
      if (!process.stdin.isTTY) throw new UsageError(`${warning}; nothing was removed`, 'confirm with --yes');
      out.notice(warning);
      const { confirm } = await import('@inquirer/prompts');
      if (!(await confirm({ message: `remove ${name} and destroy their disk key?`, default: false }, { output: process.stderr }))) {
        out.line('nothing was removed');
        return;
      }
    } else {
      out.notice(warning);
    }
    // A passphrase remembered on this host for a user who is gone is useless.
    const keychain = await import('../../auth/keychain.ts');
    const { readUserFile } = await import('../../auth/user-file.ts');
    const account = await readUserFile(paths.file, name).then(keychain.keychainAccount, () => undefined);
    await removeUser(layout, name);
    if (account && !keychain.keychainAbsentReason()) await keychain.forgetPassphrase(account).catch(() => false);
    out.data({ removed: name });
    out.line(`removed ${name}; their disk key is destroyed`);
  });
}
