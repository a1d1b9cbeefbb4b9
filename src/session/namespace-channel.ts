// The dyntable namespace in a session: with a user logged in, the launcher
// compiles this host's FIT/FET table, puts the copy-on-write NamespaceBackend
// on it and serves it with the 9P2000.L server on a network card of its own
// (src/ninep/ethernet-transport.ts). `pocketvm.9p=<mac>` on the
// kernel command line tells the guest to mount it on /host over the card
// with that address (payload/rootfs/etc/pocketvm/boot.d/40-namespace.sh,
// with the guest's 9pnet_pocketvm transport, payload/kmod/).
//
// Transport: measured in one guest by bench/ninep (docs/benchmarks.md,
// "ninep: choosing the transport"). 9P in raw Ethernet frames on a virtio-net card backed by a
// socketpair beat the two transports that need no guest module: a
// virtio-serial port, which 9pnet_fd cannot use directly (no read_iter) so a
// relay process copied every byte through two FIFOs in 4 KiB buffers, and
// user-mode networking's guestfwd, which any guest process can connect to
// and splice bytes into the launcher's 9P stream. On the card QEMU copies
// 64 KiB frames into guest memory, no guest process is involved, and only
// root can send raw frames; the card has no IP address.
import type { RegistryRuleReader } from '../dyntable/registry-rules.ts';
import type { GuestManifest } from '../payload/guest-manifest.ts';
import type { StickLayout } from '../stick/layout.ts';
import type { Machine } from '../vmm/machine.ts';
import type { StoreQuota } from '../dyntable/store-quota.ts';
import type { ChannelService, ExtraChannel } from './extra-channel.ts';
import { GUEST_USER_ID } from './personal-disk.ts';
import { LOG_LIMITS, openStickLog } from '../primitives/capped-log.ts';
import { NAMESPACE_MSIZE } from '../ninep/msize.ts';
import { watchNicTransmit } from '../vmm/nic-tx-watchdog.ts';

export const NAMESPACE_CHANNEL_ID = 'ninep';
/** The card's address (locally administered), by which the guest's boot step finds it. */
export const NAMESPACE_MAC = '02:70:76:6d:39:01';
/** On the kernel command line when the namespace is served: the guest mounts it. */
export const NAMESPACE_CMDLINE_WORD = `pocketvm.9p=${NAMESPACE_MAC}`;

export interface NamespaceChannelOptions {
  layout: StickLayout;
  guest: string;
  /** The logged-in user: their registry rules, files/ and upper/ on the stick. */
  user: string;
  /** The session's open registry (its Tables\... rules). */
  registry?: RegistryRuleReader;
  /** Fingerprints of the user's confirmations, checked with their key at login. */
  confirmed?: ReadonlySet<string>;
  manifest?: Pick<GuestManifest, 'tables'>;
  /** Where the server's diagnostics go (the guest's QEMU log on the stick). */
  logFile?: string;
  /** Seals files/ and upper/ (src/dyntable/sealed/); the session owns and zeroes it. */
  atRestKey?: Buffer;
  /** What the guest may fill of the stick through files/ and upper/ (src/session/stick-limits.ts). */
  quota?: StoreQuota;
}

/**
 * The namespace's card. Each boot attempt gets its own table and backend,
 * opened while QEMU is paused and shared by every mount of that attempt
 * (each mount is its own 9P session); both close with the channel, at
 * teardown or when the attempt fails.
 */
export function namespaceChannel(options: NamespaceChannelOptions): ExtraChannel {
  return {
    id: NAMESPACE_CHANNEL_ID,
    kind: 'nic',
    mac: NAMESPACE_MAC,
    open: async (stream, machine): Promise<ChannelService> => {
      const [{ openNamespace }, { serveNinep }, { serveEthernetTransport }] = await Promise.all([
        import('../dyntable/namespace.ts'),
        import('../ninep/server.ts'),
        import('../ninep/ethernet-transport.ts'),
      ]);
      const { backend } = await openNamespace({
        layout: options.layout,
        user: options.user,
        guest: options.guest,
        ...(options.registry ? { registry: options.registry } : {}),
        ...(options.confirmed ? { confirmed: options.confirmed } : {}),
        ...(options.manifest ? { manifest: options.manifest } : {}),
        ...(options.atRestKey ? { atRestKey: options.atRestKey } : {}),
        ...(options.quota ? { quota: options.quota } : {}),
        // The guest user (30-home.sh) owns what the guest sees, host files
        // included: every change lands in upper/ anyway, and the person at the
        // guest is the person whose host folders these are.
        owner: { uid: GUEST_USER_ID, gid: GUEST_USER_ID },
        mapHostOwner: true,
      });
      const { logFile } = options;
      // Capped and rate-limited (src/primitives/capped-log.ts): a guest can provoke these lines in a loop.
      const logWriter = logFile ? openStickLog(logFile, LOG_LIMITS.transport) : undefined;
      const log = logWriter ? (message: string) => logWriter.line(`launcher: ${message}`) : () => {};
      const transport = serveEthernetTransport(stream, {
        maxMessage: NAMESPACE_MSIZE,
        log,
        // Reads are placed straight into the guest reader's pages when guest RAM is shared.
        ...(machine.guestRam ? { guestRam: machine.guestRam } : {}),
        openSession: (session) => serveNinep(session, backend, { log, closeBackend: false, maxMsize: NAMESPACE_MSIZE }),
      });
      // Placed reads stop before a reset, power-off or suspend (src/vmm/guest-life.ts).
      machine.life?.add(transport);
      // QEMU 7.2 can stop taking the card's transmit queue, and /host then hangs (src/vmm/nic-tx-watchdog.ts).
      const watchdog = machine.qmp ? watchNicTransmit(machine.qmp, { nicId: NAMESPACE_CHANNEL_ID, activity: () => transport.counters.frames, log }) : undefined;
      const leaveLife = watchdog ? machine.life?.add(watchdog) : undefined;
      return {
        close: async () => {
          watchdog?.stop();
          leaveLife?.();
          await transport.close();
          await backend.close?.();
          await logWriter?.close();
        },
      };
    },
  };
}

/**
 * After a resume the guest still holds the mount it had with the launcher
 * that suspended it, which this launcher's transport answers ESTALE: the
 * guest drops it and mounts afresh (lib/pocketvm/namespace-remount.sh).
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
