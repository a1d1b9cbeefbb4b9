// The launch login (src/cli/login.ts) keeps the passphrase in Buffers and
// zeroes every one it was handed or read once the disk key is unwrapped, on
// success and on failure; stdin's bytes become line Buffers without a string,
// and what was read from stdin is zeroed.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MINIMUM_KDF, passphraseBytes } from '../../src/auth/passphrase.ts';
import { addUser } from '../../src/auth/users.ts';
import { loginForLaunch, splitStdinLines } from '../../src/cli/login.ts';
import { Output } from '../../src/cli/output.ts';
import { AuthError } from '../../src/errors.ts';
import { stickLayout } from '../../src/stick/layout.ts';

const zeroed = (bytes: Buffer) => bytes.length > 0 && bytes.every((b) => b === 0);

describe('launch login: the passphrase in Buffers, zeroed after use', function () {
  this.timeout(60_000);
  let parent: string;
  const out = new Output({ json: true });
  before(async () => {
    parent = await mkdtemp(join(tmpdir(), 'pocketvm-login-bytes-'));
    await mkdir(stickLayout(parent).usersRoot);
    await addUser(stickLayout(parent), 'alice', 'alice passphrase', { params: MINIMUM_KDF });
  });
  after(() => rm(parent, { recursive: true, force: true }));

  it('the right passphrase: logged in, the Buffer handed in is zeroed', async () => {
    const passphrase = passphraseBytes('alice passphrase');
    const user = await loginForLaunch(out, parent, {}, { user: 'alice', passphrase });
    assert.equal(user.diskKey.length, 32);
    user.diskKey.fill(0);
    assert.ok(zeroed(passphrase));
  });

  it('a wrong passphrase: refused, and the Buffer is zeroed all the same', async () => {
    const passphrase = passphraseBytes('not alice passphrase');
    await assert.rejects(
      loginForLaunch(out, parent, {}, { user: 'alice', passphrase }),
      (e: unknown) => e instanceof AuthError && e.details['reason'] === 'wrong-passphrase',
    );
    assert.ok(zeroed(passphrase));
  });

  it('--remember-on-this-host where there is no keychain: still logged in, the Buffer zeroed', async () => {
    const bus = process.env['DBUS_SESSION_BUS_ADDRESS'];
    delete process.env['DBUS_SESSION_BUS_ADDRESS'];
    try {
      // Out of the back-off the test above started (one failure: no wait).
      const passphrase = passphraseBytes('alice passphrase');
      const user = await loginForLaunch(out, parent, { rememberOnThisHost: true }, { user: 'alice', passphrase });
      user.diskKey.fill(0);
      assert.ok(zeroed(passphrase));
    } finally {
      if (bus !== undefined) process.env['DBUS_SESSION_BUS_ADDRESS'] = bus;
    }
  });

  it('stdin: lines as Buffers (\\r\\n, a missing last newline, an empty line), the chunks read zeroed', () => {
    const chunks = [Buffer.from('first pass'), Buffer.from('phrase\r\nsecond one\n'), Buffer.from('\nlast')];
    const lines = splitStdinLines(chunks);
    assert.deepEqual(lines.map(String), ['first passphrase', 'second one', '', 'last']);
    assert.ok(chunks.every(zeroed));
    assert.deepEqual(splitStdinLines([Buffer.from('only\n')]).map(String), ['only', '']);
    // Each line has memory of its own: zeroing one leaves the others.
    lines[0]!.fill(0);
    assert.equal(String(lines[1]), 'second one');
  });
});
