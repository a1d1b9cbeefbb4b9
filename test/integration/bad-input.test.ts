// Every failure a person can meet before the guest runs: one clear line, a
// documented exit code, and nothing on the stick damaged or left locked.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addStickUser, freshStick, launcher, launcherJson, loginArgs, qemuPidsFor } from './harness.ts';

function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.startsWith('pocketvm: error:'));
}

describe('bad input', function () {
  this.timeout(120_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let payloadDir: string;
  beforeEach(async () => {
    stick = await freshStick();
    payloadDir = join(stick.root, 'payload', 'default');
  });
  afterEach(() => stick.dispose());

  async function assertNotLocked(): Promise<void> {
    await assert.rejects(readFile(join(stick.root, 'run', 'lock.json')), /ENOENT/);
  }

  it('no QEMU: exit 3, one line saying how to install it', async () => {
    // A PATH with only what the launcher shim itself needs.
    const bin = await mkdtemp(join(tmpdir(), 'pocketvm-path-'));
    for (const tool of ['sh', 'uname', 'dirname']) await symlink(`/usr/bin/${tool}`, join(bin, tool)).catch(() => symlink(`/bin/${tool}`, join(bin, tool)));
    try {
      const result = await launcher(['run', '--detach', '--stick', stick.root], { env: { PATH: bin, NO_COLOR: '1' }, extendEnv: false });
      assert.equal(result.exitCode, 3, result.stderr);
      assert.equal(errorLines(result.stderr).length, 1);
      assert.match(result.stderr, /QEMU is not installed: qemu-system-x86_64 was not found \(install QEMU with `sudo apt-get install qemu-system-x86/);
      await assertNotLocked();
    } finally {
      await rm(bin, { recursive: true, force: true });
    }
  });

  it('a corrupt payload file: exit 4 naming the file; the file is left as it was', async () => {
    const initrd = join(payloadDir, 'initrd.img');
    const bytes = await readFile(initrd);
    bytes[1000] = bytes[1000]! ^ 0xff;
    await writeFile(initrd, bytes);
    const result = await launcher(['run', '--detach', '--stick', stick.root]);
    assert.equal(result.exitCode, 4, result.stderr);
    assert.equal(errorLines(result.stderr).length, 1);
    assert.match(result.stderr, new RegExp(`payload file ${initrd.replaceAll('/', '\\/')} is corrupt`));
    assert.deepEqual(await readFile(initrd), bytes);
    assert.deepEqual(await qemuPidsFor(stick.root), []);
    await assertNotLocked();
  });

  it('a missing payload file: exit 4', async () => {
    await rm(join(payloadDir, 'vmlinuz'));
    const result = await launcherJson<{ error: { code: number; kind: string; message: string } }>(['run', '--detach', '--stick', stick.root]);
    assert.equal(result.exitCode, 4);
    assert.equal(result.json.error.kind, 'payload');
    assert.match(result.json.error.message, /vmlinuz is missing/);
  });

  it('a manifest error: exit 4 naming the field', async () => {
    const manifestPath = join(payloadDir, 'guest.json');
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as { memory: { minimumMiB: unknown } };
    manifest.memory.minimumMiB = 'plenty';
    await writeFile(manifestPath, JSON.stringify(manifest));
    const result = await launcher(['run', '--detach', '--stick', stick.root]);
    assert.equal(result.exitCode, 4, result.stderr);
    assert.equal(errorLines(result.stderr).length, 1);
    assert.match(result.stderr, /guest\.json is invalid: memory\.minimumMiB: /);
    await assertNotLocked();
  });

  it("a QEMU crash: exit 6 with QEMU's last words and the log path on the stick", async () => {
    // A kernel QEMU cannot load, with a checksum that matches: QEMU itself fails.
    const garbage = Buffer.alloc(4096, 0x41);
    await writeFile(join(payloadDir, 'vmlinuz'), garbage);
    const sums = (await readFile(join(payloadDir, 'SHA256SUMS'), 'utf8')).replace(
      /^[0-9a-f]{64}(?=\s+\*?vmlinuz$)/m,
      createHash('sha256').update(garbage).digest('hex'),
    );
    await writeFile(join(payloadDir, 'SHA256SUMS'), sums);
    await addStickUser(stick.root, 'tester', 'bad input passphrase');
    const result = await launcher(['run', '--detach', '--stick', stick.root, '--accel', 'tcg', ...loginArgs('tester')], { input: 'bad input passphrase\n' });
    assert.equal(result.exitCode, 6, result.stderr);
    assert.equal(errorLines(result.stderr).length, 1);
    assert.match(result.stderr, /QEMU exited with code 1 during boot under tcg: qemu: .*kernel/i);
    assert.match(result.stderr, new RegExp(`QEMU's log: ${join(stick.root, 'run', 'default.qemu.log').replaceAll('/', '\\/')}`));
    assert.match(await readFile(join(stick.root, 'run', 'default.qemu.log'), 'utf8'), /kernel/i);
    await assertNotLocked();
  });

  it('a folder that is not a stick: exit 9', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'pocketvm-notastick-'));
    try {
      const result = await launcher(['run', '--detach', '--stick', empty]);
      assert.equal(result.exitCode, 9, result.stderr);
      assert.match(result.stderr, /is not a pocketvm stick/);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('init-stick refuses a non-empty folder that is not a stick, and changes nothing in it', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'pocketvm-full-'));
    try {
      await writeFile(join(folder, 'precious.txt'), 'mine');
      const result = await launcher(['init-stick', folder]);
      assert.equal(result.exitCode, 9, result.stderr);
      assert.equal(await readFile(join(folder, 'precious.txt'), 'utf8'), 'mine');
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });

  it('usage errors: exit 2', async () => {
    assert.equal((await launcher(['no-such-command'])).exitCode, 2);
    assert.equal((await launcher(['run', '--accel', 'warp'])).exitCode, 2);
    assert.equal((await launcher(['exec', '--stick', stick.root])).exitCode, 2);
  });

  it('--help and --version answer with exit 0', async () => {
    const help = await launcher(['--help']);
    assert.equal(help.exitCode, 0);
    for (const command of ['demo', 'run', 'exec', 'status', 'stop', 'init-stick']) {
      assert.match(help.stdout, new RegExp(`\\b${command}\\b`));
      const sub = await launcher([command, '--help']);
      assert.equal(sub.exitCode, 0, `${command} --help`);
      assert.match(sub.stdout, /Usage: launcher/);
    }
    const version = await launcher(['--version']);
    assert.equal(version.exitCode, 0);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
  });
});
