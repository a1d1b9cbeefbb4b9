// Network\Enabled as the launch reads it (src/session/network-setting.ts):
// unset or true is on; only a bool false turns it off, in any layer that wins.
import assert from 'node:assert/strict';
import type { RegValue } from '../../src/guestregistry/value.ts';
import { networkEnabled } from '../../src/session/network-setting.ts';

function registryWith(value: RegValue | undefined) {
  return { get: (key: string, name: string) => (key === 'Network' && name === 'Enabled' && value ? { value, layer: 'user' } : undefined) } as never;
}

describe('Network\\Enabled', () => {
  it('is on when unset or true, off only when a bool false', () => {
    assert.equal(networkEnabled(registryWith(undefined)), true);
    assert.equal(networkEnabled(registryWith({ type: 'bool', data: true })), true);
    assert.equal(networkEnabled(registryWith({ type: 'bool', data: false })), false);
  });
});
