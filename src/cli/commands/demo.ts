// `launcher demo`: the whole journey on the embedded default guest, with no
// set-up: build what is missing, make ./demo-stick, boot, ask the guest about
// itself through the agent, shut it down, and summarise with timings. A
// graphical guest (`demo --guest desktop`) is shown instead, as `run
// --display page` shows it: the console page, signed in as the demo user,
// until the person shuts it down there (or Ctrl-C here).
import { type Command, Option } from 'commander';
import { DEMO_STICK_NAME, resolveStickRoot } from '../../stick/stick-root.ts';
import type { Accelerator } from '../../vmm/machine-spec.ts';
import { type Output, bold, green } from '../output.ts';
import { acceleratorOption, guestOption, jsonOption, stickOption } from './options.ts';

interface DemoOptions {
  stick?: string;
  guest: string;
  accel: Accelerator | 'auto';
  json?: boolean;
  display?: 'page' | 'none';
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** A guest whose commands get a DISPLAY (its manifest's execEnv) runs a graphical session: the demo shows it. */
async function graphicalGuest(stickRoot: string, guest: string): Promise<boolean> {
  const [{ loadManifest }, { stickLayout }, { join }] = await Promise.all([
    import('../../payload/guest-manifest.ts'),
    import('../../stick/layout.ts'),
    import('node:path'),
  ]);
  const manifest = await loadManifest(join(stickLayout(stickRoot).payloadRoot, guest));
  return manifest.execEnv?.['DISPLAY'] !== undefined;
}

export function registerDemo(program: Command, output: () => Output): void {
  const command = program.command('demo').description(`boot the embedded default guest on ./${DEMO_STICK_NAME}, show what it reports, shut it down`);
  stickOption(command);
  guestOption(command);
  acceleratorOption(command);
  jsonOption(command);
  command.addOption(
    new Option(
      '--display <mode>',
      "page: show the guest's screen on the console page until it is shut down there; none: ask the guest about itself and shut it down (default: page for a graphical guest, such as desktop, else none)",
    ).choices(['page', 'none']),
  );
  command.action(async (options: DemoOptions) => {
    const out = output();
    // Loaded on use: `--help` and `--version` should not pay for QEMU and schema code.
    const [{ ensureStickWithPayload }, { startSession, stopOnSignals }, { DEMO_USER, ensureDemoUser, loginForLaunch }] = await Promise.all([
      import('../bootstrap.ts'),
      import('../session-runner.ts'),
      import('../login.ts'),
    ]);
    const started = performance.now();
    const stickRoot = resolveStickRoot(options.stick);
    const [{ checkBeforeLaunch }, { currentHostAdapter }, { findQemu }] = await Promise.all([
      import('../../stick/stick-manifest.ts'),
      import('../../hostprobe/current-host.ts'),
      import('../../vmm/qemu-binary.ts'),
    ]);
    // No QEMU is said at once, before minutes of payload building.
    findQemu(currentHostAdapter(), stickRoot);
    await ensureStickWithPayload(out, stickRoot, options.guest);
    // A built stick: its launcher and payload must be what it was made with.
    await checkBeforeLaunch(stickRoot, options.guest, currentHostAdapter().platform);
    // The demo goes through the real login, as its own user.
    await ensureDemoUser(out, stickRoot);
    const setupMs = performance.now() - started;
    if ((options.display ?? ((await graphicalGuest(stickRoot, options.guest)) ? 'page' : 'none')) === 'page') {
      const { runWithPage } = await import('./run.ts');
      return runWithPage(out, {
        stickRoot,
        guest: options.guest,
        accel: options.accel,
        root: false,
        login: () => loginForLaunch(out, stickRoot, {}, DEMO_USER),
        settle: async () => {},
        signInOnPage: false,
      });
    }

    const session = await startSession(out, {
      stickRoot,
      guest: options.guest,
      accelerator: options.accel,
      command: 'demo',
      login: () => loginForLaunch(out, stickRoot, {}, DEMO_USER),
    });
    stopOnSignals(session, out);
    const factsStarted = performance.now();
    let facts;
    try {
      facts = await session.facts();
    } catch (error) {
      await session.stop();
      throw error;
    }
    const factsMs = performance.now() - factsStarted;
    out.info('shutting the guest down');
    const shutdown = await session.stop();
    const totalMs = performance.now() - started;
    const status = session.status();

    out.data({
      guest: session.guest,
      stick: stickRoot,
      user: session.user,
      accelerator: status.accelerator,
      memoryMiB: status.memoryMiB,
      cpus: status.cpus,
      facts,
      timings: { setupMs: Math.round(setupMs), ...session.timings, factsMs: Math.round(factsMs), shutdownMs: shutdown.ms, totalMs: Math.round(totalMs) },
      shutdown,
    });
    out.line();
    out.line(`${bold('pocketvm demo')}  ${green('ok')}  guest ${bold(session.guest)} on ${stickRoot}`);
    out.line();
    out.line(`  guest kernel     ${facts.kernel}`);
    out.line(`  guest uptime     ${facts.uptimeSeconds.toFixed(1)} s`);
    out.line(`  guest memory     ${Math.round(facts.memTotalKiB / 1024)} MiB total, ${Math.round(facts.memAvailableKiB / 1024)} MiB available`);
    out.line(`  guest CPUs       ${facts.cpus}`);
    out.line(`  guest hostname   ${facts.hostname}`);
    out.line(`  user             ${DEMO_USER.user}  (passphrase ${DEMO_USER.passphrase}; home on an encrypted disk)`);
    out.line(`  accelerator      ${status.accelerator}${session.acceleratorNotes.length ? `  (${session.acceleratorNotes.join('; ')})` : ''}`);
    out.line();
    out.line(`  set-up           ${seconds(setupMs)}`);
    out.line(`  stick + payload  ${seconds(session.timings.preparedMs)}`);
    out.line(`  QMP up           ${seconds(session.timings.boot.qmpMs)}  (QEMU started paused)`);
    out.line(`  first console    ${seconds(session.timings.boot.signOfLifeMs)}`);
    out.line(`  agent ready      ${seconds(session.timings.boot.readyMs)}`);
    out.line(`  launch to ready  ${seconds(session.timings.readyMs)}`);
    out.line(`  guest facts      ${seconds(factsMs)}`);
    out.line(`  shutdown         ${seconds(shutdown.ms)}  (ended by: ${shutdown.step})`);
    out.line(`  total            ${seconds(totalMs)}`);
    out.line();
    out.line(`  logs: ${status.logs.console}`);
    out.line(`        ${status.logs.qemu}`);
  });
}
