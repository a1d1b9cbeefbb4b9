// Core dumps off for the launcher and the QEMU it starts (Linux): the
// launcher's RLIMIT_CORE 0 and coredump_filter 0 (src/runtime/no-core-dumps.ts),
// QEMU's RLIMIT_CORE 0 through the host adapter's prlimit wrapper
// (src/hostprobe/linux.ts), read back from the kernel in /proc.
// Test tier: integration (starts QEMU).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { linuxHost } from '../../src/hostprobe/linux.ts';

const coreLimit = (pid: number | 'self') =>
  readFileSync(`/proc/${pid}/limits`, 'utf8')
    .split('\n')
    .find((line) => line.startsWith('Max core file size'))!;

describe('no core dumps (Linux)', function () {
  before(function () {
    if (process.platform !== 'linux') this.skip();
  });

  it('the launcher: core size 0 and no mapping in a dump, inherited by what it starts', () => {
    // In a child of its own: the guard is for the whole process and cannot be undone.
    const out = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { disableCoreDumps } from ${JSON.stringify(new URL('../../src/runtime/no-core-dumps.ts', import.meta.url).href)};
       import { readFileSync } from 'node:fs';
       import { execFileSync } from 'node:child_process';
       const guard = disableCoreDumps();
       const limits = readFileSync('/proc/self/limits', 'utf8').split('\\n').find((l) => l.startsWith('Max core file size'));
       const filter = readFileSync('/proc/self/coredump_filter', 'utf8').trim();
       const child = execFileSync('sh', ['-c', 'grep "Max core file size" /proc/self/limits; cat /proc/self/coredump_filter'], { encoding: 'utf8' });
       console.log(JSON.stringify({ guard, limits, filter, child }));`,
      ],
      { encoding: 'utf8' },
    );
    const seen = JSON.parse(out) as { guard: { filter: boolean; rlimit: boolean }; limits: string; filter: string; child: string };
    assert.deepEqual(seen.guard, { filter: true, rlimit: true });
    assert.match(seen.limits, /^Max core file size\s+0\s+0\s+bytes/);
    assert.equal(Number.parseInt(seen.filter, 16), 0);
    assert.match(seen.child, /Max core file size\s+0\s+0\s+bytes/);
    assert.match(seen.child, /\n0+\n?$/);
    assert.doesNotMatch(coreLimit('self'), /size\s+0\s+0\s/, "the test process itself is left as it was (so the zeros above are the guard's)");
  });

  it('QEMU started through the host adapter: core size 0', async () => {
    const guarded = linuxHost.orphanGuard(process.env['POCKETVM_QEMU'] ?? 'qemu-system-x86_64', [
      '-machine',
      'none',
      '-nodefaults',
      '-no-user-config',
      '-display',
      'none',
      '-S',
      '-monitor',
      'none',
    ]);
    assert.ok(guarded.args.includes('--core=0:0'), JSON.stringify(guarded));
    const qemu = execa(guarded.command, guarded.args, { stdio: 'ignore', reject: false });
    try {
      const pid = qemu.pid!;
      // setpriv and prlimit exec QEMU in the same process.
      for (let i = 0; i < 200 && !/qemu-system/.test(readlinkSync(`/proc/${pid}/exe`)); i++) await sleep(25);
      assert.match(readlinkSync(`/proc/${pid}/exe`), /qemu-system/);
      assert.match(coreLimit(pid), /^Max core file size\s+0\s+0\s+bytes/);
    } finally {
      qemu.kill('SIGKILL');
      await qemu;
    }
  });
});
