// Pulling the stick out while the guest writes, three times (boots the real
// guest four times). The stick directory is served through a FUSE mount
// (bindfs) and the launcher is given the mount point; killing the bindfs
// process makes every open file fail as on a yanked device. Each time: QEMU
// is gone within the bound, the session process exits, and nothing of the
// session is left on the host. After each "replug" (a new bindfs on the same
// directory) the next launch reports its recovery, and every file the guest
// had fsync'd before the removal is there with its content; at the end
// `qemu-img check` finds the disk clean.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { login, personalDiskPath } from '../../src/auth/users.ts';
import { linuxHost } from '../../src/hostprobe/linux.ts';
import type { RecoveryReport } from '../../src/session/crash-recovery.ts';
import { stickLayout } from '../../src/stick/layout.ts';
import type { LockHolder } from '../../src/stick/lock.ts';
import { checkDisk } from '../../src/vmm/disk-check.ts';
import { findQemuImg } from '../../src/vmm/qemu-binary.ts';
import { addStickUser, freshStick, launcher, launcherJson, launcherPath, loginArgs, processAlive, qemuPidsFor, waitUntil } from './harness.ts';

const passphrase = 'unplug test passphrase';
const asTester = { input: `${passphrase}\n` };
/** The issue's target is 1 s; the assertion leaves room for a machine busy with other guests. */
const TEARDOWN_BOUND_MS = 3_000;
const hasBindfs = spawnSync('bindfs', ['--version']).status === 0 && existsSync('/dev/fuse');

interface StatusJson {
  state: string;
  pid: number;
  qemuPid: number;
  recovery?: RecoveryReport;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls every few ms: how long until `done()` holds (or -1 past the limit). */
async function timeUntil(done: () => boolean, limitMs: number): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < limitMs) {
    if (done()) return performance.now() - started;
    await sleep(5);
  }
  return done() ? performance.now() - started : -1;
}

(hasBindfs ? describe : describe.skip)('pulling the stick out during heavy guest writes (bindfs; boots the real guest 4 times)', function () {
  this.timeout(900_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let mount: string;
  let bindfs: ChildProcess | undefined;
  /** Files the guest fsync'd before a removal, with their sha256 as the guest computed it. */
  const durable = new Map<string, string>();
  const latencies: number[] = [];

  const plugIn = async () => {
    spawnSync('fusermount', ['-u', '-z', mount]);
    bindfs = spawn('bindfs', ['-f', stick.root, mount], { stdio: 'ignore' });
    assert.ok(await waitUntil(() => spawnSync('mountpoint', ['-q', mount]).status === 0, 10_000, 20), 'bindfs did not mount');
  };

  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, 'tester', passphrase);
    mount = join(dirname(stick.root), 'mnt');
    await mkdir(mount);
    await plugIn();
  });
  after(async () => {
    await launcher(['stop', '--force', '--stick', mount]);
    bindfs?.kill('SIGKILL');
    spawnSync('fusermount', ['-u', '-z', mount]);
    await stick.dispose();
    if (latencies.length > 0)
      process.stderr.write(`      removal → QEMU gone: ${latencies.map((ms) => `${ms.toFixed(0)} ms`).join(', ')} (target ≤ 1000 ms)\n`);
  });

  /** The guest writes files, each fsync'd and synced before the exec returns; then a heavy writer runs on. */
  async function writeWhileRunning(round: number): Promise<void> {
    const heavy = await launcher([
      'exec',
      '--stick',
      mount,
      '--',
      'sh',
      '-c',
      'setsid sh -c \'while :; do dd if=/dev/urandom of="$HOME/heavy" bs=1M count=8 2>/dev/null; done\' </dev/null >/dev/null 2>&1 & echo started',
    ]);
    assert.equal(heavy.exitCode, 0, heavy.stderr);
    for (let i = 1; i <= 3; i++) {
      const name = `durable-${round}-${i}`;
      const wrote = await launcher([
        'exec',
        '--stick',
        mount,
        '--',
        'sh',
        '-c',
        `dd if=/dev/urandom of=${name} bs=64k count=4 conv=fsync 2>/dev/null && sync && sha256sum ${name}`,
      ]);
      assert.equal(wrote.exitCode, 0, wrote.stderr);
      durable.set(name, wrote.stdout.trim().split(/\s+/)[0]!);
    }
    // One more write is under way (not awaited) when the stick goes.
    void launcher(['exec', '--stick', mount, '--', 'sh', '-c', `dd if=/dev/urandom of=in-flight-${round} bs=1M count=32 conv=fsync 2>/dev/null`]);
    await sleep(300);
  }

  async function checkDurableFiles(): Promise<void> {
    const names = [...durable.keys()];
    const sums = await launcher(['exec', '--stick', mount, '--', 'sha256sum', ...names]);
    assert.equal(sums.exitCode, 0, sums.stderr);
    const found = new Map(
      sums.stdout
        .trim()
        .split('\n')
        .map((line) => {
          const [sum, name] = line.trim().split(/\s+/);
          return [name!, sum!] as const;
        }),
    );
    for (const [name, sum] of durable)
      assert.equal(found.get(name), sum, `${name}: fsync'd before the removal, then ${found.has(name) ? 'different' : 'missing'}`);
  }

  /** Pulls the stick; returns when QEMU is gone, with the latency. */
  async function pullOut(qemuPid: number): Promise<number> {
    const holder = JSON.parse(readFileSync(stickLayout(stick.root).lockFile, 'utf8')) as LockHolder;
    assert.ok(holder.control?.privateDir && existsSync(holder.control.privateDir));
    bindfs!.kill('SIGKILL');
    const latency = await timeUntil(() => !processAlive(qemuPid), 10_000);
    assert.ok(latency >= 0, 'QEMU was still running 10 s after the stick was pulled');
    latencies.push(latency);
    assert.ok(latency <= TEARDOWN_BOUND_MS, `QEMU gone after ${latency.toFixed(0)} ms`);
    // Host-side state: the control directory is gone, no QEMU of this stick runs.
    assert.ok(await waitUntil(() => !existsSync(holder.control!.privateDir!), 5_000), `${holder.control!.privateDir} is still there`);
    assert.deepEqual(await qemuPidsFor(mount), []);
    return latency;
  }

  function assertRecovered(recovery: RecoveryReport | undefined): void {
    assert.ok(recovery, 'the launch after a removal reports no recovery');
    assert.equal(recovery.ok, true, recovery.summary);
    assert.equal(recovery.disks.length, 1);
    assert.equal(recovery.disks[0]!.status, 'clean', recovery.summary);
    assert.match(recovery.summary, /did not end cleanly; recovery: default\.qcow2 clean/);
  }

  it('1: a detached session: QEMU is killed within the bound, the session process exits, nothing stays on the host', async () => {
    const started = await launcherJson<StatusJson>(['run', '--detach', '--stick', mount, ...loginArgs('tester')], asTester);
    assert.equal(started.exitCode, 0, started.stderr);
    assert.equal(started.json.recovery, undefined);
    await writeWhileRunning(1);
    await pullOut(started.json.qemuPid);
    assert.ok(await waitUntil(() => !processAlive(started.json.pid), 5_000), 'the session process did not exit');
    // The lock stays on the stick (nothing was written to it after the removal).
    assert.equal(JSON.parse(readFileSync(stickLayout(stick.root).lockFile, 'utf8')).pid, started.json.pid);
    // While it is out, status says the stick cannot be read.
    const away = await launcher(['status', '--stick', mount]);
    assert.equal(away.exitCode, 9);
    assert.match(away.stderr, /cannot be read \(ENOTCONN\): was it removed\?/);
  });

  it('2: a foreground run after the replug reports its recovery on stdout; pulled again, it says what happened and exits 15', async () => {
    await plugIn();
    const status = await launcher(['status', '--stick', mount]);
    assert.equal(status.exitCode, 8);
    assert.match(
      status.stderr,
      /the last session, launcher run --detach \(pid \d+ on .*\), did not end cleanly \(the stick was pulled out, or the launcher was killed\)/,
    );
    const run = execa(launcherPath, ['run', '--stick', mount, ...loginArgs('tester')], {
      input: `${passphrase}\n`,
      reject: false,
      env: { NO_COLOR: '1' },
      all: false,
    });
    let stderr = '';
    run.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    assert.ok(await waitUntil(() => stderr.includes("attached to default's console"), 180_000), `the guest did not come up:\n${stderr}`);
    await checkDurableFiles();
    await writeWhileRunning(2);
    const qemu = await qemuPidsFor(mount);
    assert.equal(qemu.length, 1);
    await pullOut(qemu[0]!);
    const ended = await run;
    assert.equal(ended.exitCode, 15, ended.stderr);
    assert.match(String(ended.stdout), /the last session \(launcher run --detach .*\) did not end cleanly; recovery: default\.qcow2 clean/);
    assert.match(
      String(ended.stderr),
      /the stick was removed; the guest was stopped; your disk is encrypted and was last flushed at \d\d:\d\d:\d\d; plug the stick back in and run launcher again to check it/,
    );
  });

  it("3: again detached, after a replug: recovery reported in --json, every fsync'd file intact", async () => {
    await plugIn();
    const started = await launcherJson<StatusJson>(['run', '--detach', '--stick', mount, ...loginArgs('tester')], asTester);
    assert.equal(started.exitCode, 0, started.stderr);
    assertRecovered(started.json.recovery);
    await checkDurableFiles();
    await writeWhileRunning(3);
    await pullOut(started.json.qemuPid);
    assert.ok(await waitUntil(() => !processAlive(started.json.pid), 5_000), 'the session process did not exit');
  });

  it("after the last replug: recovery, every file fsync'd before any removal is there, and qemu-img check finds the disk clean", async () => {
    await plugIn();
    const started = await launcherJson<StatusJson>(['run', '--detach', '--stick', mount, ...loginArgs('tester')], asTester);
    assert.equal(started.exitCode, 0, started.stderr);
    assertRecovered(started.json.recovery);
    assert.equal(durable.size, 9);
    await checkDurableFiles();
    const stopped = await launcher(['stop', '--stick', mount]);
    assert.equal(stopped.exitCode, 0, stopped.stderr);
    const layout = stickLayout(stick.root);
    const user = await login(layout, 'tester', passphrase);
    try {
      const checked = await checkDisk(findQemuImg(linuxHost, stick.root), personalDiskPath(layout, 'tester', 'default'), { key: user.diskKey });
      assert.equal(checked.status, 'clean', JSON.stringify(checked));
    } finally {
      user.diskKey.fill(0);
    }
    assert.equal(existsSync(layout.lockFile), false);
  });
});
