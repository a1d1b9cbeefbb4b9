// The wrong folder, a read-only stick, a file where a folder belongs, a
// pseudo file system, a mistyped option under --json: each is one line and a
// documented exit code, never "internal error", and nothing is written
// anywhere until the folder is known to be a stick.
// Test tier: integration (runs the launcher as a process).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { addStickUser, freshStick, launcher, launcherJson } from '../integration/harness.ts';

/** Every path, type and content under `dir`: equal hashes mean nothing was written. */
async function treeHash(dir: string): Promise<string> {
  const hash = createHash('sha256');
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  for (const entry of entries.sort((a, b) => join(a.parentPath, a.name).localeCompare(join(b.parentPath, b.name)))) {
    const path = join(entry.parentPath, entry.name);
    hash.update(`${path}\0${entry.isDirectory() ? 'd' : 'f'}\0`);
    if (entry.isFile()) hash.update(await readFile(path));
  }
  return hash.digest('hex');
}

function oneErrorLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.split('\n').filter((line) => line.startsWith('pocketvm: error:'));
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(stderr, /internal error|this is a bug/);
}

describe('the wrong folder, a read-only stick, a typo', function () {
  this.timeout(180_000);
  let parent: string;
  let stick: Awaited<ReturnType<typeof freshStick>>;
  before(async () => {
    parent = await mkdtemp(join(tmpdir(), 'pocketvm-wrong-folder-'));
    stick = await freshStick();
    await addStickUser(stick.root, 'alice', 'alice passphrase');
  });
  after(async () => {
    await rm(parent, { recursive: true, force: true });
    await stick.dispose();
  });

  it('run --detach and audit with a mistyped --stick: exit 9, and the folder tree is unchanged (no run/session.log)', async () => {
    const typo = join(parent, 'typo');
    await mkdir(typo);
    await writeFile(join(typo, 'notes.txt'), 'mine');
    const before = await treeHash(parent);
    for (const target of [join(typo, 'stikc'), typo]) {
      const result = await launcher(['run', '--detach', '--stick', target]);
      assert.equal(result.exitCode, 9, result.stderr);
      oneErrorLine(result.stderr, /is not a pocketvm stick/);
    }
    const audit = await launcher(['audit', '--stick', join(typo, 'stikc')]);
    assert.equal(audit.exitCode, 9, audit.stderr);
    assert.equal(await treeHash(parent), before);
  });

  it('run --detach --stick /: exit 9, no /run/session.log on the host', async () => {
    const hostLog = '/run/session.log';
    const existed = existsSync(hostLog);
    const result = await launcher(['run', '--detach', '--stick', '/']);
    assert.equal(result.exitCode, 9, result.stderr);
    oneErrorLine(result.stderr, /\/ is not a pocketvm stick/);
    if (!existed) assert.equal(existsSync(hostLog), false, 'the launcher wrote /run/session.log on the host');
  });

  describe('a read-only stick (a read-only bind mount)', () => {
    let readOnly: string;
    let emptyReadOnly: string;
    before(async function () {
      if (process.getuid?.() !== 0) this.skip();
      readOnly = join(parent, 'ro-stick');
      emptyReadOnly = join(parent, 'ro-empty');
      await mkdir(join(parent, 'empty'));
      for (const [source, target] of [
        [stick.root, readOnly],
        [join(parent, 'empty'), emptyReadOnly],
      ] as const) {
        await mkdir(target);
        await execa('mount', ['--bind', source, target]);
        await execa('mount', ['-o', 'remount,bind,ro', target]);
      }
    });
    after(async () => {
      for (const target of [readOnly, emptyReadOnly]) if (target) await execa('umount', [target], { reject: false });
    });

    const readOnlyLine = /is on a read-only file system; nothing was changed/;
    it('run (attached and --detach): exit 9, one line, no "log on the stick"', async () => {
      for (const args of [
        ['run', '--detach', '--user', 'alice', '--passphrase-stdin'],
        ['run', '--user', 'alice', '--passphrase-stdin'],
      ]) {
        const result = await launcher([...args, '--stick', readOnly], { input: 'alice passphrase\n' });
        assert.equal(result.exitCode, 9, result.stderr);
        oneErrorLine(result.stderr, readOnlyLine);
        assert.doesNotMatch(result.stderr, /log on the stick/);
      }
    });

    it('user add, user remove: exit 9 before any prompt or derivation', async () => {
      const add = await launcher(['user', 'add', 'bob', '--passphrase-stdin', '--stick', readOnly], { input: 'bob passphrase\n' });
      assert.equal(add.exitCode, 9, add.stderr);
      oneErrorLine(add.stderr, readOnlyLine);
      const remove = await launcher(['user', 'remove', 'alice', '--yes', '--stick', readOnly]);
      assert.equal(remove.exitCode, 9, remove.stderr);
      oneErrorLine(remove.stderr, readOnlyLine);
    });

    it('init-stick on a read-only stick and on a read-only empty folder: exit 9', async () => {
      for (const target of [readOnly, emptyReadOnly, join(emptyReadOnly, 'new')]) {
        const result = await launcher(['init-stick', target]);
        assert.equal(result.exitCode, 9, `${target}: ${result.stderr}`);
        oneErrorLine(result.stderr, readOnlyLine);
      }
    });
  });

  it('a file where a folder is expected: status, stop, eject, verify --stick FILE and init-stick FILE exit 2 with one line', async () => {
    const file = join(parent, 'a-file');
    await writeFile(file, 'not a folder');
    for (const args of [
      ['status', '--stick', file],
      ['stop', '--stick', file],
      ['eject', '--stick', file],
      ['verify', '--stick', file],
      ['init-stick', file],
      ['init-stick', join(file, 'sub')],
    ]) {
      const result = await launcher(args);
      assert.equal(result.exitCode, 2, `${args.join(' ')}: ${result.stderr}`);
      oneErrorLine(result.stderr, /a file is where a folder was expected|is a file, not a folder/);
    }
    assert.equal(await readFile(file, 'utf8'), 'not a folder');
  });

  it('reg export into a folder that does not exist: exit 2 naming it', async () => {
    const target = join(parent, 'missing', 'out.reg');
    const result = await launcher(['reg', 'export', target, '--stick', stick.root]);
    assert.equal(result.exitCode, 2, result.stderr);
    oneErrorLine(result.stderr, /missing.* does not exist/);
  });

  it('init-stick in a pseudo file system (/proc, /sys): exit 2 at once', async () => {
    for (const target of ['/proc/pocketvm-stick', '/sys/pocketvm-stick']) {
      const result = await launcher(['init-stick', target], { timeout: 30_000 });
      assert.equal(result.exitCode, 2, `${target}: ${result.stderr}`);
      oneErrorLine(result.stderr, /pseudo file system/);
    }
  });

  it('--json: an unknown option or a missing argument is a JSON error on stdout, exit 2', async () => {
    for (const args of [['run', '--bogus'], ['user', 'add'], ['init-stick'], ['nosuch']]) {
      const result = await launcherJson<{ error: { code: number; kind: string; message: string } }>(args);
      assert.equal(result.exitCode, 2);
      assert.equal(result.json.error.code, 2);
      assert.equal(result.json.error.kind, 'usage');
      assert.match(result.json.error.message, /^(unknown option '--bogus'|missing required argument '(name|dir)'|unknown command 'nosuch')$/);
    }
    // Without --json, or with it only after `--`, the error stays text on stderr.
    const plain = await launcher(['exec', '--bogus', '--', 'echo', '--json']);
    assert.equal(plain.exitCode, 2);
    assert.equal(plain.stdout, '');
    assert.match(plain.stderr, /unknown option '--bogus'/);
  });
});
