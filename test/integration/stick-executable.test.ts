// The built stick (`node build.js stick`) on a PC with neither Node.js nor
// QEMU: its own executable and QEMU bundle boot the real payload. The "bare
// PC" is a private mount namespace (unshare -m) in which every node and QEMU
// binary, QEMU's modules and firmware, and the checkout's node_modules are
// hidden, and PATH is reduced to /usr/bin:/bin. The stick is built once
// (linux-x64 only; the parts are cached in .cache/).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { DEMO_USER } from '../../src/cli/login.ts';
import { payloadKernelVersion, processAlive, qemuPidsFor, repoRoot, waitUntil } from './harness.ts';

interface Result {
  exitCode: number;
  stdout: string;
  stderr: string;
}

// Hidden in the bare-PC namespace: files get /dev/null (not executable),
// folders an empty tmpfs.
const HIDDEN_FILES = [
  '/usr/bin/qemu-*',
  '/usr/local/bin/qemu-*',
  '/usr/bin/node',
  '/usr/bin/nodejs',
  '/usr/bin/npm',
  '/usr/bin/npx',
  '/usr/local/bin/node',
  '/usr/local/bin/npm',
];
const HIDDEN_DIRS = [
  '/usr/lib/x86_64-linux-gnu/qemu',
  '/usr/share/qemu',
  '/usr/share/seabios',
  '/usr/lib/ipxe',
  '/usr/lib/node_modules',
  '/usr/share/nodejs',
  '/usr/local/lib/node_modules',
  join(repoRoot, 'node_modules'),
];

const canUnshare = spawnSync('unshare', ['-m', 'true']).status === 0;

function barePcScript(): string {
  return [
    'set -e',
    'mount --make-rprivate /',
    `for f in ${HIDDEN_FILES.join(' ')}; do if [ -e "$f" ]; then mount --bind /dev/null "$f"; fi; done`,
    ...HIDDEN_DIRS.map((d) => `if [ -d '${d}' ]; then mount -t tmpfs -o size=1m,mode=0755 none '${d}'; fi`),
    // The premise: nothing to run the launcher or a guest with but the stick.
    'for tool in node nodejs qemu-system-x86_64 qemu-img; do if PATH=/usr/bin:/bin command -v $tool >/dev/null 2>&1; then echo "bare-pc: $tool is still there" >&2; exit 97; fi; done',
    'exec env -i PATH=/usr/bin:/bin HOME=/root NO_COLOR=1 "$@"',
  ].join('\n');
}

/** Runs `command args` on the "bare PC", with `input` on its stdin. */
async function onBarePc(command: string, args: string[], input?: string): Promise<Result> {
  const stdin = input === undefined ? { stdin: 'ignore' as const } : { input };
  const result = await execa('unshare', ['-m', 'sh', '-c', barePcScript(), 'bare-pc', command, ...args], { reject: false, timeout: 240_000, ...stdin });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

async function flipByte(path: string, at: 'middle' | number): Promise<() => Promise<void>> {
  const file = await open(path, 'r+');
  const { size } = await file.stat();
  const offset = at === 'middle' ? Math.floor(size / 2) : at;
  const byte = Buffer.alloc(1);
  await file.read(byte, 0, 1, offset);
  await file.write(Buffer.from([byte[0]! ^ 0xff]), 0, 1, offset);
  await file.close();
  return async () => {
    const again = await open(path, 'r+');
    await again.write(byte, 0, 1, offset);
    await again.close();
  };
}

describe('the built stick on a PC without Node.js or QEMU', function () {
  this.timeout(300_000);
  let parent: string;
  let stick: string;
  let exe: string;
  let built: Result;

  before(async function () {
    parent = await mkdtemp(join(tmpdir(), 'pocketvm-stick-'));
    stick = join(parent, 'stick');
    exe = join(stick, '.pocketvm', 'bin', 'linux-x64', 'launcher');
    const result = await execa(process.execPath, [join(repoRoot, 'build.js'), 'stick', stick, '--platform', 'linux-x64'], { reject: false, timeout: 280_000 });
    built = { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
  });
  after(async () => {
    for (const pid of await qemuPidsFor(stick)) process.kill(pid, 'SIGKILL');
    await rm(parent, { recursive: true, force: true });
  });

  it('node build.js stick builds it, with every component and a manifest', async () => {
    assert.equal(built.exitCode, 0, built.stderr);
    assert.match(built.stdout, /executables [\d.]+ MiB \(linux-x64\), QEMU [\d.]+ MiB \(linux-x64\), payload [\d.]+ MiB/);
    const manifest = JSON.parse(await readFile(join(stick, '.pocketvm', 'manifest.json'), 'utf8')) as { files: Record<string, unknown> };
    for (const path of [
      'launcher',
      'launcher.cmd',
      '.pocketvm/bin/linux-x64/launcher',
      '.pocketvm/qemu/linux-x64/qemu-bundle.json',
      '.pocketvm/qemu/linux-x64/share/bios-256k.bin',
      'payload/default/initrd.img',
      'README.txt',
      // The console page and noVNC, served by the executable from the stick (src/console/asset-dirs.ts).
      '.pocketvm/console/page/index.html',
      '.pocketvm/console/page/page.js',
      '.pocketvm/console/novnc/core/rfb.js',
      '.pocketvm/console/novnc/vendor/pako/lib/zlib/inflate.js',
      '.pocketvm/console/novnc/LICENSE.txt',
    ]) {
      assert.ok(path in manifest.files, `${path} is in the manifest`);
    }
  });

  it('demo: the stick alone boots the payload kernel (its executable, its QEMU)', async function () {
    if (!canUnshare) this.skip();
    const result = await onBarePc(join(stick, 'launcher'), ['demo', '--stick', stick, '--accel', 'tcg', '--json']);
    assert.equal(result.exitCode, 0, result.stderr);
    const json = JSON.parse(result.stdout) as { facts: { kernel: string } };
    assert.equal(json.facts.kernel, await payloadKernelVersion());
    const qemuLog = await readFile(join(stick, 'run', 'default.qemu.log'), 'utf8');
    assert.ok(qemuLog.includes(join(stick, '.pocketvm', 'qemu', 'linux-x64', 'lib', 'ld-linux-x86-64.so.2')), 'QEMU ran from the stick through its own loader');
  });

  it('run --detach, exec -- uname -r, status, stop: the same, and nothing is left running', async function () {
    if (!canUnshare) this.skip();
    // The demo user (made by demo above, or here), logged in with --passphrase-stdin.
    const login = ['--user', DEMO_USER.user, '--passphrase-stdin'];
    if (!existsSync(join(stick, 'users', DEMO_USER.user))) {
      const added = await onBarePc(exe, ['user', 'add', DEMO_USER.user, '--passphrase-stdin'], `${DEMO_USER.passphrase}\n`);
      assert.equal(added.exitCode, 0, added.stderr);
    }
    const started = await onBarePc(exe, ['run', '--detach', '--accel', 'tcg', ...login, '--json'], `${DEMO_USER.passphrase}\n`);
    assert.equal(started.exitCode, 0, started.stderr);
    const status = JSON.parse(started.stdout) as { pid: number; qemuPid: number; stick: string };
    assert.equal(status.stick, stick, 'the executable finds its stick from its own path');
    try {
      // The executable guards itself as main.ts does (src/runtime/dump-guards.ts): no core dumps, and
      // koffi.node from beside it made it not dumpable (else a note); its QEMU gets the no-dump preload.
      assert.doesNotMatch(started.stderr, /not dumpable|QEMU runs dumpable/);
      assert.match(readFileSync(`/proc/${status.pid}/limits`, 'utf8'), /Max core file size\s+0\s+0\s+bytes/);
      assert.match(readFileSync(`/proc/${status.qemuPid}/cmdline`, 'utf8'), /\0--preload\0[^\0]*pocketvm-no-dump\.so\0/);
      const uname = await onBarePc(exe, ['exec', '--', 'uname', '-r']);
      assert.equal(uname.exitCode, 0, uname.stderr);
      assert.equal(uname.stdout.trim(), await payloadKernelVersion());
      const running = await onBarePc(exe, ['status']);
      assert.equal(running.exitCode, 0, running.stderr);
    } finally {
      const stopped = await onBarePc(exe, ['stop']);
      assert.equal(stopped.exitCode, 0, stopped.stderr);
    }
    assert.ok(await waitUntil(() => !processAlive(status.qemuPid) && !processAlive(status.pid), 10_000), 'QEMU and the session are gone');
  });

  it('verify: every file matches on a fresh stick', async () => {
    const result = await execa(exe, ['verify', '--json'], { reject: false });
    assert.equal(result.exitCode, 0, String(result.stderr));
    const json = JSON.parse(String(result.stdout)) as { ok: boolean; checkedFiles: number };
    assert.equal(json.ok, true);
    assert.ok(json.checkedFiles > 50);
  });

  it('a flipped byte in the payload: verify (exit 10) and run (exit 4) name the file', async () => {
    const restore = await flipByte(join(stick, 'payload', 'default', 'initrd.img'), 'middle');
    try {
      const verify = await execa(exe, ['verify', '--json'], { reject: false });
      assert.equal(verify.exitCode, 10, String(verify.stdout));
      const error = (JSON.parse(String(verify.stdout)) as { error: { problems: Array<{ path: string; problem: string }> } }).error;
      assert.deepEqual(
        error.problems.map((p) => `${p.problem} ${p.path}`),
        ['differs payload/default/initrd.img'],
      );
      const run = await execa(exe, ['run', '--accel', 'tcg'], { reject: false, stdin: 'ignore', env: { NO_COLOR: '1' } });
      assert.equal(run.exitCode, 4, String(run.stderr));
      const lines = String(run.stderr)
        .split('\n')
        .filter((l) => l.startsWith('pocketvm: error:'));
      assert.equal(lines.length, 1, String(run.stderr));
      assert.match(lines[0]!, /payload\/default\/initrd\.img/);
      assert.deepEqual(await qemuPidsFor(stick), [], 'no QEMU was started');
    } finally {
      await restore();
    }
  });

  it('a flipped byte in the executable: verify names it (exit 10)', async () => {
    const restore = await flipByte(exe, 'middle');
    try {
      // Run from the checkout: the damaged executable is the thing being checked.
      const verify = await execa(join(repoRoot, 'launcher'), ['verify', '--stick', stick], { reject: false, env: { NO_COLOR: '1' } });
      assert.equal(verify.exitCode, 10, String(verify.stderr));
      assert.match(String(verify.stdout), /differs\s+\.pocketvm\/bin\/linux-x64\/launcher/);
      assert.match(String(verify.stderr), /pocketvm: error: 1 of \d+ files .* \.pocketvm\/bin\/linux-x64\/launcher/);
    } finally {
      await restore();
    }
  });

  it('make-stick from the stick copies a stick that verifies', async () => {
    const copy = join(parent, 'copy');
    const made = await execa(exe, ['make-stick', copy, '--json'], { reject: false });
    assert.equal(made.exitCode, 0, String(made.stderr));
    const verify = await execa(join(copy, '.pocketvm', 'bin', 'linux-x64', 'launcher'), ['verify'], { reject: false });
    assert.equal(verify.exitCode, 0, String(verify.stderr));
    await rm(copy, { recursive: true, force: true });
  });
});
