#!/usr/bin/env node
// The launcher's entry. Kept tiny so that what runs before the command is
// parsed costs little: Node's compile cache is switched on first (in the
// checkout's .cache/, never the host's temp directory: nothing of pocketvm may
// stay on a host), then the program is loaded.
import { existsSync } from 'node:fs';
import module from 'node:module';
import { fileURLToPath } from 'node:url';

const checkoutCache = fileURLToPath(new URL('../../.cache/node-compile-cache', import.meta.url));
if (existsSync(fileURLToPath(new URL('../../build.js', import.meta.url)))) module.enableCompileCache?.(checkoutCache);

// Before any key material exists: no core dump of this process or of the QEMU it starts.
const { disableCoreDumps } = await import('../runtime/no-core-dumps.ts');
disableCoreDumps();
// Not dumpable either (Linux), or RLIMIT_CORE 0 from inside (macOS): through koffi; a launch goes on without it.
const { forbidDumps } = await import('../runtime/not-dumpable.ts');
const dumpGuard = forbidDumps();
if (dumpGuard.problem) process.stderr.write(`pocketvm: note: the launcher could not make itself not dumpable (${dumpGuard.problem}); core dumps stay off\n`);

const { drainStdio, quietWhenReaderCloses } = await import('./output.ts');
quietWhenReaderCloses();
const { main } = await import('./program.ts');
const code = await main(process.argv.slice(2));
process.exitCode = code;
// A finished command leaves now rather than waiting on stray handles, once
// its output has reached the reader; `run` and the background `session` live
// until their guest is gone.
if (!['run', 'session'].includes(process.argv[2] ?? '')) {
  await drainStdio();
  process.exit(code);
}
