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
// Not dumpable either (src/runtime/dump-guards.ts).
const { guardAgainstDumps } = await import('../runtime/dump-guards.ts');
guardAgainstDumps();

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
