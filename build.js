#!/usr/bin/env node
// Every build step of pocketvm, behind one entry: `node build.js <step>`.
//
// This file is plain JavaScript on purpose: on a fresh machine it is started by
// whatever Node the machine has (often older than 24, the project's runtime),
// installs the npm dependencies, which include Node 24 itself (npm package
// `node`), and then re-runs itself under that Node. The steps proper live in
// build/*.ts and only ever run under Node 24.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const node24 = join(root, 'node_modules', 'node', 'bin', 'node');

const usage = `usage: node build.js <step> [options]

steps:
  deps                 install npm dependencies (and Node 24) when missing or stale
  payload [--force]    build the guest payload (kernel + initramfs) from Debian packages
  image <guest> [--force]  an image guest's read-only base (images/<guest>/recipe.json; docs/images.md)
  typecheck            type-check the TypeScript sources (strict)
  test [--tier T] [mocha args]  deps (+ payload) when missing, typecheck, then the
                       unit tier and the integration tier (--tier unit|integration: one)
  lint                 eslint, knip (unused exports and files), prettier --check
  format               prettier --write over the sources
  bench <name> [...]   run a benchmark from bench/ (node build.js bench --help lists them)
  executables          the self-contained launcher per platform (.cache/executables/)
  qemu [--from-dir P=DIR]  the portable QEMU for Linux (and bundles made elsewhere)
  stick DIR            a complete stick: entries, executables, QEMU, payload, manifest

Options for every step: --help. NO_COLOR is respected.`;

function depsAreCurrent() {
  const installed = join(root, 'node_modules', '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  if (!existsSync(node24) || !existsSync(installed)) return false;
  return !existsSync(lock) || statSync(installed).mtimeMs >= statSync(lock).mtimeMs;
}

/**
 * npm's own output (on a fresh clone, about a hundred EBADENGINE warnings about
 * the older Node running it, which are expected) goes to a log in .cache/; the
 * person sees what pocketvm is doing, and on a failure the log's tail and path.
 */
function ensureDeps() {
  if (depsAreCurrent()) return;
  const command = existsSync(join(root, 'package-lock.json')) ? 'ci' : 'install';
  const log = join(root, '.cache', 'npm-install.log');
  mkdirSync(dirname(log), { recursive: true });
  process.stderr.write(
    `pocketvm: installing the npm dependencies, Node 24 among them (npm ${command}; npm's output goes to ${relative(process.cwd(), log) || log}) ...\n`,
  );
  const started = Date.now();
  const fd = openSync(log, 'w');
  let result;
  try {
    result = spawnSync('npm', [command, '--no-audit', '--no-fund'], { cwd: root, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  if (result.error || result.status !== 0) {
    const tail = readFileSync(log, 'utf8').trimEnd().split('\n').slice(-20).join('\n');
    if (tail) process.stderr.write(`${tail}\n`);
    const why = result.error ? `npm could not be started (${result.error.message})` : 'npm could not install the dependencies';
    process.stderr.write(`pocketvm: ${why}; its whole output is in ${log}; check that the npm registry is reachable and run \`npm ci\`\n`);
    process.exit(result.status || 1);
  }
  process.stderr.write(`pocketvm: npm dependencies installed in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
}

const [step, ...rest] = process.argv.slice(2);
if (!step || step === '--help' || step === '-h' || step === 'help') {
  process.stdout.write(`${usage}\n`);
  process.exit(step ? 0 : 2);
}

ensureDeps();
if (step === 'deps') process.exit(0);
// Every Node 24 process of a step (tsc, mocha and its workers, the launchers
// the tests start: thousands in a test run) keeps its compiled code in the
// checkout's compile cache, the one src/cli/main.ts uses (Node 20 ignores it).
process.env.NODE_COMPILE_CACHE ??= join(root, '.cache', 'node-compile-cache');
if (Number(process.versions.node.split('.')[0]) < 24) {
  const result = spawnSync(node24, [fileURLToPath(import.meta.url), step, ...rest], { stdio: 'inherit' });
  if (result.signal) process.kill(process.pid, result.signal);
  process.exit(result.status ?? 1);
}

const { runStep } = await import('./build/steps.ts');
process.exitCode = await runStep(step, rest);
