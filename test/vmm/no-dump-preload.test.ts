// QEMU not dumpable (src/vmm/no-dump-preload.c): execve resets the flag, so
// the preload sets it inside QEMU before main(). Started the way the launcher
// starts it (findQemu's arguments and environment, behind the host adapter's
// setpriv/prlimit wrapper), as the unprivileged user nobody, since root owns a
// root process's /proc files either way. Not dumpable: /proc/<pid>/mem and
// environ are root's and a same-user reader is refused.
// Test tier: integration (starts QEMU).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readlinkSync, statSync } from 'node:fs';
import { chmod, cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { buildLinuxQemuBundle, DEBIAN_QEMU } from '../../build/stick/qemu-bundle.ts';
import { ensureCheckoutNoDumpPreload } from '../../build/stick/no-dump-preload.ts';
import { linuxHost } from '../../src/hostprobe/linux.ts';
import { findQemu, type QemuBinaries } from '../../src/vmm/qemu-binary.ts';
import { NOBODY, runAsNobody } from '../runtime/as-nobody.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const QEMU_ARGS = ['-machine', 'none', '-nodefaults', '-no-user-config', '-display', 'none', '-S', '-monitor', 'none'];

/** Starts `qemu` as nobody and returns the owners of its /proc files and whether a same-user cat of environ works. */
async function observe(qemu: QemuBinaries): Promise<{ mem: number; environ: number; sameUserReads: boolean }> {
  const guarded = linuxHost.orphanGuard(qemu.system, [...(qemu.prefixArgs ?? []), ...QEMU_ARGS]);
  const [command, args] = runAsNobody(guarded.command, guarded.args);
  const child = execa(command, args, { stdio: 'ignore', reject: false, env: { ...qemu.env } });
  try {
    const pid = child.pid!;
    // setpriv and prlimit exec QEMU in the same process; so does the bundled loader (its exe is ld-linux).
    const isQemu = () => /qemu-system|ld-linux/.test(readlinkSync(`/proc/${pid}/exe`));
    for (let i = 0; i < 400 && !isQemu(); i++) await sleep(25);
    assert.ok(isQemu(), readlinkSync(`/proc/${pid}/exe`));
    await sleep(200); // past the loader and its constructors
    let sameUserReads = true;
    try {
      execFileSync(...runAsNobody('cat', [`/proc/${pid}/environ`]), { stdio: 'pipe' });
    } catch {
      sameUserReads = false;
    }
    return { mem: statSync(`/proc/${pid}/mem`).uid, environ: statSync(`/proc/${pid}/environ`).uid, sameUserReads };
  } finally {
    child.kill('SIGKILL');
    await child;
  }
}

describe('QEMU not dumpable (Linux preload)', function () {
  this.timeout(180_000);
  before(function () {
    if (process.platform !== 'linux' || process.getuid?.() !== 0 || !existsSync(DEBIAN_QEMU.binaries.system)) this.skip();
  });

  it("the host's QEMU from a checkout (LD_PRELOAD): not dumpable; without the preload it is", async () => {
    ensureCheckoutNoDumpPreload(root);
    const withPreload = findQemu(linuxHost, undefined, { PATH: '/usr/bin' }, root);
    assert.equal(withPreload.notDumpable, true);
    const plain: QemuBinaries = { system: withPreload.system, source: 'path' };
    assert.deepEqual(await observe(plain), { mem: NOBODY, environ: NOBODY, sameUserReads: true }, 'the control QEMU is dumpable');
    assert.deepEqual(await observe(withPreload), { mem: 0, environ: 0, sameUserReads: false });
  });

  it("the stick's portable QEMU (the loader's --preload): not dumpable; a bundle without the preload still starts QEMU", async () => {
    const built = await buildLinuxQemuBundle({ root });
    const stick = await mkdtemp(join(tmpdir(), 'pocketvm-nodump-'));
    await chmod(stick, 0o755); // nobody runs the bundle from it
    try {
      const dir = join(stick, '.pocketvm', 'qemu', 'linux-x64');
      await cp(built.dir, dir, { recursive: true });
      const qemu = findQemu(linuxHost, stick, { PATH: '' });
      assert.equal(qemu.notDumpable, true);
      assert.deepEqual(await observe(qemu), { mem: 0, environ: 0, sameUserReads: false });
      await rm(join(dir, 'lib', 'pocketvm-no-dump.so'));
      const without = findQemu(linuxHost, stick, { PATH: '' });
      assert.match(without.notice!, /QEMU runs dumpable/);
      assert.deepEqual(await observe(without), { mem: NOBODY, environ: NOBODY, sameUserReads: true });
    } finally {
      await rm(stick, { recursive: true, force: true });
    }
  });
});
