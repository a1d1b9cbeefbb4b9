// The dyntable namespace in a session: with a user logged in, the launcher
// compiles this host's FIT/FET table, puts the copy-on-write NamespaceBackend
// on it and serves it with the 9P2000.L server on the virtio-serial port
// org.pocketvm.9p.0. `pocketvm.9p` on the kernel command line tells the
// guest to mount it on /host (payload/rootfs/etc/pocketvm/boot.d/40-namespace.sh).
//
// Transport: a virtio-serial port, not user-mode networking's guestfwd to a
// private chardev. bench/ninep --guestfwd measured both in one guest (TCG,
// median of 3; README, "The namespace in the guest"): the port moves more data
// (write 26.5 against 15.8 MiB/s, read 32 against 31, readdir 45k against 42k
// entries/s) and guestfwd answers small requests faster (stat 525/s against
// 402/s: on the port, each request passes a relay process in the guest). The
// port won on the rest: guestfwd needs a network card and QEMU's slirp in
// every session, and any guest process can connect to the forwarded address
// and splice its bytes into the launcher's 9P stream (tried: 8 bytes from a
// `nobody` process ended the session and /host hung). A virtio port opens
// for root alone, one opener at a time, on the virtio-serial device the
// agent already uses.
import { appendFile } from 'node:fs/promises';
import type { RegistryRuleReader } from '../dyntable/registry-rules.ts';
import type { GuestManifest } from '../payload/manifest.ts';
import type { StickLayout } from '../stick/layout.ts';
import type { Machine } from '../vmm/machine.ts';
import type { ChannelService, ExtraChannel } from './extra-channel.ts';
import { GUEST_USER_ID } from './personal-disk.ts';

export const NAMESPACE_CHANNEL_ID = 'ninep';
/** The port the guest's boot step looks for under /dev/virtio-ports/. */
export const NAMESPACE_PORT_NAME = 'org.pocketvm.9p.0';
/** On the kernel command line when the namespace is served: the guest mounts it. */
export const NAMESPACE_CMDLINE_WORD = 'pocketvm.9p';

export interface NamespaceChannelOptions {
  layout: StickLayout;
  guest: string;
  /** The logged-in user: their registry rules, files/ and upper/ on the stick. */
  user: string;
  /** The session's open registry (its Tables\... rules). */
  registry?: RegistryRuleReader;
  manifest?: Pick<GuestManifest, 'tables'>;
  /** Where the server's diagnostics go (the guest's QEMU log on the stick). */
  logFile?: string;
}

/**
 * The namespace's port. Each boot attempt gets its own table and backend: the
 * server closes its backend when its stream ends, which a failed attempt's
 * does (the accelerator fallback then boots again).
 */
export function namespaceChannel(options: NamespaceChannelOptions): ExtraChannel {
  return {
    id: NAMESPACE_CHANNEL_ID,
    kind: 'serial',
    name: NAMESPACE_PORT_NAME,
    open: async (stream): Promise<ChannelService> => {
      const [{ openNamespace }, { serveNinep }] = await Promise.all([import('../dyntable/namespace.ts'), import('../dyntable/ninep/server.ts')]);
      const { backend } = await openNamespace({
        layout: options.layout,
        user: options.user,
        guest: options.guest,
        ...(options.registry ? { registry: options.registry } : {}),
        ...(options.manifest ? { manifest: options.manifest } : {}),
        // The guest user (30-home.sh) owns what the guest sees, host files
        // included: every change lands in upper/ anyway, and the person at the
        // guest is the person whose host folders these are.
        owner: { uid: GUEST_USER_ID, gid: GUEST_USER_ID },
        mapHostOwner: true,
      });
      const { logFile } = options;
      const log = logFile ? (message: string) => void appendFile(logFile, `launcher: ${message}\n`).catch(() => {}) : undefined;
      const server = serveNinep(stream, backend, log ? { log } : {});
      return { close: () => server.close() };
    },
  };
}

/**
 * After a resume the guest still holds the mount it had with the launcher
 * that suspended it, whose fids this launcher's server never issued: the
 * guest drops it and its relay and mounts afresh (lib/pocketvm/namespace-remount.sh).
 * False when that did not work; /host then answers errors until remounted.
 */
export async function remountNamespace(machine: Machine): Promise<boolean> {
  try {
    const result = await machine.agent.run('/bin/sh', ['/lib/pocketvm/namespace-remount.sh'], { timeoutMs: 90_000 });
    return result.exitCode === 0;
  } catch {
    return false;
  }
}
