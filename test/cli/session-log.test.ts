// A detached session's output is its log on the stick (run/session.log):
// whatever the session process prints, through stdout or stderr, passes the
// capped, rate-limited log (src/cli/session-log.ts), so it stays under its
// cap however much is printed. Run in a child process whose stdout and
// stderr are one file, as `run --detach` starts the session.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe("the session log (a detached session's output)", () => {
  it('stays under its cap and coalesces repeats, whoever prints', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pocketvm-session-log-'));
    try {
      const log = join(dir, 'session.log');
      writeFileSync(log, 'an earlier session\n');
      const script = join(dir, 'child.ts');
      const module = new URL('../../src/cli/session-log.ts', import.meta.url).href;
      writeFileSync(
        script,
        `import { capSessionOutput } from ${JSON.stringify(module)};
capSessionOutput({ maxBytes: 32 * 1024, mode: 'lines', linesPerSecond: 20, burst: 200, open: 'append' });
console.log('session started');
for (let i = 0; i < 50_000; i++) process.stderr.write('pocketvm: the guest registry channel refused a request\\n');
for (let i = 0; i < 50_000; i++) console.log(\`notice \${i}\`);
process.stdout.write('last words\\n', () => process.stderr.write('flushed\\n'));
`,
      );
      const fd = openSync(log, 'a');
      const child = spawnSync(process.execPath, [script], { stdio: ['ignore', fd, fd], timeout: 60_000 });
      closeSync(fd);
      assert.equal(child.status, 0);
      const text = readFileSync(log, 'utf8');
      assert.ok(statSync(log).size <= 32 * 1024, `${statSync(log).size} bytes`);
      assert.ok(
        text.startsWith(
          'an earlier session\nsession started\npocketvm: the guest registry channel refused a request\n… the line above repeated 49999 more times\nnotice 0\n',
        ),
        text.slice(0, 300),
      );
      assert.match(text, /^… \d+ lines dropped \(more than 20 a second\)$/m);
      assert.ok(!text.includes('notice 49999'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
