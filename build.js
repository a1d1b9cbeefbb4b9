#!/usr/bin/env node
// Every build step of pocketvm, behind one entry: `node build.js <step>`.
//
// This file is plain JavaScript on purpose: on a fresh machine it is started by
// whatever Node the machine has (often older than 24, the project's runtime),
// installs the npm dependencies, which include Node 24 itself (npm package
// `node`), and then re-runs itself under that Node. The steps proper live in
// build/*.ts and only ever run under Node 24.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const node24 = join(root, 'node_modules', 'node', 'bin', 'node');

const usage = `usage: node build.js <step> [options]

steps:
  deps                 install npm dependencies (and Node 24) when missing or stale
  payload [--force]    build the guest payload (kernel + initramfs) from Debian packages
  typecheck            type-check the TypeScript sources (strict)
  test [mocha args]    deps + payload when missing, typecheck, then the mocha suite
  bench <name> [...]   run a benchmark from bench/ (boot, cold-start, auth)
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

function ensureDeps() {
  if (depsAreCurrent()) return;
  const command = existsSync(join(root, 'package-lock.json')) ? 'ci' : 'install';
  process.stderr.write(`pocketvm: installing npm dependencies (npm ${command}), Node 24 among them; npm's EBADENGINE warnings about the older Node running it are expected ...\n`);
  const result = spawnSync('npm', [command, '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (result.error || result.status !== 0) {
    process.stderr.write('pocketvm: npm could not install the dependencies; check that the npm registry is reachable and run `npm ci`\n');
    process.exit(result.status || 1);
  }
}

const [step, ...rest] = process.argv.slice(2);
if (!step || step === '--help' || step === '-h' || step === 'help') {
  process.stdout.write(`${usage}\n`);
  process.exit(step ? 0 : 2);
}

ensureDeps();
if (step === 'deps') process.exit(0);
if (Number(process.versions.node.split('.')[0]) < 24) {
  const result = spawnSync(node24, [fileURLToPath(import.meta.url), step, ...rest], { stdio: 'inherit' });
  if (result.signal) process.kill(process.pid, result.signal);
  process.exit(result.status ?? 1);
}

const { runStep } = await import('./build/steps.ts');
process.exitCode = await runStep(step, rest);
