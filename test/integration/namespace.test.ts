// The dyntable namespace from inside the real guest (9P over its own network card,
// mounted on /host): host files are read through FET entries, every change the
// guest makes lands on the stick and the host tree stays byte-identical
// (content, mode, mtime), also after a reboot; excluded files are invisible;
// escape attempts fail; a POSIX workload over the mount prints exactly what it
// prints on the guest's tmpfs. Two boots: everything, then "after a reboot".
//
// The host side is a temporary HOME (passed to the launcher in its
// environment) with XDG user directories, one renamed (Pictures → Bilder), a
// secret in ~/.ssh, a hard link to it and symlinks that point out of the tree.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, linkSync, mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeDir, snapshotTree, tempDir } from '../dyntable/helpers.ts';
import { NAMESPACE_MAC } from '../../src/session/namespace-channel.ts';
import { addStickUser, freshStick, launcher, loginArgs } from './harness.ts';

const USER = 'nina';
const PASSPHRASE = 'nina namespace passphrase';
const SECRET = 'HOST-SECRET-ssh-key-material';
const OUTSIDE = 'HOST-SECRET-outside-the-tree';
const workload = readFileSync(new URL('./namespace-workload.sh', import.meta.url), 'utf8');

/** Deterministic binary content (a few hundred KiB). */
function binary(size: number): Buffer {
  const out = Buffer.alloc(size);
  let x = 0x12345678;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

describe('the dyntable namespace in the real guest (/host over 9P)', function () {
  this.timeout(600_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let base: string;
  let home: string;
  let outside: string;
  let env: Record<string, string>;
  let hostBefore: ReturnType<typeof snapshotTree>;
  let outsideBefore: ReturnType<typeof snapshotTree>;
  const data = binary(300_000);

  const guest = async (script: string, options: { root?: boolean; args?: string[] } = {}) => {
    const result = await launcher(
      ['exec', '--stick', stick.root, ...(options.root ? ['--root'] : []), '--', 'sh', '-c', script, 'sh', ...(options.args ?? [])],
      { env },
    );
    return { code: result.exitCode, out: result.stdout, err: result.stderr };
  };
  const ok = async (script: string, options: { root?: boolean; args?: string[] } = {}) => {
    const result = await guest(script, options);
    assert.equal(result.code, 0, `guest: ${script}\n${result.out}\n${result.err}`);
    return result.out;
  };
  const boot = async () => {
    const started = await launcher(['run', '--detach', '--accel', 'tcg', '--stick', stick.root, ...loginArgs(USER)], { input: `${PASSPHRASE}\n`, env });
    assert.equal(started.exitCode, 0, started.stderr);
  };
  const assertHostUnchanged = () => {
    assert.deepEqual(snapshotTree(home), hostBefore, 'the host tree changed');
    assert.deepEqual(snapshotTree(outside), outsideBefore, 'the tree outside the namespace changed');
  };

  before(async () => {
    stick = await freshStick();
    base = tempDir('pocketvm-ns-it-');
    home = join(base, 'home');
    outside = join(base, 'outside');
    mkdirSync(join(home, '.config'), { recursive: true });
    // Pictures is localised: only user-dirs.dirs knows it is ~/Bilder.
    writeFileSync(
      join(home, '.config', 'user-dirs.dirs'),
      'XDG_DOCUMENTS_DIR="$HOME/Documents"\nXDG_PICTURES_DIR="$HOME/Bilder"\nXDG_DOWNLOAD_DIR="$HOME/Downloads"\n',
    );
    const docs = join(home, 'Documents');
    mkdirSync(join(docs, 'sub'), { recursive: true });
    mkdirSync(join(home, 'Bilder'));
    mkdirSync(join(home, 'Downloads'));
    mkdirSync(join(home, '.ssh'), { mode: 0o700 });
    mkdirSync(outside);
    writeFileSync(join(docs, 'notes.txt'), 'first line\n');
    writeFileSync(join(docs, 'script.sh'), '#!/bin/sh\necho run\n', { mode: 0o755 });
    writeFileSync(join(docs, 'old.txt'), 'from 2001\n');
    utimesSync(join(docs, 'old.txt'), new Date('2001-09-09T01:46:40Z'), new Date('2001-09-09T01:46:40Z'));
    writeFileSync(join(docs, 'sub', 'data.bin'), data);
    chmodSync(join(docs, 'sub', 'data.bin'), 0o600);
    writeFileSync(join(docs, 'to-rename.txt'), 'rename me\n');
    writeFileSync(join(docs, 'to-delete.txt'), 'delete me\n');
    writeFileSync(join(home, 'Bilder', 'photo.raw'), 'not really a photo\n');
    writeFileSync(join(home, '.ssh', 'id_ed25519'), `${SECRET}\n`, { mode: 0o600 });
    writeFileSync(join(outside, 'secret.txt'), `${OUTSIDE}\n`);
    // A hard link to the excluded key, and symlinks out of the tree (absolute and relative).
    linkSync(join(home, '.ssh', 'id_ed25519'), join(docs, 'innocent-looking'));
    symlinkSync(join(outside, 'secret.txt'), join(docs, 'abs-out'));
    symlinkSync('../../outside/secret.txt', join(docs, 'rel-out'));
    symlinkSync(join(home, '.ssh'), join(docs, 'ssh-dir'));
    env = { HOME: home, XDG_CONFIG_HOME: join(home, '.config'), NO_COLOR: '1' };

    await addStickUser(stick.root, USER, PASSPHRASE);
    // A read-only rule for the whole home: what is excluded stays invisible inside it.
    for (const [name, value] of [
      ['Table', 'FET'],
      ['GuestPath', '\\host\\home'],
      ['HostPath', '~'],
      ['Mode', 'readonly'],
    ] as const) {
      const set = await launcher(['reg', 'set', '--stick', stick.root, '--user', USER, 'Tables\\Rules\\Home', name, value], { env });
      assert.equal(set.exitCode, 0, set.stderr);
    }
    // A registry FET rule applies only once the person confirms it, with the passphrase.
    const confirmed = await launcher(['tables', 'confirm', 'Home', '--yes', '--passphrase-stdin', '--stick', stick.root, '--user', USER], {
      env,
      input: `${PASSPHRASE}\n`,
    });
    assert.equal(confirmed.exitCode, 0, confirmed.stderr);
    hostBefore = snapshotTree(home);
    outsideBefore = snapshotTree(outside);
    await boot();
  });

  after(async () => {
    await launcher(['stop', '--force', '--stick', stick.root], { env });
    await stick.dispose();
    removeDir(base);
  });

  it('mounts the namespace on /host with the known folders under their stable names', async () => {
    const mounts = await ok('grep " /host 9p " /proc/mounts');
    assert.match(mounts, /trans=pocketvm/);
    assert.match(mounts, /nosuid/);
    assert.deepEqual((await ok('ls /host')).trim().split('\n'), ['Documents', 'Downloads', 'Pictures', 'home']);
    assert.equal(await ok('cat /host/Pictures/photo.raw'), 'not really a photo\n');
  });

  it('reads host files through FET entries: content, mode and mtime', async () => {
    assert.equal(await ok('cat /host/Documents/notes.txt'), 'first line\n');
    assert.equal((await ok('sha256sum /host/Documents/sub/data.bin')).split(' ')[0], sha256(data));
    assert.equal(
      await ok('stat -c "%a %Y %s" /host/Documents/script.sh /host/Documents/old.txt /host/Documents/sub/data.bin'),
      `755 ${hostBefore.get('Documents/script.sh')!.mtimeNs / 1_000_000_000n} 19\n644 1000000000 10\n600 ${hostBefore.get('Documents/sub/data.bin')!.mtimeNs / 1_000_000_000n} 300000\n`,
    );
    assert.equal(await ok('/host/Documents/script.sh'), 'run\n');
    assert.equal(await ok('cat /host/home/Documents/notes.txt'), 'first line\n');
  });

  it('never shows excluded files, not even through a hard link or a symlink planted on the host', async () => {
    const listing = await ok('ls -a /host/home /host/Documents');
    assert.doesNotMatch(listing, /\.ssh|innocent-looking/);
    for (const path of ['/host/home/.ssh/id_ed25519', '/host/home/.ssh', '/host/Documents/innocent-looking']) {
      const attempt = await guest(`cat ${path} || ls ${path}`);
      assert.notEqual(attempt.code, 0, `${path} is visible: ${attempt.out}`);
    }
    // The planted symlink is shown as what it is; the guest resolves it in the guest.
    assert.equal((await ok('readlink /host/Documents/ssh-dir')).trim(), join(home, '.ssh'));
    const everything = await guest('cat /host/Documents/ssh-dir/id_ed25519 /host/home/Documents/innocent-looking; find /host -type f | xargs cat');
    assert.doesNotMatch(everything.out + everything.err, new RegExp(SECRET));
  });

  it('refuses escapes: .. past the root, symlinks out of the tree, hard links across the mount, the 9P card itself, a read-only entry', async () => {
    // .. past the mount root is the guest's own root, never the host's.
    assert.equal(await ok('cat /host/Documents/../../etc/hostname'), await ok('cat /etc/hostname'));
    assert.match(await ok('ls /host/..'), /^host$/m);
    // Symlinks planted on the host that point out of the tree (absolute, relative) do not reach it.
    for (const link of ['abs-out', 'rel-out']) {
      const read = await guest(`cat /host/Documents/${link}`);
      assert.notEqual(read.code, 0);
      assert.doesNotMatch(read.out, new RegExp(OUTSIDE));
    }
    // A symlink the guest creates to /etc: the server stores it and never follows it.
    await ok('ln -s /etc /host/Documents/etc-link && ln -s ../../../../../../../../etc/hostname /host/Documents/up-link');
    assert.equal(await ok('cat /host/Documents/etc-link/hostname'), await ok('cat /etc/hostname'));
    assert.equal(await ok('cat /host/Documents/up-link'), await ok('cat /etc/hostname'));
    assert.match(await ok('ls /host/Documents/etc-link/'), /^pocketvm$/m);
    // Hard links cannot cross into or out of the mount.
    assert.notEqual((await guest('ln /host/Documents/notes.txt /tmp/stolen')).code, 0);
    assert.notEqual((await guest('ln /etc/passwd /host/Documents/passwd', { root: true })).code, 0);
    // A device node made in the guest is no way to the host's devices (nodev).
    const node = await guest('mknod /host/Documents/devnull c 1 3 && head -c 1 /host/Documents/devnull', { root: true });
    assert.notEqual(node.code, 0);
    // The 9P card itself: no address any guest program could reach it by, and the user may not touch it.
    const card = `$(for d in /sys/class/net/*; do [ "$(cat $d/address)" = ${NAMESPACE_MAC} ] && echo \${d##*/}; done)`;
    assert.equal((await ok(`ip addr show dev ${card} | grep -c inet || true`)).trim(), '0');
    assert.notEqual((await guest(`ip link set dev ${card} down`)).code, 0);
    assert.notEqual((await guest(`ip addr add 10.9.9.9/24 dev ${card}`)).code, 0);
    // The read-only entry refuses every change.
    const refused = await guest('echo x >/host/home/new-file; echo $?; rm /host/home/Documents/notes.txt 2>&1; echo $?');
    assert.match(refused.out + refused.err, /Read-only file system/);
    assertHostUnchanged();
  });

  it('keeps every change in the guest while the host tree stays byte-identical', async () => {
    await ok(
      [
        'cd /host/Documents',
        'echo "second line" >>notes.txt',
        'mv to-rename.txt renamed.txt',
        'rm to-delete.txt',
        'chmod 0700 script.sh',
        'touch -d "2020-01-02 03:04:05" old.txt',
        'truncate -s 1000 sub/data.bin',
        'mkdir -p newdir/deeper && echo created >newdir/deeper/new.txt',
        'mv sub sub-moved',
      ].join(' && '),
    );
    assert.equal(await ok('cat /host/Documents/notes.txt'), 'first line\nsecond line\n');
    assert.equal(await ok('cat /host/Documents/renamed.txt'), 'rename me\n');
    assert.equal(await ok('stat -c "%a %s" /host/Documents/script.sh /host/Documents/sub-moved/data.bin'), '700 19\n600 1000\n');
    assert.equal(await ok('date -u -d @$(stat -c %Y /host/Documents/old.txt) +%Y'), '2020\n');
    assert.equal((await guest('ls /host/Documents/to-delete.txt /host/Documents/to-rename.txt /host/Documents/sub')).code === 0, false);
    assert.equal(await ok('cat /host/Documents/newdir/deeper/new.txt'), 'created\n');
    assertHostUnchanged();
  });

  it('runs a POSIX workload over the mount with the same results as on the guest tmpfs', async () => {
    const over9p = await guest(workload, { args: ['/host/Documents/workload'] });
    const onTmpfs = await guest(workload, { args: ['/tmp/workload'] });
    assert.equal(onTmpfs.code, 0, onTmpfs.err);
    assert.equal(over9p.code, 0, over9p.err);
    assert.ok(onTmpfs.out.includes('== done'), onTmpfs.out);
    assert.equal(over9p.out, onTmpfs.out);
    assertHostUnchanged();
  });

  it('after a reboot, still shows the guest its changes; the host is still unchanged', async () => {
    const stopped = await launcher(['stop', '--stick', stick.root], { env });
    assert.equal(stopped.exitCode, 0, stopped.stderr);
    assertHostUnchanged();
    await boot();
    assert.equal(
      await ok('cat /host/Documents/notes.txt /host/Documents/renamed.txt /host/Documents/newdir/deeper/new.txt'),
      'first line\nsecond line\nrename me\ncreated\n',
    );
    assert.equal(await ok('stat -c "%a %s" /host/Documents/script.sh /host/Documents/sub-moved/data.bin'), '700 19\n600 1000\n');
    assert.notEqual((await guest('ls /host/Documents/to-delete.txt')).code, 0);
    assert.equal((await ok('readlink /host/Documents/etc-link')).trim(), '/etc');
    assert.match(await ok('ls /host/Documents/workload'), /^numbers\.bin$/m);
    assert.equal(await ok('cat /host/Pictures/photo.raw'), 'not really a photo\n');
    assertHostUnchanged();
  });
});
