// The launcher's command line. Parsing and presentation only: every command
// hands over to src/session, src/stick, src/vmm, and maps what they throw to
// one line and a documented exit code (docs/exit-codes.md).
import { Command, CommanderError } from 'commander';
import { asPocketError, ExitCode, UsageError } from '../errors.ts';
import { registerAppliance } from './commands/appliance.ts';
import { registerAudit } from './commands/audit.ts';
import { registerDemo } from './commands/demo.ts';
import { registerEject } from './commands/eject.ts';
import { registerExec } from './commands/exec.ts';
import { registerConsole } from './commands/console.ts';
import { registerFiles } from './commands/files.ts';
import { registerForget } from './commands/forget.ts';
import { registerImage } from './commands/image.ts';
import { registerGuest } from './commands/guest.ts';
import { registerInitStick } from './commands/init-stick.ts';
import { registerMakeStick } from './commands/make-stick.ts';
import { registerProbe } from './commands/probe.ts';
import { registerReg } from './commands/reg.ts';
import { registerRun } from './commands/run.ts';
import { registerSession } from './commands/session.ts';
import { registerStatus } from './commands/status.ts';
import { registerStop } from './commands/stop.ts';
import { registerUpgrade } from './commands/upgrade.ts';
import { registerUser } from './commands/user.ts';
import { registerTables } from './commands/tables.ts';
import { registerVerify } from './commands/verify.ts';
import { Output } from './output.ts';
import { VERSION } from './version.ts';

export async function main(argv: string[]): Promise<number> {
  const program = new Command('launcher')
    .description('pocketvm: your own computer on a USB stick, booted beside this one')
    .version(VERSION, '-V, --version')
    .showHelpAfterError('(launcher --help lists the commands)')
    .exitOverride();
  // --json anywhere on the line: an option or argument error is JSON on stdout
  // too, so a script reading stdout gets {"error": ...} instead of nothing.
  const end = argv.indexOf('--');
  const wantsJson = (end === -1 ? argv : argv.slice(0, end)).includes('--json');
  if (wantsJson) program.configureOutput({ writeErr: () => {}, outputError: () => {} });
  let output = new Output({ json: false });
  // Each command's --json decides how its result and its failure are printed.
  program.hook('preAction', (_root, action) => {
    output = new Output({ json: action.opts()['json'] === true });
  });
  const current = () => output;
  registerDemo(program, current);
  registerRun(program, current);
  registerExec(program, current);
  registerConsole(program, current);
  registerStatus(program, current);
  registerProbe(program, current);
  registerStop(program, current);
  registerEject(program, current);
  registerAudit(program, current);
  registerInitStick(program, current);
  registerMakeStick(program, current);
  registerVerify(program, current);
  registerTables(program, current);
  registerUser(program, current);
  registerForget(program, current);
  registerUpgrade(program, current);
  registerReg(program, current);
  registerGuest(program, current);
  registerFiles(program, current);
  registerImage(program, current);
  registerSession(program);
  registerAppliance(program);
  for (const command of program.commands) command.exitOverride();

  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here with code 0; parse errors were printed
      // (or, with --json, are printed now as the JSON error document).
      if (error.exitCode === 0) return 0;
      if (wantsJson)
        return new Output({ json: true }).failure(new UsageError(error.message.replace(/^error: /, ''), 'launcher COMMAND --help lists its options'));
      return ExitCode.usage;
    }
    // Ctrl-C at a prompt (@inquirer's ExitPromptError): the person chose to
    // stop; 130 as for any interrupt, and nothing to report.
    // (run --detach carries it from its login callback as an 'interrupted' PocketError.)
    const failure = asPocketError(error);
    if (failure.exit === 'interrupted' && failure.details['prompt'] === true) return ExitCode.interrupted;
    return output.failure(error);
  }
}
