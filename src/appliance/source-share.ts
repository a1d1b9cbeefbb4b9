// `launcher files share NAME` (docs/files.md, "Sharing"): an open source
// served to the host over WebDAV and SMB by servers inside the appliance
// (payload/appliance-rootfs/usr/bin/pocketvm-share), reached through QEMU
// user-mode networking. The appliance's network is restricted from its
// first boot (restrict=on: nothing leaves it); a share adds one `hostfwd`
// per protocol, bound to the host's 127.0.0.1 only, on a port free right
// now, and removes them when it stops. The credential is random, made here,
// handed to the guest on stdin and printed once; it is not kept.
import { currentPlatform } from '../platform/current.ts';
import type { HostPlatform } from '../platform/host-platform.ts';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { ShareError } from '../errors.ts';
import type { QmpClient } from '../vmm/qmp-client.ts';

/** The user both servers accept; the password is what guards a share. */
export const SHARE_USER = 'pocketvm';
/** The only address a share listens on, on the host. */
export const SHARE_HOST = '127.0.0.1';
/** libslirp's netdev, as src/vmm/qemu-args.ts names it. */
const NETDEV = 'net0';

/** What `files share` prints, and `files list` (without the password). */
export interface ShareInfo {
  readOnly: boolean;
  user: string;
  webdav: { port: number; url: string };
  smb: { port: number; url: string };
  /** The owner files written through the share get inside the source: the person on the host. */
  owner: { uid: number; gid: number };
  since: string;
}

/** Ports inside the appliance: one pair per SCSI target, so shares never collide there. */
export function guestPorts(target: number): { dav: number; smb: number } {
  return { dav: 10_000 + target, smb: 20_000 + target };
}

/** A random password: 24 characters of base64url (144 bits), nothing a shell or a URL would trip on. */
export function newPassword(): string {
  return randomBytes(18).toString('base64url');
}

/** Whose files a share writes: this process's user (the person running the launcher); 1000 where there are no uids (Windows). */
export function hostOwner(): { uid: number; gid: number } {
  return { uid: process.getuid?.() ?? 1000, gid: process.getgid?.() ?? 1000 };
}

/** A TCP port free on 127.0.0.1 right now (the kernel's pick); a race with another program is caught by hostfwd_add failing. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, SHARE_HOST, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function monitor(qmp: QmpClient, command: string): Promise<string> {
  return qmp.execute<string>('human-monitor-command', { 'command-line': command });
}

/** Forwards a free port on the host's 127.0.0.1 to `guestPort`; its number. */
export async function forwardPort(qmp: QmpClient, guestPort: number): Promise<number> {
  let last = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    // hostfwd_add answers with text: empty when it worked, a complaint when not.
    last = (await monitor(qmp, `hostfwd_add ${NETDEV} tcp:${SHARE_HOST}:${port}-:${guestPort}`)).trim();
    if (!last) return port;
  }
  throw new ShareError(`no port could be forwarded to the appliance: ${last}`, { details: { reason: 'no-port' } });
}

export async function unforwardPort(qmp: QmpClient, port: number): Promise<void> {
  await monitor(qmp, `hostfwd_remove ${NETDEV} tcp:${SHARE_HOST}:${port}`);
}

export function shareUrls(name: string, davPort: number, smbPort: number): Pick<ShareInfo, 'webdav' | 'smb'> {
  return {
    webdav: { port: davPort, url: `http://${SHARE_HOST}:${davPort}/` },
    smb: { port: smbPort, url: `smb://${SHARE_HOST}:${smbPort}/${name}` },
  };
}

/** How a person opens it from this host's file manager. */
export function openHints(info: ShareInfo, fileManager: HostPlatform['shareFileManager'] = currentPlatform().shareFileManager): string[] {
  if (fileManager === 'explorer')
    return [
      `Explorer: \\\\${SHARE_HOST}@${info.webdav.port}\\DavWWWRoot (WebDAV; Explorer speaks SMB on port 445 only, which a person without administrator rights cannot use)`,
    ];
  if (fileManager === 'finder') return [`Finder: Go > Connect to Server, ${info.webdav.url} or ${info.smb.url}`];
  return [`GNOME Files: Other Locations > Connect to Server, dav://${SHARE_HOST}:${info.webdav.port}/ or ${info.smb.url}`];
}
