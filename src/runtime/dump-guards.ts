// What both entries (src/cli/main.ts from source, src/cli/executable.ts in
// the single executable) do first, before any key material exists: no core
// dump of the launcher or the QEMU it starts (no-core-dumps.ts), and the
// launcher not dumpable (not-dumpable.ts). Neither stops a launch; a process
// that stays dumpable says so in one line.
import { disableCoreDumps } from './no-core-dumps.ts';
import { forbidDumps } from './not-dumpable.ts';

export function guardAgainstDumps(): void {
  disableCoreDumps();
  const guard = forbidDumps();
  if (guard.problem) process.stderr.write(`pocketvm: note: the launcher could not make itself not dumpable (${guard.problem}); core dumps stay off\n`);
}
