// The build steps behind `node build.js <step>`, run under Node 24.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestTier } from './test-tiers.ts';

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
    process.stdout.write(
      'usage: node build.js payload [--force] [--guest NAME]\n\nBuilds payload/<guest>/vmlinuz and initrd.img from Debian packages (apt-get download).\n',
    );
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

async function image(args: string[]): Promise<number> {
  const guest = args.find((arg) => !arg.startsWith('-'));
  if (args.includes('--help') || !guest) {
    process.stdout.write(
      'usage: node build.js image <guest> [--force]\n\nBuilds payload/<guest>/: a read-only ext4 base image from images/<guest>/recipe.json, the kernel it boots with, its manifest (docs/images.md).\n',
    );
    return guest || args.includes('--help') ? 0 : 2;
  }
  const { buildImage } = await import('./image.ts');
  try {
    const result = await buildImage({ root, guest, force: args.includes('--force') });
    process.stdout.write(
      `image ${result.guest}: base ${result.sha256.slice(0, 12)}, ${(result.bytes / 1048576).toFixed(0)} MiB, ${result.cached ? 'up to date' : 'built'} in ${result.seconds.toFixed(1)} s\n`,
    );
    return 0;
  } catch (error) {
    process.stderr.write(`pocketvm: error: ${(error as Error).message}\n`);
    return 4;
  }
}

/**
 * The default payload, and every other guest this checkout has built, brought
 * up to date with the sources before a test run: the launcher builds a guest
 * only when it is missing (src/cli/bootstrap.ts), so after a pull the tests
 * would otherwise boot payloads built from older sources. Each is a stamp
 * check when nothing changed (about a second); payloads before the images
 * that boot with them.
 */
async function refreshBuiltGuests(): Promise<number> {
  const built = readdirSync(join(root, 'payload'), { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(root, 'payload', entry.name, 'SHA256SUMS')))
    .map((entry) => entry.name);
  const isImage = (guest: string) => existsSync(join(root, 'images', guest, 'recipe.json'));
  const payloads = ['default', ...built.filter((guest) => guest !== 'default' && !isImage(guest))];
  for (const guest of payloads) {
    const status = await payload(guest === 'default' ? [] : ['--guest', guest]);
    if (status !== 0) return status;
  }
  for (const guest of built.filter(isImage)) {
    const status = await image([guest]);
    if (status !== 0) return status;
  }
  return 0;
}

function typecheck(): number {
  return run(node, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', root]);
}

async function test(args: string[]): Promise<number> {
  if (args.includes('--help')) {
    process.stdout.write(`usage: node build.js test [--tier unit|integration] [mocha args | test files]

Type-checks, then runs the suite: the unit tier (no guest, no QEMU; about a
minute), then the integration tier (boots the payload, which is built first
when missing; the payloads and images already built are brought up to date). --tier runs one tier; naming test files runs just those.
`);
    return 0;
  }
  const { TEST_TIERS } = await import('./test-tiers.ts');
  const tierAt = args.indexOf('--tier');
  const tierName = tierAt >= 0 ? args[tierAt + 1] : undefined;
  if (tierAt >= 0 && !TEST_TIERS.some((tier) => tier === tierName)) {
    process.stderr.write(`pocketvm: --tier takes ${TEST_TIERS.join(' or ')}\n`);
    return 2;
  }
  const mochaArgs = tierAt >= 0 ? args.filter((_, i) => i !== tierAt && i !== tierAt + 1) : args;
  // Mocha adds a config file's `spec` to the files named on its command line
  // instead of replacing it, so which files run is decided here, not in .mocharc.json.
  const namesFiles = mochaArgs.some((arg) => arg.endsWith('.ts') || arg.startsWith('test/'));
  const tiers = namesFiles ? [] : tierName ? TEST_TIERS.filter((tier) => tier === tierName) : TEST_TIERS;
  const needsGuest = namesFiles || tiers.includes('integration');
  const payloadMissing = !existsSync(join(root, 'payload', 'default', 'SHA256SUMS'));
  if (needsGuest && payloadMissing) process.stderr.write('pocketvm: the guest payload is not built yet; building it first\n');
  // A whole tier brings every built guest up to date; a named test file only builds the missing payload.
  if ((needsGuest && payloadMissing) || tiers.includes('integration')) {
    const built = namesFiles ? await payload([]) : await refreshBuiltGuests();
    if (built !== 0) return built;
  }
  // The integration tier's slow fixtures (images, a corpus) build in the background from here on,
  // beside the type-check, the unit tier and the integration files that need none of them.
  const prefetch = tiers.includes('integration') ? await import('../test/images/fixture-prefetch.ts') : undefined;
  const builder = prefetch?.startFixturePrefetch(node);
  if (builder) process.stdout.write(`pocketvm: building the integration tier's images and corpus in the background (log: ${prefetch!.PREFETCH_LOG})\n`);
  try {
    return await typecheckAndRun(tiers, mochaArgs, needsGuest, namesFiles, prefetch?.orderForPrefetch);
  } finally {
    if (builder && builder.exitCode === null && builder.signalCode === null) builder.kill();
  }
}

async function typecheckAndRun(
  tiers: readonly TestTier[],
  mochaArgs: string[],
  needsGuest: boolean,
  namesFiles: boolean,
  order: (files: string[]) => string[] = (files) => files,
): Promise<number> {
  const { testFiles } = await import('./test-tiers.ts');
  const checked = typecheck();
  if (checked !== 0) return checked;
  // QEMU from the host's PATH is made not dumpable by this preload (src/vmm/qemu-binary.ts).
  if (needsGuest && process.platform === 'linux') {
    const { ensureCheckoutNoDumpPreload } = await import('./stick/no-dump-preload.ts');
    ensureCheckoutNoDumpPreload(root);
  }
  const mocha = join(root, 'node_modules', 'mocha', 'bin', 'mocha.js');
  if (namesFiles) return run(node, [mocha, ...mochaArgs]);
  // Both tiers run even when the first fails, so one run reports every failure.
  let status = 0;
  for (const tier of tiers) {
    process.stdout.write(`\npocketvm: the ${tier} tier\n`);
    // Unit test files share nothing (no guest, no stick lock), so they run in
    // parallel worker processes; guests boot one test at a time.
    const parallel = tier === 'unit' ? ['--parallel', '--jobs', String(Math.max(2, availableParallelism()))] : [];
    // The integration tier ends with each file's wall-clock time (the tier has CI's budget to keep).
    const reporter =
      tier === 'integration' && !mochaArgs.some((arg) => arg.startsWith('--reporter') || arg === '-R')
        ? ['--reporter', join(root, 'build', 'file-times-reporter.ts')]
        : [];
    const files = tier === 'integration' ? order(testFiles(root, tier)) : testFiles(root, tier);
    const result = run(node, [mocha, ...parallel, ...reporter, ...files, ...mochaArgs]);
    if (status === 0) status = result;
  }
  return status;
}

/** The linters (eslint, knip) and the formatter's check; `format` rewrites instead of checking. */
function lint(args: string[]): number {
  if (args.includes('--help')) {
    process.stdout.write('usage: node build.js lint\n\nRuns eslint (eslint.config.js), knip (knip.json: unused files and exports) and prettier --check.\n');
    return 0;
  }
  const tool = (path: string) => join(root, 'node_modules', ...path.split('/'));
  const steps: Array<[string, string[]]> = [
    ['eslint', [tool('eslint/bin/eslint.js'), 'src', 'test', 'bench', 'build', 'build.js']],
    ['knip', [tool('knip/bin/knip.js'), '--include', 'exports,types,files']],
    ['prettier', [tool('prettier/bin/prettier.cjs'), '--check', '--log-level', 'warn', 'src', 'test', 'bench', 'build', 'build.js']],
  ];
  let status = 0;
  for (const [name, command] of steps) {
    const result = run(node, command);
    if (result !== 0) process.stderr.write(`pocketvm: ${name} found problems (node build.js format fixes the formatting)\n`);
    if (status === 0) status = result;
  }
  return status;
}

function format(): number {
  return run(node, [
    join(root, 'node_modules', 'prettier', 'bin', 'prettier.cjs'),
    '--write',
    '--log-level',
    'warn',
    'src',
    'test',
    'bench',
    'build',
    'build.js',
  ]);
}

function bench(args: string[]): number {
  const [name, ...rest] = args;
  if (!name || name === '--help') {
    // Every script of bench/ that no other one imports; the imported ones are helpers.
    const files = readdirSync(join(root, 'bench')).filter((file) => file.endsWith('.ts'));
    const sources = files.map((file) => readFileSync(join(root, 'bench', file), 'utf8'));
    const names = files
      .filter((file) => !sources.some((source) => source.includes(`from './${file}'`)))
      .map((file) => file.slice(0, -3))
      .sort();
    process.stdout.write(`usage: node build.js bench <name> [options]\n\nbenchmarks: ${names.join(', ')}\n`);
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
    case 'image':
      return image(args);
    case 'typecheck':
      return typecheck();
    case 'test':
      return test(args);
    case 'lint':
      return lint(args);
    case 'format':
      return format();
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
