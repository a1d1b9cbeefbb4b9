// A detached session's stdout and stderr are a file on the stick. When the
// stick is pulled out, a notice printed before the presence monitor sees the
// removal (e.g. the personal disk's I/O error) fails with ENOTCONN/EIO; that
// must not kill the session before its teardown (it aborted with an uncaught
// exception, leaving its control socket's folder behind). Here: a child
// whose stderr is a file on a bindfs mount, the daemon killed as a yank does.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const hasBindfs = spawnSync('bindfs', ['--version']).status === 0 && existsSync('/dev/fuse');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('output to a device that is gone (a pulled stick under a session log)', function () {
  this.timeout(60_000);

  (hasBindfs ? it : it.skip)('drops what stderr can no longer write and runs on to its own exit code', async () => {
    const base = mkdtempSync(join(tmpdir(), 'pocketvm-output-gone-'));
    const source = join(base, 'stick');
    const mount = join(base, 'mnt');
    mkdirSync(source);
    mkdirSync(mount);
    const bindfs = spawn('bindfs', ['-f', source, mount], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100 && spawnSync('mountpoint', ['-q', mount]).status !== 0; i++) await sleep(50);
      const output = new URL('../../src/cli/output.ts', import.meta.url).href;
      const removal = new URL('../../src/session/surprise-removal.ts', import.meta.url).href;
      const script = join(base, 'child.ts');
      // Waits for the yank (its stdin closes), prints a notice into the dead
      // log, then does what the session's removal path does and exits 15.
      writeFileSync(
        script,
        `import { quietWhenReaderCloses } from ${JSON.stringify(output)};
import { detachStdioFromDeadDevice } from ${JSON.stringify(removal)};
quietWhenReaderCloses();
process.stderr.write('session started\\n');
process.stdin.resume();
process.stdin.on('end', () => {
  process.stderr.write('pocketvm: the stick failed a write of the personal disk\\n');
  setTimeout(() => { detachStdioFromDeadDevice(); process.exitCode = 15; process.stdin.pause(); }, 300);
});
`,
      );
      const log = openSync(join(mount, 'session.log'), 'a');
      const child = spawn(process.execPath, [script], { stdio: ['pipe', log, log] });
      closeSync(log);
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.on('exit', (code, signal) => resolve({ code, signal })),
      );
      await sleep(1_500);
      bindfs.kill('SIGKILL');
      await sleep(300);
      child.stdin?.end();
      const result = await exited;
      assert.deepEqual(result, { code: 15, signal: null });
    } finally {
      bindfs.kill('SIGKILL');
      spawnSync('fusermount', ['-u', '-z', mount]);
      rmSync(base, { recursive: true, force: true });
    }
  });
});
