// `launcher verify`: every file of a built stick against its manifest
// (.pocketvm/manifest.json); names each one that is missing or differs and
// exits 10 when any does.
import type { Command } from 'commander';
import { StickTamperedError } from '../../errors.ts';
import { resolveStickRoot } from '../../stick/stick-root.ts';
import type { Output } from '../output.ts';
import { jsonOption, stickOption } from './options.ts';

export function registerVerify(program: Command, output: () => Output): void {
  const command = program.command('verify').description('check every file of the stick against its manifest (exit 10 when any is missing or differs)');
  stickOption(command);
  jsonOption(command);
  command.action(async (options: { stick?: string }) => {
    const out = output();
    const [{ verifyStick }, { progressRenderer }] = await Promise.all([import('../../stick/stick-manifest.ts'), import('../progress.ts')]);
    const root = resolveStickRoot(options.stick);
    const progress = progressRenderer(out);
    let result;
    try {
      result = await verifyStick(root, progress.onProgress);
    } finally {
      progress.finish();
    }
    const ok = result.problems.length === 0;
    if (!ok) {
      for (const problem of result.problems) out.line(`${problem.problem.padEnd(8)} ${problem.path}`);
      // With --json the problems are in the error document.
      throw new StickTamperedError(
        `${result.problems.length} of ${result.checkedFiles} files on ${root} do not match the manifest: ${result.problems.map((p) => p.path).join(', ')}`,
        {
          hint: 'copy a complete stick again (launcher make-stick DIR from a good stick)',
          details: { stick: root, checkedFiles: result.checkedFiles, problems: result.problems },
        },
      );
    }
    out.data({ stick: root, ok, version: result.version, checkedFiles: result.checkedFiles, checkedBytes: result.checkedBytes, problems: [] });
    out.line(
      `ok: all ${result.checkedFiles} files of ${root} match the manifest (pocketvm ${result.version}, ${(result.checkedBytes / 1048576).toFixed(1)} MiB)`,
    );
  });
}
