// A running session's launcher and QEMU are not dumpable (one real boot):
// another process of the same user can read neither's memory or environment.
// The session runs as the unprivileged user nobody, because a root process's
// /proc files are root's whatever its dumpable flag; not dumpable shows as
// /proc/<pid>/mem and environ owned by root, and a same-user `cat` refused.
// The checkout's preload is built first (as `node build.js test` does).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { chmod, chown, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { ensureCheckoutNoDumpPreload } from '../../build/stick/no-dump-preload.ts';
import { NOBODY, runAsNobody } from '../runtime/as-nobody.ts';
import { addStickUser, launcher, launcherPath, qemuPidsFor, repoRoot, waitUntil, processAlive } from './harness.ts';

async function chownTree(dir: string, uid: number): Promise<void> {
  await chown(dir, uid, uid);
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) await chown(join(entry.parentPath, entry.name), uid, uid);
}

describe('a running session is not dumpable (boots the real guest once, as nobody)', function () {
  this.timeout(400_000);
  let parent: string;
  let stick: string;
  let sessionPid: number;
  const asNobody = (args: string[], input?: string) => {
    const [command, wrapped] = runAsNobody('env', [`HOME=${parent}`, 'NO_COLOR=1', `PATH=${process.env['PATH']}`, launcherPath, ...args]);
    return execa(command, wrapped, { reject: false, timeout: 300_000, ...(input === undefined ? { stdin: 'ignore' as const } : { input }) });
  };

  before(async function () {
    if (process.platform !== 'linux' || process.getuid?.() !== 0) this.skip();
    ensureCheckoutNoDumpPreload(repoRoot);
    parent = await mkdtemp(join(tmpdir(), 'pocketvm-nodump-'));
    await chmod(parent, 0o755);
    stick = join(parent, 'stick');
    assert.equal((await launcher(['init-stick', stick])).exitCode, 0);
    await addStickUser(stick, 'alice', 'alice passphrase');
    await chownTree(parent, NOBODY);
    const started = await asNobody(
      ['run', '--detach', '--accel', 'tcg', '--stick', stick, '--user', 'alice', '--passphrase-stdin', '--json'],
      'alice passphrase\n',
    );
    assert.equal(started.exitCode, 0, String(started.stderr));
    sessionPid = (JSON.parse(String(started.stdout)) as { pid: number }).pid;
  });
  after(async () => {
    if (!parent) return;
    if (stick) await asNobody(['stop', '--force', '--stick', stick]);
    await rm(parent, { recursive: true, force: true });
  });

  const refusedToSameUser = (pid: number) => {
    try {
      execFileSync(...runAsNobody('cat', [`/proc/${pid}/environ`]), { stdio: 'pipe' });
      return false;
    } catch {
      return true;
    }
  };

  it("the session's launcher: /proc/<pid>/mem and environ are root's; nobody's cat of environ is refused", () => {
    assert.match(execFileSync('ps', ['-o', 'user=', '-p', String(sessionPid)], { encoding: 'utf8' }), /nobody/, 'the session runs as nobody');
    assert.match(readFileSync(`/proc/${sessionPid}/cmdline`, 'utf8'), /\0session\0/);
    assert.equal(statSync(`/proc/${sessionPid}/mem`).uid, 0);
    assert.equal(statSync(`/proc/${sessionPid}/environ`).uid, 0);
    assert.ok(refusedToSameUser(sessionPid));
  });

  it("the session's QEMU: the same, and the session log has no 'QEMU runs dumpable' notice", async () => {
    const [qemu] = await qemuPidsFor(stick);
    assert.ok(qemu, 'QEMU is running');
    assert.match(execFileSync('ps', ['-o', 'user=', '-p', String(qemu)], { encoding: 'utf8' }), /nobody/);
    assert.equal(statSync(`/proc/${qemu}/mem`).uid, 0);
    assert.equal(statSync(`/proc/${qemu}/environ`).uid, 0);
    assert.ok(refusedToSameUser(qemu));
    assert.doesNotMatch(readFileSync(join(stick, 'run', 'session.log'), 'utf8'), /QEMU runs dumpable/);
  });

  it('the guest still answers (exec) and stops cleanly', async () => {
    const ran = await asNobody(['exec', '--stick', stick, '--', 'echo', 'alive']);
    assert.equal(String(ran.stdout).trim(), 'alive', String(ran.stderr));
    assert.equal((await asNobody(['stop', '--stick', stick])).exitCode, 0);
    assert.ok(await waitUntil(() => !processAlive(sessionPid), 60_000));
  });
});
