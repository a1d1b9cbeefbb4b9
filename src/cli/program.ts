// The launcher's command line. Parsing and presentation only: every command
// hands over to src/session, src/stick, src/vmm, and maps what they throw to
// one line and a documented exit code (docs/exit-codes.md).
import { Command, CommanderError } from 'commander';
import { asPocketError, ExitCode, UsageError } from '../errors.ts';
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
  // `files` and the appliance's own process load their command alone: a cold
  // `files cat IMG:PATH` starts two launchers, and each would otherwise load
  // every command's modules (about half a second each on this machine).
  if (argv[0] === 'files') (await import('./commands/files.ts')).registerFiles(program, current);
  else if (argv[0] === 'appliance') (await import('./commands/appliance.ts')).registerAppliance(program);
  else (await import('./all-commands.ts')).registerAll(program, current);
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
