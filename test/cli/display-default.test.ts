import assert from 'node:assert/strict';
import { defaultDisplay } from '../../src/cli/commands/run.ts';

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
