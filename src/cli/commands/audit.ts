// `launcher audit`: run a whole session (login and boot, guest writes, eject)
// with every launcher process traced, and list every host path it wrote
// (src/audit/host-audit.ts). Exit 16 when any was written, when the private
// runtime directory outlived the session, or when the audit could not see
// the whole session.
import type { Command } from 'commander';
import { ExitCode, HostWritesError } from '../../errors.ts';
import { resolveStickRoot } from '../../stick/stick-root.ts';
import type { Output } from '../output.ts';
import { guestOption, jsonOption, stickOption } from './options.ts';

interface AuditFlags {
  stick?: string;
  guest: string;
  user?: string;
  passphraseStdin?: boolean;
  keepTrace?: boolean;
  json?: boolean;
}

export function registerAudit(program: Command, output: () => Output): void {
  const command = program
    .command('audit')
    .description('run a whole session (login, boot, guest writes, eject) under a trace and list every host path it wrote (exit 16 if any)')
    .option('--user <name>', "the user to log in as (default: the stick's only user)")
    .option('--passphrase-stdin', 'read the passphrase from the first line of stdin (for scripts)')
    .option('--keep-trace', 'keep the raw traces on the stick (run/audit-*/) instead of removing them');
  stickOption(command);
  guestOption(command);
  jsonOption(command);
  command.action(async (options: AuditFlags) => {
    const out = output();
    const stickRoot = resolveStickRoot(options.stick);
    const { runAudit } = await import('../../audit/host-audit.ts');
    const hasEject = program.commands.some((c) => c.name() === 'eject');
    const report = await runAudit({
      stickRoot,
      guest: options.guest,
      // Without --stick in a checkout, `run` logs in as the demo user by itself.
      loginArgs: [...(options.user ? ['--user', options.user] : []), ...(options.passphraseStdin ? ['--passphrase-stdin'] : [])],
      stdinToRun: true,
      endCommand: [hasEject ? 'eject' : 'stop', '--guest', options.guest],
      narrate: !out.json,
      ...(options.keepTrace ? { keepTrace: true } : {}),
      onStep: (message) => out.info(message),
    });
    out.data(report);
    out.line(`audit of a session on ${stickRoot} (${report.tracer}; ${report.tracedProcesses} processes: ${report.programs.join(', ')})`);
    for (const step of report.steps)
      out.line(
        `  ${step.step.padEnd(13)} ${step.exitCode === 0 ? 'ok' : `failed (exit ${step.exitCode})`}  ${(step.ms / 1000).toFixed(1)} s${step.error ? `  ${step.error}` : ''}`,
      );
    out.line(`  stick         ${report.stickWrites} paths written (allowed)`);
    for (const dir of report.runtime) out.line(`  runtime       ${dir.path}  ${dir.gone ? 'gone afterwards (allowed)' : 'STILL THERE'}`);
    for (const finding of report.allowed)
      out.line(`  ${finding.class.padEnd(13)} ${finding.path}  (${finding.ops.join(', ')} by ${finding.programs.join(', ')}; not a host file)`);
    out.line(`  keychain      ${report.keychain}`);
    for (const finding of report.hostWrites)
      out.line(
        `  HOST WRITE    ${finding.path}  (${finding.ops.join(', ')} by ${finding.programs.join(', ')}${finding.existsAfter ? '; still there' : '; gone afterwards'})`,
      );
    for (const leftover of report.leftoverProcesses) out.line(`  LEFT RUNNING  ${leftover.program ?? '?'} (pid ${leftover.pid})`);
    for (const reason of report.incomplete) out.line(`  INCOMPLETE    ${reason}`);
    if (report.ok) {
      out.line(`ok: ${report.summary}`);
      return;
    }
    // --json: the report is the output; the exit code says it failed.
    if (out.json) {
      process.exitCode = ExitCode.hostWrites;
      return;
    }
    throw new HostWritesError(report.summary, { details: { hostWrites: report.hostWrites.map((f) => f.path) } });
  });
}
