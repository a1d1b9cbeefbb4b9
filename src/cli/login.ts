// Who is launching, and their passphrase: --user or the stick's only user (or
// a choice at a terminal); the passphrase from --passphrase-stdin, the host's
// keychain (only if it was remembered there), or a masked prompt. Then the
// real login (src/auth/users.ts): argon2id, back-off, the disk key unwrapped
// into memory. Nothing here starts QEMU; callers log in first.
import { type Command } from 'commander';
import { AuthError, UsageError } from '../errors.ts';
import type { Passphrase } from '../auth/passphrase.ts';
import type { UnlockedUser } from '../auth/users.ts';
import { type StickLayout, stickLayout } from '../stick/layout.ts';
import type { Output } from './output.ts';

export interface LoginFlags {
  user?: string;
  passphraseStdin?: boolean;
  rememberOnThisHost?: boolean;
}

export function loginOptions(command: Command): Command {
  return command
    .option('--user <name>', "the user to log in as (default: the stick's only user)")
    .option('--passphrase-stdin', 'read the passphrase from the first line of stdin (for scripts)')
    .option('--remember-on-this-host', "keep the passphrase in this host's keychain (off by default; launcher forget removes it)");
}

/** Tries at a terminal before a wrong passphrase ends the command. */
export const PROMPT_ATTEMPTS = 3;
/** A back-off longer than this is not waited out at the prompt: the command ends and says when to retry. */
const MAX_PROMPT_WAIT_S = 10;

let stdinLines: Promise<Array<Buffer | undefined>> | undefined;

/**
 * stdin's lines as Buffers (a trailing \r dropped), each in memory of its own;
 * `chunks` and their concatenation are zeroed: a passphrase read from stdin
 * is never a JavaScript string.
 */
export function splitStdinLines(chunks: Buffer[]): Buffer[] {
  const all = Buffer.alloc(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    chunk.copy(all, at);
    at += chunk.length;
    chunk.fill(0);
  }
  const lines: Buffer[] = [];
  let start = 0;
  for (;;) {
    const end = all.indexOf(0x0a, start);
    const stop = end < 0 ? all.length : end;
    const length = stop > start && all[stop - 1] === 0x0d ? stop - 1 - start : stop - start;
    const line = Buffer.alloc(length);
    all.copy(line, 0, start, start + length);
    lines.push(line);
    if (end < 0) break;
    start = end + 1;
  }
  all.fill(0);
  return lines;
}

/**
 * Line `index` of stdin (read to its end once): passphrases for scripts. The
 * Buffer is the caller's, who zeroes it after use; each line is handed out once.
 */
export async function stdinLine(index: number, what: string): Promise<Buffer> {
  stdinLines ??= (async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return splitStdinLines(chunks);
  })();
  const lines = await stdinLines;
  const line = lines[index];
  if (line === undefined || (line.length === 0 && index > 0 && lines.length <= index + 1))
    throw new UsageError(`--passphrase-stdin: stdin has no line ${index + 1} (${what})`);
  lines[index] = undefined;
  return line;
}

/**
 * A masked prompt at a terminal; a usage error where there is none. The answer
 * is turned into a Buffer (the caller's, zeroed after use) at once and the
 * string dropped; the prompt library's own copies of what was typed (its
 * string and line state) cannot be cleared from here.
 */
export async function promptPassphrase(message: string): Promise<Buffer> {
  if (!process.stdin.isTTY) throw new UsageError('no passphrase: there is no terminal to ask at', 'pass it on stdin with --passphrase-stdin');
  const { password } = await import('@inquirer/prompts');
  const { passphraseBytes } = await import('../auth/passphrase.ts');
  return passphraseBytes(await password({ message, mask: '*' }, { output: process.stderr }));
}

async function chooseUser(layout: StickLayout, flags: LoginFlags): Promise<string> {
  if (flags.user !== undefined) return flags.user;
  const { listUsers } = await import('../auth/users.ts');
  const names = (await listUsers(layout)).map((u) => u.name);
  if (names.length === 0)
    throw new AuthError('there are no users on this stick yet', { hint: 'create one with: launcher user add NAME', details: { reason: 'no-users' } });
  if (names.length === 1) return names[0]!;
  if (!process.stdin.isTTY || flags.passphraseStdin) throw new UsageError(`this stick has several users (${names.join(', ')}); say which with --user NAME`);
  const { select } = await import('@inquirer/prompts');
  return select({ message: 'user', choices: names.map((name) => ({ value: name })) }, { output: process.stderr });
}

/**
 * A login at a terminal's prompt: a typo asks again (up to PROMPT_ATTEMPTS
 * tries), waiting out a short back-off first; a longer one ends the command
 * with the time to wait.
 */
export async function loginAtPrompt(out: Output, layout: StickLayout, name: string, message: string): Promise<{ user: UnlockedUser; passphrase: Buffer }> {
  const { login } = await import('../auth/users.ts');
  const sleep = (seconds: number) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  for (let attempt = 1; ; attempt++) {
    const passphrase = await promptPassphrase(message);
    for (;;) {
      try {
        // The passphrase goes back to the caller (who zeroes it): passwd re-wraps with it, a launch may remember it.
        return { user: await login(layout, name, passphrase), passphrase };
      } catch (error) {
        const reason = error instanceof AuthError ? error.details['reason'] : undefined;
        const wait = reason === 'wrong-passphrase' || reason === 'backoff' ? Number((error as AuthError).details['waitSeconds']) : undefined;
        // Kept only to be tried again after a short back-off; otherwise done with.
        if (reason !== 'backoff' || wait === undefined || wait > MAX_PROMPT_WAIT_S) passphrase.fill(0);
        if (wait === undefined || wait > MAX_PROMPT_WAIT_S) throw error;
        if (reason === 'backoff') {
          // Earlier failures (another command's) still hold the back-off: the
          // passphrase just typed has not been tried yet, so wait and try it.
          out.notice(`too many failed logins for ${name}; trying in ${wait} s`);
          await sleep(wait);
          continue;
        }
        if (attempt >= PROMPT_ATTEMPTS) throw error;
        out.notice(`wrong passphrase for ${name}; try again${wait > 0 ? ` in ${wait} s` : ''}`);
        await sleep(wait);
        break;
      }
    }
  }
}

/**
 * The whole login, as run/demo/run --detach do it before any QEMU starts.
 * Every passphrase Buffer it reads (stdin, the keychain, the prompt) or is
 * handed (`fixed`) is zeroed before it returns or throws.
 */
export async function loginForLaunch(
  out: Output,
  stickRoot: string,
  flags: LoginFlags,
  fixed?: { user: string; passphrase: Passphrase },
): Promise<UnlockedUser> {
  const layout = stickLayout(stickRoot);
  const [{ login, userPaths }, { readUserFile }, keychain, { passphraseBytes }] = await Promise.all([
    import('../auth/users.ts'),
    import('../auth/user-file.ts'),
    import('../auth/keychain.ts'),
    import('../auth/passphrase.ts'),
  ]);
  let passphrase: Passphrase | undefined = fixed?.passphrase;
  try {
    const name = fixed?.user ?? (await chooseUser(layout, flags));
    const file = await readUserFile(userPaths(layout, name).file, name);
    const account = keychain.keychainAccount(file);
    let user: UnlockedUser | undefined;
    if (passphrase === undefined && flags.passphraseStdin) passphrase = await stdinLine(0, 'the passphrase');
    if (passphrase === undefined) {
      const remembered = await keychain.recallPassphrase(account);
      if (remembered !== undefined) {
        try {
          user = await login(layout, name, remembered);
          out.info(`logged in as ${name} with the passphrase remembered on this host`);
        } catch (error) {
          if (!(error instanceof AuthError) || error.details['reason'] !== 'wrong-passphrase') throw error;
          out.notice('the passphrase remembered on this host no longer works; forgetting it');
          await keychain.forgetPassphrase(account).catch(() => false);
        } finally {
          remembered.fill(0);
        }
      }
    }
    if (!user && passphrase === undefined) ({ user, passphrase } = await loginAtPrompt(out, layout, name, `passphrase for ${name}`));
    if (!user) {
      user = await login(layout, name, passphrase!);
    }
    if (passphrase !== undefined) {
      out.info(
        `logged in as ${name} (argon2id m=${user.kdf.memoryCost} KiB t=${user.kdf.timeCost} p=${user.kdf.parallelism}: ${(user.deriveMs / 1000).toFixed(2)} s)${user.rehashed ? '; its parameters were raised to the current policy' : ''}`,
      );
      if (flags.rememberOnThisHost) {
        const bytes = typeof passphrase === 'string' ? passphraseBytes(passphrase) : passphrase;
        try {
          await keychain.rememberPassphrase(account, bytes);
          out.info(`the passphrase for ${name} is remembered on this host (launcher forget --user ${name} removes it)`);
        } catch (error) {
          out.notice(`${(error as Error).message}: the passphrase was not remembered`);
        } finally {
          bytes.fill(0);
        }
      }
    }
    return user;
  } finally {
    if (Buffer.isBuffer(passphrase)) passphrase.fill(0);
  }
}

/** The demo stick's user: the passphrase is printed, it protects nothing real. */
export const DEMO_USER = { user: 'demo', passphrase: 'pocketvm-demo' } as const;

/** Creates the demo user on first use; says so, with its passphrase. */
export async function ensureDemoUser(out: Output, stickRoot: string): Promise<{ created: boolean }> {
  const { addUser, userExists } = await import('../auth/users.ts');
  const layout = stickLayout(stickRoot);
  if (await userExists(layout, DEMO_USER.user)) return { created: false };
  out.info(`creating the demo user "${DEMO_USER.user}" (passphrase: ${DEMO_USER.passphrase}) with its encrypted personal disk`);
  await addUser(layout, DEMO_USER.user, DEMO_USER.passphrase);
  return { created: true };
}
