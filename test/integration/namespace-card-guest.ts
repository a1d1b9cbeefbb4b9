// A guest whose namespace card is served by the launcher's Ethernet 9P
// transport on a plain folder (LocalDirBackend), as the transport tests
// need it: placed reads and writes (with a shared RAM file), guest resets
// and kexec (with a GuestLife the transport joins). The payload's own boot
// step mounts the card on /host.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { type EthernetTransport, serveEthernetTransport } from '../../src/ninep/ethernet-transport.ts';
import { LocalDirBackend } from '../ninep/local-backend.ts';
import { serveNinep } from '../../src/ninep/server.ts';
import { openGuestPayload } from '../../src/payload/guest-payload.ts';
import { NAMESPACE_CHANNEL_ID, NAMESPACE_CMDLINE_WORD, NAMESPACE_MAC } from '../../src/session/namespace-channel.ts';
import { NAMESPACE_MSIZE } from '../../src/ninep/msize.ts';
import type { GuestLife } from '../../src/vmm/guest-life.ts';
import type { GuestRamFile } from '../../src/vmm/guest-ram.ts';
import type { Machine } from '../../src/vmm/machine.ts';
import { fdChannels } from '../../src/vmm/qemu-process.ts';
import { repoRoot } from './harness.ts';
import { bootTestMachine } from './test-machine.ts';

export interface NamespaceCardGuest {
  machine: Machine;
  transport: EthernetTransport;
  /** Runs a script as root in the guest; a non-zero exit fails the test. Its stdout. */
  sh(script: string): Promise<string>;
  /** Kills QEMU if it still runs, then closes the transport and the RAM file. */
  dispose(): Promise<void>;
}

export async function bootWithNamespaceCard(
  logDir: string,
  shared: string,
  options: { ram?: GuestRamFile; life?: GuestLife; log?: (line: string) => void; shTimeoutMs?: number } = {},
): Promise<NamespaceCardGuest> {
  const { ram, life } = options;
  const payload = await openGuestPayload(join(repoRoot, 'payload'), 'default');
  const backend = await LocalDirBackend.open(shared);
  let transport: EthernetTransport | undefined;
  let machine: Machine | undefined;
  const dispose = async () => {
    machine?.kill();
    if (machine) await machine.process.exited;
    await transport?.close();
    ram?.close();
  };
  try {
    machine = await bootTestMachine(
      logDir,
      {
        memoryMiB: 256,
        cmdline: `${payload.manifest.cmdline} ${NAMESPACE_CMDLINE_WORD}`,
        channels: fdChannels([NAMESPACE_CHANNEL_ID]),
        nics: [{ id: NAMESPACE_CHANNEL_ID, mac: NAMESPACE_MAC }],
      },
      {
        ...(ram ? { guestRam: ram } : {}),
        ...(life ? { life } : {}),
        attach: async (_qmp, streams) => {
          transport = serveEthernetTransport(streams[NAMESPACE_CHANNEL_ID]!, {
            maxMessage: NAMESPACE_MSIZE,
            openSession: (stream) => serveNinep(stream, backend, { closeBackend: false, maxMsize: NAMESPACE_MSIZE }),
            ...(ram ? { guestRam: ram } : {}),
            ...(options.log ? { log: options.log } : {}),
          });
          life?.add(transport);
        },
      },
    );
  } catch (error) {
    await dispose();
    throw error;
  }
  const guest = machine;
  const sh = async (script: string) => {
    const result = await guest.agent.run('/bin/sh', ['-c', script], { timeoutMs: options.shTimeoutMs ?? 600_000 });
    assert.equal(result.exitCode, 0, `guest: ${script}\n${result.stdout.toString()}${result.stderr.toString()}`);
    return result.stdout.toString();
  };
  return { machine: guest, transport: transport!, sh, dispose };
}
