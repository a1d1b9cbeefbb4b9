// The launcher not dumpable (src/runtime/not-dumpable.ts, through koffi) and
// RLIMIT_CORE 0 through setrlimit (the macOS path, same call on Linux). What
// is observed is the kernel's: a process that is not dumpable has its
// /proc/<pid>/mem and environ owned by root, so another process of the same
// user cannot read them. The processes run as an unprivileged user (nobody)
// because root owns a root process's files either way.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { NOBODY, runAsNobody } from './as-nobody.ts';

const moduleUrl = new URL('../../src/runtime/not-dumpable.ts', import.meta.url).href;

/** A Node child as nobody that optionally calls forbidDumps(), reports, and waits on stdin. */
async function nodeChild(guard: boolean): Promise<{ pid: number; report: string; stop: () => Promise<void> }> {
  const script = `${guard ? `import { forbidDumps } from ${JSON.stringify(moduleUrl)}; console.log(JSON.stringify(forbidDumps()));` : 'console.log("{}");'}
    process.stdin.resume();`;
  const child = spawn(...runAsNobody(process.execPath, ['--input-type=module', '-e', script]), { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  return {
    pid: child.pid!,
    report: line.toString().trim(),
    stop: async () => {
      child.stdin.end();
      await once(child, 'exit');
    },
  };
}

describe('the launcher not dumpable (Linux, koffi)', function () {
  this.timeout(60_000);
  before(function () {
    if (process.platform !== 'linux' || process.getuid?.() !== 0) this.skip();
  });

  it("forbidDumps(): /proc/<pid>/mem and environ become root's; without it they stay the user's", async () => {
    const guarded = await nodeChild(true);
    const plain = await nodeChild(false);
    try {
      assert.deepEqual(JSON.parse(guarded.report), { notDumpable: true, coreLimit: false });
      assert.equal(statSync(`/proc/${plain.pid}/mem`).uid, NOBODY, "the control process is dumpable (its files are its user's)");
      assert.equal(statSync(`/proc/${guarded.pid}/mem`).uid, 0);
      assert.equal(statSync(`/proc/${guarded.pid}/environ`).uid, 0);
      // Another process of the same user is refused; the control one is not.
      assert.throws(() => execFileSync(...runAsNobody('cat', [`/proc/${guarded.pid}/environ`]), { stdio: 'pipe' }));
      assert.ok(execFileSync(...runAsNobody('cat', [`/proc/${plain.pid}/environ`])).length > 0);
    } finally {
      await guarded.stop();
      await plain.stop();
    }
  });

  it('setCoreLimitZero(): RLIMIT_CORE 0/0 set from inside through setrlimit', () => {
    const out = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { setCoreLimitZero } from ${JSON.stringify(moduleUrl)};
       import { readFileSync } from 'node:fs';
       const ok = setCoreLimitZero('linux');
       console.log(JSON.stringify({ ok, limits: readFileSync('/proc/self/limits', 'utf8').split('\\n').find((l) => l.startsWith('Max core file size')) }));`,
      ],
      { encoding: 'utf8' },
    );
    const seen = JSON.parse(out) as { ok: boolean; limits: string };
    assert.equal(seen.ok, true);
    assert.match(seen.limits, /^Max core file size\s+0\s+0\s+bytes/);
    assert.doesNotMatch(readFileSync('/proc/self/limits', 'utf8'), /Max core file size\s+0\s+0\s/, 'the test process itself is left as it was');
  });
});
