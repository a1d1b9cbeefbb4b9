// `run --display page` (and a double-click: no terminal): the console page
// (src/console/) served for one launch. The page signs the person in (the
// same argon2id login as the terminal, src/auth/users.ts), shows the launch's
// progress, then the guest's screen and the controls, and its last state once
// the session is over. Also used by the detached session process, whose
// person signed in at the terminal: its page starts at the screen.
import { spawn } from 'node:child_process';
import type { UnlockedUser } from '../auth/users.ts';
import { AuthError, UsageError } from '../errors.ts';
import { ConsolePage, type PageControl } from '../console/page-server.ts';
import type { PagePhase } from '../console/page-state.ts';
import { currentPlatform } from '../platform/current.ts';
import { confirmOnPage, waitingOnPage } from './page-confirm.ts';
import type { Session } from '../session/session.ts';
import { flushStick } from '../stick/flush.ts';
import { stickLayout } from '../stick/layout.ts';
import type { Output } from './output.ts';

/** Set to 0 to never open a browser (tests, scripts); the address is printed either way. */
export const OPEN_PAGE_ENV = 'POCKETVM_OPEN_PAGE';

export interface ServedPage {
  page: ConsolePage;
  /** Resolves with the person once the page signed them in (only when the page asks). */
  signedIn: Promise<UnlockedUser>;
  /** The launch's narration, shown on the page while it starts. */
  narrate(message: string): void;
  /** QEMU listens on its VNC socket (the guest still booting): the page shows the screen while the launch goes on. */
  screen(vncSocket: string): void;
  /** The session is up: the page shows its screen and serves its controls. */
  attach(session: Session): void;
  /** The launch failed before the guest was ready. */
  failed(message: string): Promise<void>;
  /** The session is over: its last state on the page, then the page stops. */
  ended(session: Session): Promise<void>;
}

export async function servePage(
  out: Output,
  args: {
    stickRoot: string;
    signInOnPage: boolean;
    /** Where the address with its token is told (default: printed); never a log on the stick. */ tell?: (firstAddress: string) => void;
  },
): Promise<ServedPage> {
  const layout = stickLayout(args.stickRoot);
  const { listUsers, login } = await import('../auth/users.ts');
  const users = args.signInOnPage ? (await listUsers(layout)).map((user) => user.name) : [];
  let session: Session | undefined;
  let screenSocket: string | undefined;
  let ejected = false;
  let resolveSignIn!: (user: UnlockedUser) => void;
  const signedIn = new Promise<UnlockedUser>((resolve) => (resolveSignIn = resolve));
  const initial: PagePhase = args.signInOnPage ? { phase: 'sign-in', users } : { phase: 'starting', message: 'starting' };
  const page: ConsolePage = await ConsolePage.start(
    {
      signIn: async (name, passphrase) => {
        if (!users.includes(name)) throw new AuthError(`there is no user "${name}" on this stick`, { details: { reason: 'unknown-user' } });
        const user = await login(layout, name, passphrase);
        page.state.set({ phase: 'starting', message: `signed in as ${name}; starting the guest` });
        resolveSignIn(user);
      },
      control: async (action: PageControl) => {
        if (!session) throw new UsageError('the guest is not running yet');
        if (action === 'suspend') await session.suspend();
        else {
          ejected = action === 'eject';
          await session.stop();
        }
      },
      confirmRule: async (id, passphrase) => {
        if (!session) throw new UsageError('the guest is not running yet');
        return confirmOnPage(session, id, passphrase);
      },
      status: async () => {
        if (!session) return page.state.current;
        const waiting = await waitingOnPage(session);
        return { ...session.status(), pendingConfirmations: waiting.map((rule) => rule.text), waitingRules: waiting };
      },
      vncSocket: () => session?.vncSocket ?? screenSocket,
    },
    initial,
  );
  announce(out, page, args.tell);
  return {
    page,
    signedIn,
    narrate: (message) => {
      if (page.state.current.phase === 'starting') page.state.set({ phase: 'starting', message, ...(screenSocket ? { screen: true } : {}) });
    },
    screen: (vncSocket) => {
      screenSocket = vncSocket;
      const current = page.state.current;
      if (current.phase === 'starting') page.state.set({ ...current, screen: true });
    },
    attach: (running) => {
      session = running;
      running.page = { address: page.address };
      page.state.set({ phase: 'running', guest: running.guest, user: running.user ?? null, clipboard: true });
    },
    failed: (message) => page.close({ phase: 'ended', reason: 'failed', message }),
    ended: async (over) => page.close(await lastState(over, ejected, layout)),
  };
}

/** Prints the address (with its one-time token) and opens it in the host's browser where there is one. */
function announce(out: Output, page: ConsolePage, tell?: (firstAddress: string) => void): void {
  const address = page.access.firstAddress;
  if (tell) tell(address);
  else out.info(`the console page: ${address}`);
  if (process.env[OPEN_PAGE_ENV] === '0') return;
  const opener = currentPlatform().openBrowser(address, process.env);
  if (!opener) {
    out.notice(`no browser can be opened here: open ${address} in a browser on this computer`);
    return;
  }
  const child = spawn(opener.command, opener.args, { stdio: 'ignore', detached: true });
  child.on('error', () => out.notice(`could not open a browser (${opener.command}): open ${address} in a browser on this computer`));
  child.unref();
}

async function lastState(session: Session, ejected: boolean, layout: ReturnType<typeof stickLayout>): Promise<PagePhase> {
  if (session.removal) return { phase: 'ended', reason: 'removed', message: `${session.removal.message}. The next launcher run checks the disk.` };
  if (session.suspended)
    return {
      phase: 'ended',
      reason: 'suspended',
      message: `${session.guest} was saved to the stick; the next launcher run, on this PC or another, resumes it.`,
    };
  if (session.machine.state === 'crashed')
    return { phase: 'ended', reason: 'failed', message: `QEMU ended unexpectedly; its log: ${session.machine.logs.qemu}` };
  if (ejected) {
    await flushStick(layout).catch(() => {});
    return { phase: 'ended', reason: 'ejected', message: `${session.guest} has shut down and the stick is flushed: it is safe to remove it.` };
  }
  return { phase: 'ended', reason: 'stopped', message: `${session.guest} has shut down.` };
}
