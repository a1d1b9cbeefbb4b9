// The hidden `appliance` command: the background process behind `launcher
// files` (src/appliance/appliance-daemon.ts). It boots the appliance, serves
// the stick's `files` commands and reports to its parent over IPC.
import type { Command } from 'commander';
import { asPocketError } from '../../errors.ts';
import { currentHostAdapter } from '../../hostprobe/current-host.ts';
import { type ApplianceMessage } from '../../appliance/appliance-client.ts';
import { ApplianceDaemon, serveAppliance } from '../../appliance/appliance-daemon.ts';
import { openGuestPayload } from '../../payload/guest-payload.ts';
import { openStick, resolveStickRoot } from '../../stick/stick-root.ts';
import { dirname, basename } from 'node:path';
import { stickOption } from './options.ts';

function tell(message: ApplianceMessage): void {
  if (process.connected) process.send?.(message);
}

export function registerAppliance(program: Command): void {
  const command = program
    .command('appliance', { hidden: true })
    .description('run the helper appliance in this process (started by launcher files)')
    .requiredOption('--payload <dir>', "the appliance payload's folder");
  stickOption(command);
  command.action(async (options: { stick?: string; payload: string }) => {
    for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
    const started = performance.now();
    const log = (message: string) => process.stderr.write(`${new Date().toISOString()} ${message}\n`);
    let daemon: ApplianceDaemon;
    let closed: Promise<void>;
    try {
      const layout = await openStick(resolveStickRoot(options.stick));
      const host = currentHostAdapter();
      const payload = await openGuestPayload(dirname(options.payload), basename(options.payload));
      daemon = await ApplianceDaemon.start(layout, payload, host, log);
      const { closed: whenClosed, ...address } = await serveAppliance(daemon, layout, host);
      closed = whenClosed;
      log(`appliance ready in ${Math.round(performance.now() - started)} ms on ${address.path}`);
      tell({ type: 'ready', address, bootMs: Math.round(performance.now() - started), start: daemon.start });
    } catch (error) {
      const failure = asPocketError(error);
      log(`appliance failed: ${failure.message}`);
      tell({ type: 'error', exit: failure.exit, message: failure.message, ...(failure.hint ? { hint: failure.hint } : {}) });
      process.exitCode = failure.exitCode;
      return;
    }
    const stop = () => void daemon.stop();
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, stop);
    await closed;
    log('appliance stopped');
    // The last reply (to stop) is on its way out; then nothing holds the process.
    setTimeout(() => process.exit(0), 200).unref();
  });
}
