// The session's use of the registry before boot: Machine overrides for sizing
// and the port it adds to the machine.
import assert from 'node:assert/strict';
import { REGISTRY_PORT_NAME } from '../../src/guestregistry/guest-channel.ts';
import type { GuestRegistry } from '../../src/guestregistry/registry.ts';
import type { RegValue } from '../../src/guestregistry/value.ts';
import { REGISTRY_CHANNEL_ID, registryChannel, registrySizingOverrides } from '../../src/session/session-registry.ts';

function view(values: Record<string, RegValue>): Pick<GuestRegistry, 'get'> {
  return { get: (key, name) => (values[`${key}\\${name}`] ? { value: values[`${key}\\${name}`]!, layer: 'user' } : undefined) };
}

describe('session registry wiring', () => {
  it('reads Machine\\MemoryMiB and Machine\\Cpus as sizing overrides', () => {
    assert.deepEqual(registrySizingOverrides(view({ 'Machine\\MemoryMiB': { type: 'int32', data: 512 }, 'Machine\\Cpus': { type: 'int32', data: 2 } })), {
      memoryMiB: 512,
      cpus: 2,
    });
  });

  it('leaves out unset, non-positive or wrongly typed overrides', () => {
    assert.deepEqual(registrySizingOverrides(view({})), {});
    assert.deepEqual(registrySizingOverrides(view({ 'Machine\\MemoryMiB': { type: 'int32', data: 0 }, 'Machine\\Cpus': { type: 'string', data: '4' } })), {});
  });

  it('adds the registry as a virtio-serial port named org.pocketvm.registry.0', () => {
    const channel = registryChannel({} as GuestRegistry);
    assert.deepEqual({ id: channel.id, kind: channel.kind, name: channel.name }, { id: REGISTRY_CHANNEL_ID, kind: 'serial', name: REGISTRY_PORT_NAME });
    assert.equal(typeof channel.open, 'function');
  });
});
