import assert from 'node:assert/strict';
import { execSpec } from '../../src/session/exec-relay.ts';

describe('exec-relay: who runs a launcher exec command, with which environment', () => {
  it("adds the guest manifest's execEnv (the desktop's DISPLAY and XAUTHORITY) for the person and for root", () => {
    const guestEnv = { DISPLAY: ':0', XAUTHORITY: '/run/pocketvm/Xauthority' };
    const person = execSpec('dora', { path: 'xclip', args: ['-o'] }, guestEnv);
    assert.deepEqual(person.env, {
      ...guestEnv,
      HOME: '/home/dora',
      USER: 'dora',
      LOGNAME: 'dora',
      PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin',
      SHELL: '/bin/sh',
    });
    assert.equal(person.uid, 1000);
    assert.equal(execSpec('dora', { path: 'id', args: [], root: true }, guestEnv).env['DISPLAY'], ':0');
  });

  it('lets execEnv not replace who the command runs as', () => {
    const spec = execSpec('dora', { path: 'id', args: [] }, { HOME: '/root', USER: 'root', PATH: '/tmp' });
    assert.equal(spec.env['HOME'], '/home/dora');
    assert.equal(spec.env['USER'], 'dora');
    assert.equal(spec.env['PATH'], '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin');
  });

  it('adds nothing for a guest without execEnv', () => {
    assert.equal(execSpec('dora', { path: 'id', args: [] }).env['DISPLAY'], undefined);
  });
});
