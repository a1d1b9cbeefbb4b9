// `launcher console NAME` (zones' `zlogin -C`): this terminal on the guest's
// serial console in any state where it exists — ready (QEMU held before its
// boot: the boot's first lines appear once `guest boot` lets it go), running,
// shutting down. First the console's recent history, then live; Ctrl-]
// detaches and the guest runs on. `launcher login NAME [-u USER]` (zones'
// `zlogin`): a shell inside through the agent, in running only (a ready guest
// has no agent yet: refused, "boot it first").
import { connect } from 'node:net';
import type { Command } from 'commander';
import { ExitCode, type ExitCodeName, PocketError, UsageError } from '../../errors.ts';
import type { GuestCommand } from '../../guests/guest-states.ts';
import { stickLayout, type StickLayout } from '../../stick/layout.ts';
import { isStale, readLock } from '../../stick/lock.ts';
import { guestSessionLayout } from '../../stick/session-locks.ts';
import { openStick, resolveStickRoot } from '../../stick/stick-root.ts';
import type { Output } from '../output.ts';
import { requireRight, signInOptions } from '../session-rights.ts';
import { jsonOption, stickOption } from './options.ts';

/** Ctrl-]: detaches from `launcher console` (in `run` it shuts the guest down; here the guest runs on). */
export const CONSOLE_DETACH_KEY = 0x1d;

interface ConsoleOptions {
  stick?: string;
  user?: string;
  passphraseStdin?: boolean;
  linger: string;
  json?: boolean;
}

/** The guest's state and the live session holding it; refusals exit 30 naming the state. */
async function reachable(layout: StickLayout, name: string, command: GuestCommand) {
  const [{ listGuests }, { requireState }] = await Promise.all([import('../../guests/guest-view.ts'), import('../../guests/guest-states.ts')]);
  const view = (await listGuests(layout, { repair: false })).find((guest) => guest.name === name);
  if (!view)
    throw new PocketError('guestState', `there is no guest named ${name} on ${layout.root}`, {
      hint: 'launcher guest list shows the guests',
      details: { reason: 'missing', guest: name },
    });
  requireState(command, name, view.state, view.reason);
  // Each guest's session holds its own lock (several may run: src/stick/session-locks.ts).
  const holder = await readLock(guestSessionLayout(layout, name));
  if (!holder || isStale(holder) || holder.guest !== name || !holder.control)
    throw new PocketError('noSession', `${name}'s session has no control channel yet`, { hint: 'try again in a moment' });
  return holder as typeof holder & { control: NonNullable<typeof holder.control> };
}

/** Signed in with the login right on `name` (checked before its state, so a refused user learns nothing), then its session. */
async function signedInto(out: Output, options: ConsoleOptions, name: string, command: 'console' | 'login') {
  const root = resolveStickRoot(options.stick);
  await openStick(root);
  const layout = stickLayout(root);
  await requireRight(out, layout, options, {
    guest: name,
    right: 'login',
    says: command,
    sessionUser: (await readLock(guestSessionLayout(layout, name)))?.user,
  });
  return { layout, holder: await reachable(layout, name, command) };
}

export function registerConsole(program: Command, output: () => Output): void {
  const command = program
    .command('console')
    .description("attach this terminal to a guest's serial console (ready, running, shutting down): history, then live; Ctrl-] detaches")
    .argument('<name>')
    .option('--linger <seconds>', 'when stdin is not a terminal: stay attached this long after its end', '2');
  stickOption(command);
  signInOptions(command);
  command.action(async (name: string, options: ConsoleOptions) => {
    const out = output();
    const linger = Number(options.linger);
    if (!Number.isFinite(linger) || linger < 0) throw new UsageError(`--linger ${options.linger} is not a number of seconds`);
    const { holder } = await signedInto(out, options, name, 'console');
    await attach(out, holder.control, name, linger);
  });

  const login = program
    .command('login')
    .description('a shell inside a running guest through its agent (as the session user, or -u root)')
    .argument('<name>')
    .option('-u, --login-user <user>', "whose shell: the session's user (default) or root");
  stickOption(login);
  signInOptions(login);
  jsonOption(login);
  login.action(async (name: string, options: ConsoleOptions & { loginUser?: string }) => {
    const out = output();
    const { layout, holder } = await signedInto(out, options, name, 'login');
    const asRoot = options.loginUser === 'root';
    if (options.loginUser !== undefined && !asRoot && options.loginUser !== holder.user)
      throw new UsageError(`-u ${options.loginUser}: a shell opens as the session's user (${holder.user ?? 'none'}) or root`, `launcher login ${name} -u root`);
    const { openRemoteExec } = await import('../../session/exec-client.ts');
    const write = (stream: NodeJS.WriteStream) => (data: Buffer) => stream.write(data) || true;
    const remote = await openRemoteExec(
      guestSessionLayout(layout, name),
      { path: '/bin/sh', args: ['-i'], ...(asRoot ? { root: true } : {}) },
      { stdout: write(process.stdout), stderr: write(process.stderr) },
    );
    if (process.stdin.isTTY) out.info(`a shell in ${name} as ${asRoot ? 'root' : (holder.user ?? 'the session user')}; exit or Ctrl-D ends it`);
    const stdin = process.stdin;
    stdin.on('data', (chunk: Buffer) => {
      if (!remote.write(chunk)) stdin.pause();
    });
    remote.onDrain(() => stdin.resume());
    stdin.once('end', () => remote.end());
    if (stdin.readableEnded) remote.end();
    const outcome = await remote.outcome;
    stdin.pause();
    process.exitCode = outcome.kind === 'exit' ? (outcome.signal ? 128 + outcome.signal : outcome.exitCode) : outcome.exitCode;
  });
}

/** The console stream: its first line is the session's answer, then raw bytes both ways. */
async function attach(out: Output, control: { path: string; token: string }, name: string, lingerSeconds: number): Promise<void> {
  const socket = connect(control.path);
  socket.on('connect', () => socket.write(`${JSON.stringify({ op: 'console-stream', token: control.token })}\n`));
  const stdin = process.stdin;
  const raw = stdin.isTTY === true;
  let answered = false;
  let pending = Buffer.alloc(0);
  await new Promise<void>((resolve, reject) => {
    const detach = () => {
      socket.end();
      resolve();
    };
    socket.on('data', (chunk: Buffer) => {
      if (answered) return void process.stdout.write(chunk);
      pending = Buffer.concat([pending, chunk]);
      const newline = pending.indexOf(0x0a);
      if (newline < 0) return;
      const answer = JSON.parse(pending.subarray(0, newline).toString('utf8')) as { ok: boolean; error?: { exit: string; message: string; hint?: string } };
      if (!answer.ok) {
        const exit = (answer.error!.exit in ExitCode ? answer.error!.exit : 'internal') as ExitCodeName;
        return reject(new PocketError(exit, answer.error!.message, answer.error!.hint ? { hint: answer.error!.hint } : {}));
      }
      answered = true;
      out.info(`attached to ${name}'s console; Ctrl-] detaches (the guest runs on)`);
      process.stdout.write(pending.subarray(newline + 1));
      if (raw) stdin.setRawMode(true);
      stdin.on('data', (input: Buffer) => {
        const escape = input.indexOf(CONSOLE_DETACH_KEY);
        if (escape >= 0) {
          if (escape > 0) socket.write(input.subarray(0, escape));
          return detach();
        }
        socket.write(input);
      });
      // A script's stdin: typed in, then the answer has a moment to show before detaching.
      stdin.once('end', () => setTimeout(detach, lingerSeconds * 1000));
      stdin.resume();
    });
    socket.on('error', reject);
    // The guest's console closed (QEMU ended): detached.
    socket.on('close', () => resolve());
  });
  if (raw) stdin.setRawMode(false);
  stdin.pause();
  out.info(`detached from ${name}'s console`);
}
