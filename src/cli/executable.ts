// The entry of the self-contained executable (build/executables.ts bundles
// it into one CommonJS script for Node's single-executable support). Like
// main.ts, minus what only a checkout has: no top-level await (CommonJS), and
// no compile cache, since the executable carries its own code cache and must
// write nothing on the host.
import { guardAgainstDumps } from '../runtime/dump-guards.ts';
import { drainStdio, quietWhenReaderCloses } from './output.ts';
import { main } from './program.ts';

// Before any key material exists, as main.ts: no core dumps, not dumpable.
guardAgainstDumps();

// The host's compile-cache setting is not for us (the executable carries its
// own code cache): the detached session must not inherit it either. Node has
// already created the host's NODE_COMPILE_CACHE folder, if the host set one,
// before this line runs; nothing is written into it.
delete process.env['NODE_COMPILE_CACHE'];
process.env['NODE_DISABLE_COMPILE_CACHE'] = '1';

quietWhenReaderCloses();
void main(process.argv.slice(2)).then(async (code) => {
  process.exitCode = code;
  // A finished command leaves now, once its output has reached the reader;
  // `run` and the background `session` live until their guest is gone.
  if (!['run', 'session'].includes(process.argv[2] ?? '')) {
    await drainStdio();
    process.exit(code);
  }
});
