// The lines the launcher sends pocketvm-customize (payload/appliance-rootfs/usr/bin/pocketvm-customize):
// one step a line, in the given order, every argument base64 so a space, a
// quote or a newline in a password, path or command cannot split a line; then
// `end`, then the copied files' bytes raw, as many as each copy line says.
import assert from 'node:assert/strict';
import { customizeScript } from '../../src/appliance/customize-handler.ts';

const unb64 = (text: string) => Buffer.from(text, 'base64').toString('utf8');

describe('customizeScript', () => {
  it('writes one line a step, in order, each argument base64', () => {
    const script = customizeScript([
      { kind: 'hostname', hostname: 'web1' },
      { kind: 'user', name: 'bob', password: 'two words; $(rm -rf /)' },
      { kind: 'user', name: 'carol' },
      { kind: 'key', name: 'bob', key: 'ssh-ed25519 AAAA bob@x\n' },
      { kind: 'copy', path: '/etc/my file', contentBase64: Buffer.from('a\nb').toString('base64'), from: 'f' },
      { kind: 'firstboot', command: 'echo "hi" > /x' },
      { kind: 'generalize' },
    ]);
    const end = script.indexOf('\nend\n');
    assert.equal(script.subarray(end + 5).toString(), 'a\nb', 'the copied bytes come after `end`, raw');
    const lines = script
      .subarray(0, end + 1)
      .toString()
      .split('\n');
    assert.equal(lines.pop(), '', 'ends with a newline');
    assert.deepEqual(
      lines.map((l) => l.split(' ')[0]),
      ['hostname', 'user', 'user', 'key', 'copy', 'firstboot', 'generalize'],
    );
    for (const line of lines)
      assert.ok(
        line
          .split(' ')
          .slice(1)
          .every((arg) => /^[A-Za-z0-9+/=]+$/.test(arg)),
        line,
      );
    const [, name, password] = lines[1]!.split(' ');
    assert.deepEqual([unb64(name!), unb64(password!)], ['bob', 'two words; $(rm -rf /)']);
    assert.equal(lines[2]!.split(' ').length, 2, 'a user without a password has no second argument');
    assert.deepEqual(lines[4]!.split(' ').slice(1), [Buffer.from('/etc/my file').toString('base64'), '3'], 'a copy line: the path and the size');
    assert.equal(unb64(lines[5]!.split(' ')[1]!), 'echo "hi" > /x');
  });
});
