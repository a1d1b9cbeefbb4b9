// The audit's reading of strace -f -ff -y -z lines and its classification of
// written paths (the whole audit runs in test/integration/audit.test.ts).
import assert from 'node:assert/strict';
import { classify, type ClassifyContext, findings, runtimeDirOf } from '../../src/audit/classify-writes.ts';
import { fdPath, type ProcessState, ringCarriesFileIo, splitArgs, unquote, writesOfLine } from '../../src/audit/strace-writes.ts';

const state = (): ProcessState => ({ pid: 42, cwd: '/work', program: '/usr/bin/node' });
const paths = (line: string, s = state()) => writesOfLine(line, s).writes.map((w) => `${w.op} ${w.path}`);

describe('host audit: reading strace lines', () => {
  it('splits arguments at top-level commas only', () => {
    assert.deepEqual(splitArgs('AT_FDCWD</w>, "a,b", O_RDONLY|O_CLOEXEC'), ['AT_FDCWD</w>', '"a,b"', 'O_RDONLY|O_CLOEXEC']);
    assert.deepEqual(splitArgs('3<socket:[1]>, {sa_family=AF_UNIX, sun_path="/x"}, 110'), ['3<socket:[1]>', '{sa_family=AF_UNIX, sun_path="/x"}', '110']);
    assert.equal(unquote('"a\\"b\\\\c\\x41\\101\\n"'), 'a"b\\cAA\n');
    assert.equal(fdPath('3</tmp/a b>'), '/tmp/a b');
  });

  it('counts opens that can write, by the path the descriptor got', () => {
    assert.deepEqual(paths('openat(AT_FDCWD</work>, "x", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3</work/x>'), ['open(write) /work/x']);
    assert.deepEqual(paths('openat(AT_FDCWD</work>, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3</etc/passwd>'), []);
    assert.deepEqual(paths('open("/var/log/x", O_RDWR|O_APPEND) = 5</var/log/x>'), ['open(write) /var/log/x']);
    assert.deepEqual(paths('creat("rel", 0644) = 4</work/rel>'), ['creat /work/rel']);
    assert.deepEqual(paths('openat2(AT_FDCWD</w>, "f", {flags=O_RDWR|O_CREAT, mode=0600, resolve=0}, 24) = 3</w/f>'), ['open(write) /w/f']);
    assert.deepEqual(
      paths('openat(AT_FDCWD</w>, "/dev/shm", O_RDWR|O_DIRECTORY|O_TMPFILE, 0600) = 21'),
      ['open(tmpfile) /dev/shm'],
      'an unnamed file: the folder it is in',
    );
  });

  it('names both ends of renames and links, the directory of *at calls, and bound socket files', () => {
    assert.deepEqual(paths('renameat2(AT_FDCWD</a>, "x.tmp", 7</b>, "x", RENAME_NOREPLACE) = 0'), ['renameat2 /a/x.tmp', 'renameat2 /b/x']);
    assert.deepEqual(paths('unlinkat(AT_FDCWD</tmp>, "d", AT_REMOVEDIR) = 0'), ['unlinkat /tmp/d']);
    assert.deepEqual(paths('mkdir("/tmp/pocketvm-AbC123", 0700) = 0'), ['mkdir /tmp/pocketvm-AbC123']);
    assert.deepEqual(paths('symlink("target", "/home/me/link") = 0'), ['symlink /home/me/link']);
    assert.deepEqual(paths('ftruncate(5</home/me/f>, 0) = 0'), ['ftruncate /home/me/f']);
    assert.deepEqual(paths('utimensat(4</home/me/f>, NULL, NULL, 0) = 0'), ['utimensat /home/me/f']);
    assert.deepEqual(paths('bind(29<socket:[1]>, {sa_family=AF_UNIX, sun_path="/tmp/pocketvm-x/control.sock"}, 110) = 0'), [
      'bind /tmp/pocketvm-x/control.sock',
    ]);
    assert.deepEqual(paths('bind(3<socket:[1]>, {sa_family=AF_UNIX, sun_path=@"abstract"}, 12) = 0'), []);
  });

  it('follows chdir and execve; ignores failed calls', () => {
    const s = state();
    writesOfLine('chdir("/srv") = 0', s);
    writesOfLine('execve("/usr/bin/qemu-system-x86_64", ["qemu"], 0x1 /* 3 vars */) = 0', s);
    const { writes } = writesOfLine('mkdir("out", 0777) = 0', s);
    assert.deepEqual(writes, [{ path: '/srv/out', op: 'mkdir', pid: 42, program: '/usr/bin/qemu-system-x86_64' }]);
    assert.deepEqual(paths('unlink("/etc/x") = -1 ENOENT (No such file or directory)'), []);
  });

  it("tells a ring that can carry file I/O (SQPOLL) from libuv's epoll ring", () => {
    assert.equal(ringCarriesFileIo('{flags=0x10000 /* IORING_SETUP_??? */, sq_thread_cpu=0}'), false);
    assert.equal(ringCarriesFileIo('{flags=IORING_SETUP_SQPOLL, sq_thread_cpu=0}'), true);
    assert.equal(ringCarriesFileIo('{flags=0x2, sq_thread_cpu=0}'), true);
    assert.deepEqual(writesOfLine('io_uring_setup(256, {flags=0x10000}) = 4<anon_inode:[io_uring]>', state()).ioUring, '{flags=0x10000}');
  });
});

describe('host audit: classifying written paths', () => {
  const context: ClassifyContext = {
    stickRoots: ['/media/me/STICK', '/run/media/STICK'],
    runtimeBases: ['/tmp', '/run/user/1000'],
    pids: new Set([42]),
    checkoutCache: '/src/pocketvm/.cache',
  };
  const of = (path: string, op = 'open(write)') => classify({ path, op }, context);

  it('the stick, the private runtime directory, devices, own /proc entries, the checkout cache', () => {
    assert.equal(of('/media/me/STICK/run/lock.json'), 'stick');
    assert.equal(of('/run/media/STICK'), 'stick');
    assert.equal(of('/tmp/pocketvm-Ab12Cd/control.sock', 'bind'), 'runtime');
    assert.equal(of('/run/user/1000/pocketvm-Ab12Cd', 'mkdir'), 'runtime');
    assert.equal(of('/dev/null'), 'device');
    assert.equal(of('/dev/pts/3'), 'device');
    assert.equal(of('/proc/self/oom_score_adj'), 'process');
    assert.equal(of('/proc/42/setgroups'), 'process');
    assert.equal(of('/src/pocketvm/.cache/node-compile-cache/x'), 'checkout');
    assert.equal(of('pipe:[123]'), 'anonymous');
    assert.equal(of('/memfd:qemu (deleted)'), 'anonymous');
    assert.equal(of('/dev/shm/#57 (deleted)'), 'anonymous', 'guest RAM: an O_TMPFILE file, never named');
    assert.equal(of('/dev/shm', 'open(tmpfile)'), 'anonymous', 'its open names the folder');
  });

  it('everything else is a host write: other /tmp files, /dev/shm, /proc/sys, other processes, a device node made', () => {
    assert.equal(of('/tmp/pocketvm-lock'), 'host');
    assert.equal(of('/tmp/pocketvm-toolongname/x'), 'host');
    assert.equal(of('/media/me/STICKY/x'), 'host');
    assert.equal(of('/dev/shm/qemu-ram'), 'host');
    assert.equal(of('/dev/shm/#57'), 'host', 'a file named like an unnamed one is still a host file');
    assert.equal(of('/dev/shm/x/#57 (deleted)'), 'host');
    assert.equal(of('/dev/shm', 'open(write)'), 'host');
    assert.equal(of('/tmp', 'open(tmpfile)'), 'host', 'an unnamed file on a disk is still written there');
    assert.equal(of('/proc/sys/vm/drop_caches'), 'host');
    assert.equal(of('/proc/1/oom_score_adj'), 'host');
    assert.equal(of('/dev/null', 'unlink'), 'host');
    assert.equal(of('/home/me/.cache/x'), 'host');
  });

  it('groups writes by path, with every operation and program, and whether the path is still there', () => {
    const found = findings(
      [
        { path: '/tmp/pocketvm-Ab12Cd', op: 'mkdir', pid: 1, program: '/usr/bin/node' },
        { path: '/tmp/pocketvm-Ab12Cd', op: 'unlinkat', pid: 1, program: '/usr/bin/node' },
        { path: '/home/me/x', op: 'open(write)', pid: 2, program: '/usr/bin/qemu-system-x86_64' },
        { path: '/home/me/x', op: 'chmod', pid: 3, program: undefined },
      ],
      context,
      (path) => path === '/home/me/x',
    );
    assert.deepEqual(found, [
      { path: '/home/me/x', class: 'host', ops: ['open(write)', 'chmod'], programs: ['qemu-system-x86_64', 'pid 3'], existsAfter: true },
      { path: '/tmp/pocketvm-Ab12Cd', class: 'runtime', ops: ['mkdir', 'unlinkat'], programs: ['node'], existsAfter: false },
    ]);
    assert.equal(runtimeDirOf('/tmp/pocketvm-Ab12Cd/control.sock', ['/tmp']), '/tmp/pocketvm-Ab12Cd');
  });
});
