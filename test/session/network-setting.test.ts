// Network\Enabled as the launch reads it (src/session/network-setting.ts):
// unset or true is on; only a bool false turns it off, in any layer that wins.
import assert from 'node:assert/strict';
import type { RegValue } from '../../src/guestregistry/value.ts';
import { describeNetwork, networkEnabled, networkStatus } from '../../src/session/network-setting.ts';

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

describe('the network in launcher status', () => {
  it('names the mode, the leased address and the host loopback only where the guest has them', () => {
    assert.deepEqual(networkStatus('none'), { mode: 'none' });
    assert.deepEqual(networkStatus('isolated'), { mode: 'isolated', leasedAddress: '10.0.2.15' });
    assert.deepEqual(networkStatus('user'), { mode: 'user', leasedAddress: '10.0.2.15', hostLoopback: '10.0.2.2' });
    assert.match(describeNetwork(networkStatus('isolated')), /^network: off \(Network\\Enabled is false/);
  });
});
