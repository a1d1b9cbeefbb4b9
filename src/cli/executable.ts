// The entry of the self-contained executable (build/executables.ts bundles
// it into one CommonJS script for Node's single-executable support). Like
// main.ts, minus what only a checkout has: no top-level await (CommonJS), and
// no compile cache, since the executable carries its own code cache and must
// write nothing on the host.
import { main } from './program.ts';

// The host's compile-cache setting is not for us (the executable carries its
// own code cache): the detached session must not inherit it either. Node has
// already created the host's NODE_COMPILE_CACHE folder, if the host set one,
// before this line runs; nothing is written into it.
delete process.env['NODE_COMPILE_CACHE'];
process.env['NODE_DISABLE_COMPILE_CACHE'] = '1';

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // A finished command leaves now; `run` and the background `session` live
  // until their guest is gone.
  if (!['run', 'session'].includes(process.argv[2] ?? '')) process.exit(code);
});
