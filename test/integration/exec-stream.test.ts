// `launcher exec` as a real remote command (issue 16): stdin forwarded and
// closed at EOF, output streamed as it comes, exit status and signals passed
// back, Ctrl-C and --timeout end the command in the guest, --guest refused
// when it names another guest; and the attached console as a terminal: the
// person's login, its window size, Ctrl-C reaching the program.
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { addStickUser, freshStick, launcher, launcherPath, loginArgs, waitUntil } from './harness.ts';

const passphrase = 'exec stream passphrase';

describe('exec as a remote command, and the attached console (boots the real guest)', function () {
  this.timeout(400_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, 'alice', passphrase);
  });
  after(async () => {
    await launcher(['stop', '--force', '--stick', stick.root]);
    await stick.dispose();
  });

  describe('exec', () => {
    before(async () => {
      const started = await launcher(['run', '--detach', '--stick', stick.root, ...loginArgs('alice')], { input: `${passphrase}\n` });
      assert.equal(started.exitCode, 0, started.stderr);
    });
    after(async () => {
      await launcher(['stop', '--stick', stick.root]);
    });
    const exec = (args: string[], input?: string) => launcher(['exec', '--stick', stick.root, ...args], input === undefined ? {} : { input });
    /** The guest's processes whose command line has `text` (ps as root). */
    const guestProcesses = async (text: string) => {
      const ps = await exec(['--root', '--', 'ps', '-o', 'pid,args']);
      assert.equal(ps.exitCode, 0, ps.stderr);
      return ps.stdout.split('\n').filter((line) => line.includes(text));
    };

    it('forwards stdin and closes it at EOF: echo hi | exec -- cat prints hi', async () => {
      const result = await exec(['--', 'cat'], 'hi\n');
      assert.equal(result.exitCode, 0, result.stderr);
      assert.equal(result.stdout, 'hi\n');
    });

    it('seq 1 100000 | exec -- wc -l prints 100000', async () => {
      const input = Array.from({ length: 100_000 }, (_, i) => `${i + 1}\n`).join('');
      const result = await exec(['--', 'wc', '-l'], input);
      assert.equal(result.exitCode, 0, result.stderr);
      assert.equal(result.stdout.trim(), '100000');
    });

    it('streams output as it comes, before the command ends', async () => {
      const child = execa(launcherPath, ['exec', '--stick', stick.root, '--', 'sh', '-c', 'echo first; read line; echo "second $line"'], {
        reject: false,
        env: { NO_COLOR: '1' },
      });
      let text = '';
      let ended = false;
      void child.then(() => (ended = true));
      child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
      // "first" arrives while the command still waits for its stdin.
      assert.ok(await waitUntil(() => text.includes('first'), 60_000), 'the first line was streamed before the command ended');
      assert.equal(ended, false);
      child.stdin?.end('go\n');
      const result = await child;
      assert.equal(result.exitCode, 0);
      assert.equal(text, 'first\nsecond go\n');
    });

    it('passes exit codes and signals back (128+N)', async () => {
      assert.equal((await exec(['--', 'sh', '-c', 'exit 3'])).exitCode, 3);
      assert.equal((await exec(['--', 'sh', '-c', 'kill -TERM $$'])).exitCode, 143);
      const missing = await exec(['--', 'no-such-command']);
      assert.equal(missing.exitCode, 127);
      assert.match(missing.stderr, /no-such-command: command not found/);
    });

    it('Ctrl-C on exec -- sleep 100 ends the sleep in the guest (exit 130)', async () => {
      const child = execa(launcherPath, ['exec', '--stick', stick.root, '--', 'sleep', '100'], { reject: false, env: { NO_COLOR: '1' } });
      // Wait until the sleep runs in the guest, then interrupt.
      const deadline = Date.now() + 60_000;
      while ((await guestProcesses('sleep 100')).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
      child.kill('SIGINT');
      const result = await child;
      assert.equal(result.exitCode, 130, String(result.stderr));
      assert.deepEqual(await guestProcesses('sleep 100'), []);
    });

    it('--timeout ends the command in the guest and names it', async () => {
      const result = await exec(['--timeout', '2', '--', 'sleep', '101']);
      assert.equal(result.exitCode, 7, result.stderr);
      assert.match(result.stderr, /`sleep 101` did not finish within 2\.0 s/);
      assert.doesNotMatch(result.stderr, /chpst/);
      assert.deepEqual(await guestProcesses('sleep 101'), []);
    });

    it("leaves a command's background children running after it exits, as ssh and docker exec do", async () => {
      const result = await exec(['--', 'sh', '-c', 'sleep 102 & echo started']);
      assert.equal(result.exitCode, 0, result.stderr);
      assert.equal(result.stdout, 'started\n');
      // Checked after exec returned, twice: the child must outlive the command, not just its last frame.
      await new Promise((r) => setTimeout(r, 1_500));
      const left = await guestProcesses('sleep 102');
      assert.equal(left.length, 1, left.join('\n'));
      const pid = left[0]!.trim().split(/\s+/)[0]!;
      assert.equal((await exec(['--root', '--', 'kill', pid])).exitCode, 0);
      assert.deepEqual(await guestProcesses('sleep 102'), []);
    });

    it('--guest naming another guest is refused (exit 8)', async () => {
      const result = await exec(['--guest', 'other', '--', 'true']);
      assert.equal(result.exitCode, 8);
      assert.match(result.stderr, /no guest "other" is running .*; default is/);
    });
  });

  describe('the attached console (under a pseudo-terminal)', () => {
    it('logs in as the person, has the window size, and Ctrl-C interrupts sleep', async () => {
      // script(1) gives the launcher a terminal of 40x100; what is written to its stdin is typed.
      const command = `stty rows 40 cols 100; exec ${launcherPath} run --stick ${stick.root} --user alice`;
      const child = execa('script', ['-qfec', command, '/dev/null'], { reject: false, env: { NO_COLOR: '1' }, timeout: 300_000 });
      let text = '';
      child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
      const waitFor = async (what: RegExp, ms = 240_000) => assert.ok(await waitUntil(() => what.test(text), ms), `waited for ${what}:\n${text.slice(-2000)}`);
      const type = (keys: string) => child.stdin?.write(keys);
      try {
        await waitFor(/passphrase for alice/);
        type(`${passphrase}\r`);
        await waitFor(/pocketvm:~\$ /);
        type('stty size; id -un\r');
        await waitFor(/40 100\s+alice\s/, 60_000);
        type('sleep 100\r');
        await new Promise((r) => setTimeout(r, 3_000));
        type('\x03');
        type('echo "status-$?"\r');
        await waitFor(/status-130/, 60_000);
      } finally {
        type('\x1d');
      }
      const result = await child;
      assert.equal(result.exitCode, 0, text.slice(-2000));
    });
  });
});
