// The build steps behind `node build.js <step>`, run under Node 24.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const node = process.execPath;

function run(command: string, args: string[]): number {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.error) {
    process.stderr.write(`pocketvm: could not run ${command}: ${result.error.message}\n`);
    return 1;
  }
  return result.status ?? 1;
}

async function payload(args: string[]): Promise<number> {
  if (args.includes('--help')) {
    process.stdout.write('usage: node build.js payload [--force] [--guest NAME]\n\nBuilds payload/<guest>/vmlinuz and initrd.img from Debian packages (apt-get download).\n');
    return 0;
  }
  const { buildPayload } = await import('./payload.ts');
  const guestIndex = args.indexOf('--guest');
  const guest = guestIndex >= 0 ? args[guestIndex + 1] : undefined;
  try {
    const result = await buildPayload({ root, force: args.includes('--force'), ...(guest ? { guest } : {}) });
    process.stdout.write(
      `payload ${result.guest}: kernel ${result.kernelVersion}, initrd ${(result.initrdBytes / 1048576).toFixed(1)} MiB, ${result.cached ? 'up to date' : 'built'} in ${result.seconds.toFixed(1)} s\n`,
    );
    return 0;
  } catch (error) {
    process.stderr.write(`pocketvm: error: ${(error as Error).message}\n`);
    return 4;
  }
}

function typecheck(): number {
  return run(node, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', root]);
}

async function test(args: string[]): Promise<number> {
  if (!existsSync(join(root, 'payload', 'default', 'SHA256SUMS'))) {
    process.stderr.write('pocketvm: the guest payload is not built yet; building it first\n');
    const built = await payload([]);
    if (built !== 0) return built;
  }
  const checked = typecheck();
  if (checked !== 0) return checked;
  // QEMU from the host's PATH is made not dumpable by this preload (src/vmm/qemu-binary.ts).
  if (process.platform === 'linux') {
    const { ensureCheckoutNoDumpPreload } = await import('./stick/no-dump-preload.ts');
    ensureCheckoutNoDumpPreload(root);
  }
  // The whole suite unless test files are named: mocha adds a config file's
  // `spec` to the files named on its command line instead of replacing it, so
  // the default lives here rather than in .mocharc.json.
  const namesFiles = args.some((arg) => arg.endsWith('.ts') || arg.startsWith('test/'));
  const spec = namesFiles ? [] : ['test/**/*.test.ts'];
  return run(node, [join(root, 'node_modules', 'mocha', 'bin', 'mocha.js'), ...spec, ...args]);
}

function bench(args: string[]): number {
  const [name, ...rest] = args;
  if (!name || name === '--help') {
    process.stdout.write('usage: node build.js bench <name> [options]\n\nbenchmarks: boot, cold-start, auth, suspend, registry, unplug, ninep, at-rest, quota, layout\n');
    return name ? 0 : 2;
  }
  const script = join(root, 'bench', `${name}.ts`);
  if (!existsSync(script)) {
    process.stderr.write(`pocketvm: no benchmark named ${name} in bench/\n`);
    return 2;
  }
  return run(node, [script, ...rest]);
}

export async function runStep(step: string, args: string[]): Promise<number> {
  switch (step) {
    case 'payload':
      return payload(args);
    case 'typecheck':
      return typecheck();
    case 'test':
      return test(args);
    case 'bench':
      return bench(args);
    case 'executables':
      return (await import('./stick/steps.ts')).executablesStep(root, args);
    case 'qemu':
      return (await import('./stick/steps.ts')).qemuStep(root, args);
    case 'stick':
      return (await import('./stick/steps.ts')).stickStep(root, args);
    default:
      process.stderr.write(`pocketvm: unknown build step "${step}" (node build.js --help lists them)\n`);
      return 2;
  }
}
