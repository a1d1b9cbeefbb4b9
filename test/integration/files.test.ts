// `launcher files` on a corpus made with the real tools (test/files/corpus.ts):
// ext4 (GPT; raw, qcow2, vmdk), btrfs, xfs (MBR), FAT32 (MBR), exFAT, NTFS
// and F2FS, all open at once in one helper appliance, every file read back by
// hash through `files cat` and `files get`, xattrs through `files stat` (and
// set on `files get`'s copy); read-only sources left
// byte-identical; then written with --rw (mkdir, put from a file and from
// stdin, rm), closed, checked clean by each file system's own fsck in a
// fresh appliance, and read back; a hibernated NTFS refused read-write.
// `files share`: every file read back by hash through the WebDAV share
// (curl) and the SMB share (smbclient), a wrong password refused, nothing
// listening on anything but 127.0.0.1; with --rw, files written through both
// and checked by the fsck above, owned by the person running the launcher.
// LUKS2 (a passphrase on stdin; a wrong one, none), and an LVM volume group
// (xfs; LUKS1 inside) and an md RAID1 made by lvm and mdadm inside the same
// appliance, each volume read back by hash, written with --rw and checked.
// Two appliance starts for the whole file, both resumed from a saved state
// (the first from the one an earlier test file saved: shared-appliance-state.ts;
// a boot when run alone).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { applianceShell } from '../files/appliance-shell.ts';
import {
  type CorpusFile,
  type CorpusImage,
  type CorpusXattr,
  LONG_NAME,
  LUKS_PASSPHRASE,
  makeCorpus,
  makeStackImage,
  STACK_VOLUMES,
  stackScript,
  UNICODE_NAME,
} from '../files/corpus.ts';
import { type ShareLogin, davGet, davPut, smb, smbGet } from '../files/share-clients.ts';
import type { FileEntry, NewShare, OpenSource } from '../../src/appliance/appliance-protocol.ts';
import { applianceExec, findAppliance } from '../../src/appliance/appliance-client.ts';
import { openStick } from '../../src/stick/stick-root.ts';
import { freshStick, launcher, launcherJson, repoRoot } from './harness.ts';

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const fileSha = (path: string) => sha(readFileSync(path));

describe('launcher files: the helper appliance on a real corpus', function () {
  this.timeout(1_800_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let dir: string;
  let corpus: CorpusImage[];
  let stack: Awaited<ReturnType<typeof makeStackImage>>;
  const names = new Map<string, string>();
  const hashesBefore = new Map<string, string>();
  const files = (args: string[], options: Parameters<typeof launcher>[1] = {}) =>
    launcher(['files', ...args, '--stick', stick.root], { timeout: 600_000, ...options });
  const filesJson = <T>(args: string[], input?: string) =>
    launcherJson<T>(['files', ...args, '--stick', stick.root], { timeout: 600_000, ...(input === undefined ? {} : { input }) });
  /** files open|check's arguments and stdin for an image that may need a passphrase. */
  const unlock = (img: { passphrase?: string }) => (img.passphrase ? { args: ['--passphrase-stdin'], input: `${img.passphrase}\n` } : { args: [] });
  const image = (label: string) => corpus.find((i) => i.label === label)!;
  /** `files cat` as bytes. */
  const catBytes = async (spec: string): Promise<Buffer> => {
    const cat = await execa(join(repoRoot, 'launcher'), ['files', 'cat', spec, '--stick', stick.root], {
      encoding: 'buffer',
      stripFinalNewline: false,
      reject: false,
      env: { NO_COLOR: '1' },
    });
    assert.equal(cat.exitCode, 0, `files cat ${spec}: ${Buffer.from(cat.stderr).toString()}`);
    return Buffer.from(cat.stdout);
  };

  /** The user.* xattrs expected on each path, as files stat --json gives them (name → base64). */
  const expectedXattrs = (xattrs: CorpusXattr[]) => {
    const byPath = new Map<string, Record<string, string>>();
    for (const x of xattrs) byPath.set(x.path, { ...byPath.get(x.path), [x.name]: x.value.toString('base64') });
    return byPath;
  };
  /** Compares what files stat reports for each path that has xattrs, and its text form for one. */
  const checkXattrs = async (label: string, name: string, xattrs: CorpusXattr[]) => {
    assert.ok(xattrs.length > 0, `${label}: the corpus gave it xattrs`);
    for (const [path, want] of expectedXattrs(xattrs)) {
      const entry = await filesJson<FileEntry>(['stat', `${name}:/${path}`]);
      assert.equal(entry.exitCode, 0, entry.stderr);
      const user = Object.fromEntries(Object.entries(entry.json.xattrs ?? {}).filter(([key]) => key.startsWith('user.')));
      assert.deepEqual(user, want, `${label}: the xattrs of ${path}`);
    }
    const shown = await files(['stat', `${name}:/etc/os-release`]);
    assert.match(shown.stdout, /xattr user\.pocketvm\.comment = "Grüße aus dem Korpus"/, label);
  };
  /** user.* xattrs of a host file (getfattr), name → base64. */
  const hostXattrs = async (path: string): Promise<Record<string, string>> => {
    const got = await execa('getfattr', ['-d', '-m', '^user\\.', '-e', 'hex', '--absolute-names', path], { reject: false });
    const found: Record<string, string> = {};
    for (const match of String(got.stdout).matchAll(/^(user\.[^=]+)=0x([0-9a-f]*)$/gm)) found[match[1]!] = Buffer.from(match[2]!, 'hex').toString('base64');
    return found;
  };

  /** `uid gid` of paths in an open source, read inside the appliance. */
  const ownersOf = async (name: string, paths: string[]): Promise<string[]> => {
    const layout = await openStick(stick.root);
    const address = (await findAppliance(layout))!;
    let text = '';
    const remote = await applianceExec(layout, address, ['/bin/stat', '-c', '%u %g', ...paths.map((p) => `/mnt/files/${name}/${p}`)], {
      stdout: (data) => ((text += data.toString('utf8')), true),
      stderr: () => true,
    });
    remote.end();
    await remote.outcome;
    return text.trim().split('\n');
  };

  before(async () => {
    // Built once (cached under payload/appliance), not inside a timed launcher call.
    const built = await execa('node', ['build.js', 'payload', '--guest', 'appliance'], { cwd: repoRoot, reject: false, timeout: 1_500_000 });
    assert.equal(built.exitCode, 0, String(built.stderr));
    stick = await freshStick({ savedAppliance: true });
    dir = tempDir('pocketvm-files-it-');
    corpus = await makeCorpus(dir);
    stack = await makeStackImage(dir);
    for (const img of corpus) hashesBefore.set(img.label, fileSha(img.file));
  });

  after(async () => {
    if (stick) {
      await files(['close', '--all']);
      await stick.dispose();
    }
    if (dir) removeDir(dir);
  });

  it('opens every image of the corpus at once, read-only, and says what each holds', async () => {
    for (const img of corpus) {
      const { args, input } = unlock(img);
      const opened = await filesJson<OpenSource>(['open', ...args, img.file], input);
      assert.equal(opened.exitCode, 0, opened.stderr);
      assert.equal(opened.json.readOnly, true);
      assert.equal(opened.json.mounted.type, img.type, img.label);
      assert.equal(opened.json.disk.partitionTable, img.partitionTable, img.label);
      assert.equal(opened.json.mounted.number, img.partitionTable ? 1 : 0, img.label);
      assert.equal(opened.json.mounted.volume, img.volume ?? String(opened.json.mounted.number), img.label);
      names.set(img.label, opened.json.name);
    }
    assert.equal(new Set(names.values()).size, corpus.length, 'each source has its own name');
    const listed = await filesJson<OpenSource[]>(['list']);
    assert.deepEqual(listed.json.map((s) => s.name).sort(), [...names.values()].sort());
    assert.ok(corpus.some((i) => i.file.endsWith('.qcow2')) && corpus.some((i) => i.file.endsWith('.vmdk')));
    assert.equal(listed.json.find((s) => s.name === names.get('ext4-gpt-qcow2'))?.format, 'qcow2');
    assert.equal(listed.json.find((s) => s.name === names.get('ext4-gpt-vmdk'))?.format, 'vmdk');
  });

  it('reads every file back by hash through files cat, and the biggest through files get', async () => {
    for (const img of corpus) {
      const name = names.get(img.label)!;
      for (const file of img.files) {
        assert.equal(sha(await catBytes(`${name}:/${file.path}`)), file.sha256, `${img.label}: ${file.path}`);
      }
      const random = img.files.find((f) => f.path === 'data/random.bin');
      if (!random) continue;
      const local = join(dir, `${img.label}.got`);
      const got = await files(['get', `${name}:/data/random.bin`, local]);
      assert.equal(got.exitCode, 0, got.stderr);
      assert.equal(fileSha(local), random.sha256, img.label);
      // Its user.* xattrs are set on the local copy (the test's folder keeps them: the corpus was made there).
      assert.deepEqual(await hostXattrs(local), expectedXattrs(img.xattrs).get('data/random.bin') ?? {}, `${img.label}: xattrs of the copy`);
    }
  });

  /** `files share NAME` with --json: the share and its one-time password. */
  const share = async (name: string): Promise<NewShare & ShareLogin> => {
    const shared = await filesJson<NewShare>(['share', name]);
    assert.equal(shared.exitCode, 0, `files share ${name}: ${shared.stderr}`);
    return shared.json;
  };

  it('shares each source over WebDAV and SMB on 127.0.0.1 only: every file reads back by hash through curl and smbclient', async () => {
    let first = true;
    for (const img of corpus) {
      const name = names.get(img.label)!;
      const shared = await share(name);
      assert.equal(shared.readOnly, true, img.label);
      assert.match(shared.webdav.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
      assert.match(shared.smb.url, new RegExp(`^smb://127\\.0\\.0\\.1:${shared.smb.port}/${name}$`));
      assert.ok(shared.password.length >= 20, 'a random password');
      for (const file of img.files) {
        const got = await davGet(shared, file.path);
        assert.equal(got.status, 200, `${img.label} WebDAV ${file.path}`);
        assert.equal(sha(got.body), file.sha256, `${img.label} WebDAV ${file.path}`);
        assert.equal(sha(await smbGet(shared, file.path)), file.sha256, `${img.label} SMB ${file.path}`);
      }
      if (first) {
        first = false;
        // A wrong password is refused by both servers.
        assert.equal((await davGet(shared, 'etc/os-release', 'wrong-password')).status, 401);
        const wrong = await smb(shared, 'ls', 'wrong-password');
        assert.notEqual(wrong.exitCode, 0);
        assert.match(`${wrong.stdout}${wrong.stderr}`, /LOGON_FAILURE/);
        // Read-only: neither server takes a write.
        const local = join(dir, 'refused.txt');
        writeFileSync(local, 'no\n');
        assert.equal(await davPut(shared, 'refused.txt', local), 403);
        const put = await smb(shared, `put "${local}" refused.txt`);
        assert.match(`${put.stdout}${put.stderr}`, /NT_STATUS_(ACCESS_DENIED|MEDIA_WRITE_PROTECTED)/);
        // Everything the appliance's QEMU listens on is the host's 127.0.0.1, and both forwards are there.
        // The appliance's QEMU is the child of its process (run/appliance.json's pid).
        const daemon = (await findAppliance(await openStick(stick.root)))!.pid;
        const qemu = String((await execa('ps', ['-o', 'pid=', '--ppid', String(daemon)])).stdout).trim();
        assert.match(qemu, /^\d+$/, 'one QEMU under the appliance process');
        const listening = String((await execa('ss', ['-Hltnp'])).stdout)
          .split('\n')
          .filter((line) => line.includes(`pid=${qemu},`));
        const local4 = listening.map((line) => line.trim().split(/\s+/)[3]!);
        assert.ok(local4.includes(`127.0.0.1:${shared.webdav.port}`) && local4.includes(`127.0.0.1:${shared.smb.port}`), local4.join(' '));
        for (const address of local4) assert.match(address, /^127\.0\.0\.1:\d+$/, `QEMU listens on ${address}`);
        // files list shows the share, never its password; a second share is refused (exit 22).
        const listed = await filesJson<OpenSource[]>(['list']);
        assert.equal(listed.json.find((s) => s.name === name)?.share?.webdav.url, shared.webdav.url);
        assert.ok(!JSON.stringify(listed.json).includes(shared.password));
        const again = await launcherJson<{ error: { reason: string } }>(['files', 'share', name, '--stick', stick.root]);
        assert.equal(again.exitCode, 22);
        assert.equal(again.json.error.reason, 'already-shared');
      }
      const stopped = await files(['share', name, '--stop']);
      assert.equal(stopped.exitCode, 0, stopped.stderr);
      assert.equal((await davGet(shared, 'etc/os-release')).status, 0, `${img.label}: nothing answers once the share stopped`);
    }
  });

  it('lists long and non-ASCII names, symlinks with their targets and hard links with their count', async () => {
    for (const img of corpus.filter((i) => i.files.length > 0)) {
      const listed = await filesJson<FileEntry[]>(['ls', `${names.get(img.label)}:/data`]);
      assert.equal(listed.exitCode, 0, listed.stderr);
      const got = listed.json.map((e) => e.name);
      for (const file of img.files.filter((f) => f.path.startsWith('data/')))
        assert.ok(got.includes(file.path.slice(5)), `${img.label}: ${file.path} in ${got.join(', ')}`);
      assert.ok(got.includes(UNICODE_NAME), img.label);
      if (img.type !== 'vfat' && img.type !== 'xfs') assert.ok(got.includes(LONG_NAME), img.label);
      for (const link of img.symlinks) {
        const entry = await filesJson<FileEntry>(['stat', `${names.get(img.label)}:/${link.path}`]);
        assert.equal(entry.json.kind, 'symlink', img.label);
        assert.equal(entry.json.target, link.target, img.label);
      }
      for (const [first] of img.hardLinks) assert.equal(listed.json.find((e) => `data/${e.name}` === first)?.links, 2, `${img.label}: hard link count`);
      const sparse = img.files.find((f) => f.path === 'data/sparse.bin');
      if (sparse) assert.equal(listed.json.find((e) => e.name === 'sparse.bin')?.size, sparse.bytes, img.label);
    }
  });

  it('files stat reports the xattrs each file was made with (ext4 in raw, qcow2 and vmdk; ext4 in LUKS2; btrfs)', async () => {
    const withXattrs = corpus.filter((i) => i.xattrs.length > 0);
    assert.deepEqual(withXattrs.map((i) => i.type).sort(), ['btrfs', 'ext4', 'ext4', 'ext4', 'ext4']);
    for (const img of withXattrs) await checkXattrs(img.label, names.get(img.label)!, img.xattrs);
    // A file without any: no xattrs in --json.
    const plain = await filesJson<FileEntry>(['stat', `${names.get('ext4-gpt-raw')}:/data/${UNICODE_NAME}`]);
    assert.equal(plain.json.xattrs, undefined);
  });

  it('files cat IMAGE:PATH opens the image read-only for that one command', async () => {
    const img = image('ext4-gpt-raw');
    const copy = join(dir, 'one-shot.img');
    copyFileSync(img.file, copy);
    const cat = await files(['cat', `${copy}:/etc/os-release`]);
    assert.equal(cat.exitCode, 0, cat.stderr);
    assert.match(cat.stdout, /pocketvm files corpus/);
    const listed = await filesJson<OpenSource[]>(['list']);
    assert.equal(listed.json.length, corpus.length, 'nothing stays open after the one command');
  });

  it('refuses writes to a read-only source, a missing path and an unknown name with exit 20', async () => {
    const name = names.get('ext4-gpt-raw')!;
    const put = await launcherJson<{ error: { code: number; reason: string } }>(['files', 'put', '-', `${name}:/new.txt`, '--stick', stick.root], {
      input: 'x',
    });
    assert.equal(put.exitCode, 20);
    assert.equal(put.json.error.reason, 'read-only');
    const missing = await launcherJson<{ error: { reason: string } }>(['files', 'cat', `${name}:/no/such/file`, '--stick', stick.root]);
    assert.equal(missing.exitCode, 20);
    assert.equal(missing.json.error.reason, 'no-such-path');
    const unknown = await files(['ls', 'nothing-open-by-this-name:/']);
    assert.equal(unknown.exitCode, 20);
    assert.match(unknown.stderr, /no source is open as "nothing-open-by-this-name"/);
  });

  it('LUKS2: without a passphrase and no terminal exit 24, a wrong one exit 23; neither leaves anything open or changed', async () => {
    const img = image('luks2-ext4-raw');
    const before = fileSha(img.file);
    const open = (await filesJson<OpenSource[]>(['list'])).json.length;
    const locked = await filesJson<{ error: { code: number; reason: string; message: string } }>(['open', img.file]);
    assert.equal(locked.exitCode, 24, JSON.stringify(locked.json));
    assert.equal(locked.json.error.reason, 'passphrase-needed');
    assert.match(locked.json.error.message, /LUKS volume at 0 needs its passphrase/);
    const mappedBefore = (await applianceShell(stick.root, 'ls /dev/mapper')).stdout;
    const wrong = await filesJson<{ error: { code: number; reason: string; message: string } }>(
      ['open', '--passphrase-stdin', img.file],
      `not ${LUKS_PASSPHRASE}\n`,
    );
    assert.equal(wrong.exitCode, 23, JSON.stringify(wrong.json));
    assert.equal(wrong.json.error.reason, 'wrong-passphrase');
    assert.match(wrong.json.error.message, /wrong passphrase/);
    const plain = await files(['open', '--passphrase-stdin', img.file], { input: 'wrong again\n' });
    assert.equal(
      plain.stderr
        .trim()
        .split('\n')
        .filter((l) => l.includes('error')).length,
      1,
      `one line: ${plain.stderr}`,
    );
    assert.ok(!plain.stderr.includes('wrong again') && !plain.stdout.includes('wrong again'), 'the passphrase is never printed');
    assert.equal((await filesJson<OpenSource[]>(['list'])).json.length, open, 'nothing stays open');
    assert.equal((await applianceShell(stick.root, 'ls /dev/mapper')).stdout, mappedBefore, 'no LUKS mapping stays');
    assert.equal(fileSha(img.file), before);
    for (const log of ['appliance.log', 'appliance.console.log']) {
      const text = readFileSync(join(stick.root, 'run', log), 'utf8');
      assert.ok(!text.includes(LUKS_PASSPHRASE), `${log} holds no passphrase`);
    }
  });

  it('LVM (xfs; LUKS1 inside) and md RAID1, made by lvm and mdadm in the appliance: the tree, each volume read back by hash, the image unchanged', async () => {
    const layers = "ls /dev/mapper; grep '^md' /proc/mdstat || true";
    const made = await filesJson<OpenSource>(['open', '--rw', stack.file]);
    assert.equal(made.exitCode, 0, made.stderr);
    const layersBefore = (await applianceShell(stick.root, layers)).stdout;
    const script = await applianceShell(stick.root, stackScript(made.json.name));
    assert.equal(script.exitCode, 0, script.stderr);
    assert.equal((await files(['close', made.json.name])).exitCode, 0);
    const before = fileSha(stack.file);
    // No passphrase: partition 1 is mounted, the LUKS inside LVM stays locked, the tree is whole.
    const tree = await filesJson<OpenSource>(['open', stack.file]);
    assert.equal(tree.exitCode, 0, tree.stderr);
    assert.equal(tree.json.mounted.volume, '1');
    const byId = new Map(tree.json.volumes.map((v) => [v.id, v]));
    assert.equal(byId.get('2/md')?.type, 'ext4');
    assert.equal(byId.get('2/md')?.label, 'stack-md');
    assert.equal(byId.get('4/corpusvg/data')?.type, 'xfs');
    assert.equal(byId.get('4/corpusvg/secret')?.type, 'crypto LUKS');
    assert.equal(byId.get('4/corpusvg/secret')?.locked, true);
    assert.deepEqual(
      tree.json.partitions.map((p) => p.type),
      ['ext4', 'linux raid member', 'linux raid member', 'LVM2 member'],
    );
    const shown = await files(['list']);
    assert.match(shown.stdout, /2\/md .*ext4/);
    assert.match(shown.stdout, /4\/corpusvg\/secret .*crypto LUKS .*locked/);
    assert.equal((await files(['close', tree.json.name])).exitCode, 0);
    for (const { volume, type } of STACK_VOLUMES) {
      const opened = await filesJson<OpenSource>(['open', '--passphrase-stdin', '--volume', volume, stack.file], `${LUKS_PASSPHRASE}\n`);
      assert.equal(opened.exitCode, 0, opened.stderr);
      assert.equal(opened.json.mounted.volume, volume);
      assert.equal(opened.json.mounted.type, type, volume);
      for (const file of stack.files) assert.equal(sha(await catBytes(`${opened.json.name}:/${file.path}`)), file.sha256, `${volume}: ${file.path}`);
      for (const link of stack.symlinks) {
        const entry = await filesJson<FileEntry>(['stat', `${opened.json.name}:/${link.path}`]);
        assert.equal(entry.json.target, link.target, volume);
      }
      // md's ext4 and LUKS1's ext4 made by mke2fs -d, the LVM's xfs filled by cp and setfattr: every xattr read back.
      await checkXattrs(volume, opened.json.name, stack.xattrs);
      assert.equal((await files(['close', opened.json.name])).exitCode, 0);
    }
    const left = (await applianceShell(stick.root, layers)).stdout;
    assert.equal(left, layersBefore, 'closed sources leave no mapping, volume group or array');
    assert.equal(fileSha(stack.file), before, 'read-only opens left the stack image as it was');
  });

  it('closes every source; read-only use left each image byte for byte as it was', async () => {
    const closed = await files(['close', '--all']);
    assert.equal(closed.exitCode, 0, closed.stderr);
    for (const img of corpus) assert.equal(fileSha(img.file), hashesBefore.get(img.label), `${img.label} changed under a read-only open`);
  });

  it('--rw: writes through mkdir, put (file and stdin) and rm; each file system checks clean in a fresh appliance and reads back', async () => {
    const payload = randomBytes(1 << 20);
    const local = join(dir, 'payload.bin');
    writeFileSync(local, payload);
    // Every raw image of the corpus, and each volume of the stack (md assembled by the kernel's md, LVM, LUKS1 on LVM).
    interface Target {
      label: string;
      file: string;
      type: string;
      args: string[];
      input?: string;
      kept?: CorpusFile;
    }
    const writable: Target[] = [
      ...corpus
        .filter((i) => !i.file.endsWith('.qcow2') && !i.file.endsWith('.vmdk'))
        .map((i) => ({ label: i.label, file: i.file, type: i.type, ...unlock(i), kept: i.files.find((f) => f.path === 'data/random.bin') })),
      ...STACK_VOLUMES.map(({ volume, type, label }) => ({
        label,
        file: stack.file,
        type,
        args: ['--volume', volume, '--passphrase-stdin'],
        input: `${LUKS_PASSPHRASE}\n`,
        kept: stack.files.find((f) => f.path === 'data/random.bin'),
      })),
    ];
    for (const img of writable) {
      const opened = await filesJson<OpenSource>(['open', '--rw', ...img.args, img.file], img.input);
      assert.equal(opened.exitCode, 0, `${img.label}: ${opened.stderr}`);
      assert.equal(opened.json.readOnly, false);
      const name = opened.json.name;
      for (const step of [
        ['mkdir', `${name}:/written/deeper`],
        ['put', local, `${name}:/written/deeper/payload ü.bin`],
        ['put', local, `${name}:/written/to-remove.bin`],
        ['rm', `${name}:/written/to-remove.bin`],
      ]) {
        const result = await files(step);
        assert.equal(result.exitCode, 0, `${img.label} ${step.join(' ')}: ${result.stderr}`);
      }
      const fromStdin = await files(['put', '-', `${name}:/written/stdin.txt`], { input: `stdin into ${img.label}\n` });
      assert.equal(fromStdin.exitCode, 0, fromStdin.stderr);
      // Through the share: a folder and a file over WebDAV, the same over SMB.
      const shared = await share(name);
      assert.equal(shared.readOnly, false);
      assert.equal(await davPut(shared, 'written/dav', null), 201, `${img.label} MKCOL`);
      assert.equal(await davPut(shared, 'written/dav/payload ü.bin', local), 201, `${img.label} PUT`);
      const put = await smb(shared, `mkdir written/smb; put "${local}" "written/smb/payload ü.bin"`);
      assert.equal(put.exitCode, 0, `${img.label} smbclient put: ${put.stdout} ${put.stderr}`);
      if (['ext4', 'xfs', 'btrfs', 'f2fs'].includes(img.type)) {
        // Owned inside the source by the person on the host (the launcher's uid and gid).
        const owners = await ownersOf(name, ['written/dav/payload ü.bin', 'written/smb/payload ü.bin', 'written/dav']);
        const expected = `${process.getuid!()} ${process.getgid!()}`;
        assert.deepEqual(owners, [expected, expected, expected], `${img.label} owners`);
      }
      // files close ends the share with the source.
      const closed = await files(['close', name]);
      assert.equal(closed.exitCode, 0, closed.stderr);
      assert.equal((await davGet(shared, 'written/stdin.txt')).status, 0, `${img.label}: the share ended with files close`);
    }
    // A fresh appliance: nothing of the writes is in a cache that survives.
    assert.equal((await files(['close', '--all'])).exitCode, 0);
    for (const img of writable) {
      const checked = await filesJson<{ clean: boolean; type: string; output: string }>(['check', ...img.args, img.file], img.input);
      assert.equal(checked.exitCode, 0, `${img.label}: ${JSON.stringify(checked.json)}`);
      assert.equal(checked.json.clean, true, img.label);
      assert.equal(checked.json.type, img.type, img.label);
    }
    for (const img of writable) {
      const opened = await filesJson<OpenSource>(['open', ...img.args, img.file], img.input);
      assert.equal(opened.exitCode, 0, `${img.label}: ${opened.stderr}`);
      const name = opened.json.name;
      const got = join(dir, `${img.label}.rw`);
      assert.equal((await files(['get', `${name}:/written/deeper/payload ü.bin`, got])).exitCode, 0, img.label);
      assert.equal(fileSha(got), sha(payload), img.label);
      assert.equal((await files(['cat', `${name}:/written/stdin.txt`])).stdout, `stdin into ${img.label}\n`);
      const listed = await filesJson<FileEntry[]>(['ls', `${name}:/written`]);
      assert.deepEqual(listed.json.map((e) => e.name).sort(), ['dav', 'deeper', 'smb', 'stdin.txt'], `${img.label}: the removed file is gone`);
      for (const through of ['dav', 'smb'])
        assert.equal(sha(await catBytes(`${name}:/written/${through}/payload ü.bin`)), sha(payload), `${img.label}: written through ${through}`);
      // What was there before the writes is still there (the biggest file; every file was read in the tests above).
      if (img.kept) assert.equal(sha(await catBytes(`${name}:/${img.kept.path}`)), img.kept.sha256, `${img.label}: ${img.kept.path} after the writes`);
      assert.equal((await files(['close', name])).exitCode, 0);
    }
  });

  it('refuses read-write on a hibernated NTFS (exit 20) and still opens it read-only', async () => {
    const ntfs = image('ntfs-raw');
    const opened = await filesJson<OpenSource>(['open', '--rw', ntfs.file]);
    assert.equal(opened.exitCode, 0, opened.stderr);
    // What Windows leaves when it hibernates (or fast-starts): hiberfil.sys beginning with "HIBR".
    const hiberfil = Buffer.concat([Buffer.from('HIBR'), Buffer.alloc(8188)]);
    const put = await files(['put', '-', `${opened.json.name}:/hiberfil.sys`], { input: hiberfil });
    assert.equal(put.exitCode, 0, put.stderr);
    assert.equal((await files(['close', opened.json.name])).exitCode, 0);
    const refused = await launcherJson<{ error: { code: number; reason: string; message: string } }>(
      ['files', 'open', '--rw', ntfs.file, '--stick', stick.root],
      {
        timeout: 600_000,
      },
    );
    assert.equal(refused.exitCode, 20);
    assert.equal(refused.json.error.reason, 'read-write-refused');
    assert.match(refused.json.error.message, /hibernated/);
    const readOnly = await filesJson<OpenSource>(['open', ntfs.file]);
    assert.equal(readOnly.exitCode, 0, readOnly.stderr);
  });
});
