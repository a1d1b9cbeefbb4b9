// A served host folder on a FUSE mount whose daemon stops answering
// (bindfs, SIGSTOP): the namespace's requests there fail with EIO after the
// deadline, the event loop keeps turning meanwhile, other folders keep
// answering, and after SIGCONT the folder answers again.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileTable } from '../../src/dyntable/compile.ts';
import { NamespaceBackend } from '../../src/dyntable/namespace-backend.ts';
import { Errno, OpenFlags } from '../../src/ninep/backend.ts';
import { HOST_CALL_TIMEOUT_MS, HUNG_BACKOFF_MS, readSlowMounts } from '../../src/dyntable/host-fs-pool.ts';
import { liveHost, removeDir, tempDir } from './helpers.ts';

const hasBindfs = spawnSync('bindfs', ['--version']).status === 0 && existsSync('/dev/fuse');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function errnoOf(promise: Promise<unknown>): Promise<number | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return (error as { errno?: number }).errno ?? -1;
  }
}

describe('host fs pool: folders on mounts that may hang', function () {
  this.timeout(120_000);

  it('reads remote and FUSE mounts from mountinfo, unescaping their points', () => {
    const text = [
      '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
      '40 22 0:40 / /home/me/My\\040Drive rw,nosuid - fuse.rclone drive: rw',
      '41 22 0:41 / /mnt/nas rw - nfs4 nas:/export rw',
      '42 22 0:42 / /mnt/bind rw - fuse bindfs rw',
      '43 22 0:43 / /tmp rw - tmpfs tmpfs rw',
    ].join('\n');
    assert.deepEqual(readSlowMounts(text), [
      { point: '/home/me/My Drive', type: 'fuse.rclone' },
      { point: '/mnt/nas', type: 'nfs4' },
      { point: '/mnt/bind', type: 'fuse' },
    ]);
  });

  (hasBindfs ? it : it.skip)(
    'a stopped FUSE daemon: EIO after the deadline, the event loop never stalls, other folders answer; SIGCONT and it answers again',
    async () => {
      const base = tempDir();
      const home = join(base, 'home');
      const source = join(base, 'source');
      mkdirSync(join(source, 'sub'), { recursive: true });
      for (let i = 0; i < 50; i++) writeFileSync(join(source, `f${i}`), `file ${i}`);
      // Names the kernel has not cached (FUSE keeps attributes for a second): asked for only once the daemon stops.
      for (let i = 0; i < 6; i++) writeFileSync(join(source, 'sub', `g${i}`), `file ${i}`);
      writeFileSync(join(source, 'big'), Buffer.alloc(1 << 20, 1));
      mkdirSync(join(home, 'Documents'), { recursive: true });
      mkdirSync(join(home, 'Music'), { recursive: true });
      writeFileSync(join(home, 'Music', 'local.txt'), 'local');
      const mount = join(home, 'Documents');
      let bindfs: ChildProcess | undefined;
      let backend: NamespaceBackend | undefined;
      const ticks: number[] = [];
      const ticker = setInterval(() => ticks.push(performance.now()), 20);
      try {
        bindfs = spawn('bindfs', ['-f', source, mount], { stdio: 'ignore' });
        for (let i = 0; i < 200 && spawnSync('mountpoint', ['-q', mount]).status !== 0; i++) await sleep(25);
        assert.equal(spawnSync('mountpoint', ['-q', mount]).status, 0, 'bindfs did not mount');
        const table = compileTable(liveHost(home), [
          { name: 'Documents', table: 'FET', guestPath: '/host/Documents', hostPath: '~/Documents', mode: 'cow', origin: 'confirmed', source: 'test' },
          { name: 'Music', table: 'FET', guestPath: '/host/Music', hostPath: '~/Music', mode: 'readonly', origin: 'confirmed', source: 'test' },
        ]);
        backend = await NamespaceBackend.open({ table, filesDir: join(base, 'files'), upperDir: join(base, 'upper') });
        const b = backend;
        // Served normally through the pool while the daemon runs.
        assert.equal((await b.getattr('/Documents/f1')).size, 6);
        const dir = await b.open('/Documents', OpenFlags.RDONLY);
        assert.equal((await dir.readdir(0, 100)).length, 52);
        await dir.close();
        const small = await b.open('/Documents/f2', OpenFlags.RDONLY);
        const buf = Buffer.alloc(16);
        assert.equal(buf.subarray(0, await small.read(buf, 0)).toString(), 'file 2');
        await small.close();
        // Opened now, read only once the daemon stops (nothing of it in the page cache).
        const file = await b.open('/Documents/big', OpenFlags.RDONLY);

        bindfs.kill('SIGSTOP');
        ticks.length = 0;
        const started = performance.now();
        // Requests of every kind into the stopped mount, at once.
        const pending = [
          errnoOf(b.getattr('/Documents/sub/g3')),
          errnoOf(b.open('/Documents', OpenFlags.RDONLY).then((h) => h.readdir(0, 100))),
          errnoOf(file.read(buf, 512 * 1024)),
          errnoOf(b.getattr('/Documents/sub/x')),
        ];
        // Meanwhile another folder answers, and the event loop turns.
        await sleep(300);
        assert.equal((await b.getattr('/Music/local.txt')).size, 5);
        const errnos = await Promise.all(pending);
        const waited = performance.now() - started;
        assert.deepEqual(errnos, [Errno.EIO, Errno.EIO, Errno.EIO, Errno.EIO]);
        assert.ok(waited < HOST_CALL_TIMEOUT_MS + 3000, `answered after ${waited.toFixed(0)} ms`);
        let gap = 0;
        for (let i = 1; i < ticks.length; i++) gap = Math.max(gap, ticks[i]! - ticks[i - 1]!);
        assert.ok(ticks.length > 10 && gap < 500, `the event loop stalled for ${gap.toFixed(0)} ms`);
        // While hung, the next request fails at once instead of waiting out the deadline.
        const fast = performance.now();
        assert.equal(await errnoOf(b.getattr('/Documents/sub/g4')), Errno.EIO);
        assert.ok(performance.now() - fast < 1000);

        bindfs.kill('SIGCONT');
        await sleep(HUNG_BACKOFF_MS + 200);
        assert.equal((await b.getattr('/Documents/sub/g5')).size, 6);
        await file.close();
      } finally {
        clearInterval(ticker);
        bindfs?.kill('SIGCONT');
        await backend?.close().catch(() => {});
        bindfs?.kill('SIGKILL');
        spawnSync('fusermount', ['-u', '-z', mount]);
        removeDir(base);
      }
    },
  );

  // A process whose host folders hang must still end once its work is done:
  // a session left with a stuck worker stayed alive after a yank.
  (hasBindfs ? it : it.skip)('a process that used the pool ends by itself: with its exit code when idle, by SIGKILL when a call is stuck', async () => {
    const base = tempDir();
    const source = join(base, 'source');
    const mount = join(base, 'mnt');
    mkdirSync(source, { recursive: true });
    mkdirSync(mount, { recursive: true });
    writeFileSync(join(source, 'a'), 'a');
    // The stuck call asks for a name never looked up before: the kernel's FUSE
    // cache (entries and attributes live 1 s) could answer 'a' without the
    // stopped daemon.
    writeFileSync(join(source, 'b'), 'b');
    const script = join(base, 'child.ts');
    const pool = new URL('../../src/dyntable/host-fs-pool.ts', import.meta.url).href;
    writeFileSync(
      script,
      `import { HostFsPool } from ${JSON.stringify(pool)};
const pool = new HostFsPool({ timeoutMs: Number(process.argv[2]) });
pool.refreshMounts();
try { await pool.lstat(${JSON.stringify(mount)} + '/' + process.argv[3]); console.log('answered'); } catch (e) { console.log(String(e)); }
process.exitCode = 15;
`,
    );
    const run = (timeoutMs: number, name: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; ms: number }> =>
      new Promise((resolve) => {
        const started = performance.now();
        const child = spawn(process.execPath, [script, String(timeoutMs), name], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
        const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
        child.on('exit', (code, signal) => {
          clearTimeout(timer);
          resolve({ code, signal, out, ms: performance.now() - started });
        });
      });
    const bindfs = spawn('bindfs', ['-f', source, mount], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && spawnSync('mountpoint', ['-q', mount]).status !== 0; i++) await sleep(50);
      const idle = await run(HOST_CALL_TIMEOUT_MS, 'a');
      assert.match(idle.out, /answered/);
      assert.deepEqual([idle.code, idle.signal], [15, null], `an idle pool kept the process alive (${idle.ms.toFixed(0)} ms)`);
      bindfs.kill('SIGSTOP');
      const stuck = await run(1000, 'b');
      assert.match(stuck.out, /took longer than 1000 ms/);
      assert.equal(stuck.signal, 'SIGKILL', `a stuck call kept the process alive (${stuck.ms.toFixed(0)} ms)`);
      assert.ok(stuck.ms < 15_000, `${stuck.ms.toFixed(0)} ms`);
    } finally {
      bindfs.kill('SIGCONT');
      bindfs.kill('SIGKILL');
      spawnSync('fusermount', ['-u', '-z', mount]);
      removeDir(base);
    }
  });
});
