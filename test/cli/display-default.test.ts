// Which display `run` picks without --display, and `--display window` refused
// before any sign-in on a QEMU without a window of its own.
// Test tier: integration (starts the launcher and QEMU to list its displays)
import assert from 'node:assert/strict';
import { defaultDisplay } from '../../src/cli/commands/run.ts';
import { qemuDisplays } from '../../src/vmm/qemu-displays.ts';
import { freshStick, launcher } from '../integration/harness.ts';

describe('run: which display without --display', () => {
  const none = { stdin: false, stdout: false };

  it('the console page when the launcher has no terminal at all (a double-click)', () => {
    assert.equal(defaultDisplay({}, none), 'page');
  });

  it("the terminal's console as before when either end is a terminal, the passphrase comes on stdin, or it runs detached", () => {
    assert.equal(defaultDisplay({}, { stdin: true, stdout: false }), 'none');
    assert.equal(defaultDisplay({}, { stdin: false, stdout: true }), 'none');
    assert.equal(defaultDisplay({ passphraseStdin: true }, none), 'none');
    assert.equal(defaultDisplay({ detach: true }, none), 'none');
  });
});

describe('run --display window on a QEMU without a window of its own', function () {
  this.timeout(120_000);

  it('is refused with exit 19 before any sign-in, naming what the QEMU offers', async function () {
    const displays = await qemuDisplays('qemu-system-x86_64');
    if (displays.includes('gtk') || displays.includes('sdl')) this.skip();
    const stick = await freshStick();
    try {
      const run = await launcher(['run', '--display', 'window', '--stick', stick.root, '--user', 'nobody', '--passphrase-stdin'], { input: '' });
      assert.equal(run.exitCode, 19, run.stderr);
      assert.match(run.stderr, /this QEMU has no window of its own \(it offers: .*none/);
      assert.doesNotMatch(run.stderr, /passphrase|nobody/);
    } finally {
      await stick.dispose();
    }
  });
});
