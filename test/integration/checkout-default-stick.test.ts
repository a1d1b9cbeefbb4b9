// The commands exactly as a person types them in a fresh checkout, with no
// --stick and no user set up: `run --detach` makes ./demo-stick and logs its
// demo user in (the real login, with the passphrase `demo` prints), then
// `exec -- uname -r` answers with the payload's kernel. The demo stick is the
// checkout's own (git-ignored) and is left in place, as `demo` leaves it.
import assert from 'node:assert/strict';
import { launcher, payloadKernelVersion } from './harness.ts';

describe('a fresh checkout: run --detach, exec -- uname -r, stop (boots the real guest)', function () {
  this.timeout(300_000);
  after(() => launcher(['stop', '--force']));

  it('prints the payload kernel version and stops cleanly', async () => {
    const started = await launcher(['run', '--detach']);
    assert.equal(started.exitCode, 0, started.stderr);
    assert.match(started.stdout, /running in the background/);
    const uname = await launcher(['exec', '--', 'uname', '-r']);
    assert.equal(uname.exitCode, 0, uname.stderr);
    assert.equal(uname.stdout.trim(), await payloadKernelVersion());
    const whoami = await launcher(['exec', '--', 'sh', '-c', 'id -un; echo $HOME']);
    assert.equal(whoami.stdout, 'demo\n/home/demo\n');
    const stopped = await launcher(['stop']);
    assert.equal(stopped.exitCode, 0, stopped.stderr);
    assert.equal((await launcher(['status'])).exitCode, 8);
  });
});
