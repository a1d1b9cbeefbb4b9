// A libvirt session daemon of a test's or bench's own (qemu:///session, its
// sockets and state under a folder it is given), started and stopped by the
// caller: the export test boots its libvirt export under it, and
// bench/boot-share.ts the images adapted for libvirt.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { waitUntil } from './harness.ts';

export interface LibvirtSession {
  virsh: (...args: string[]) => Promise<string>;
  stop: () => Promise<void>;
}

/**
 * Starts libvirtd with its state under `home`. As root it runs as nobody:
 * libvirt maps root's qemu:///session to the system daemon, and a session's
 * QEMU runs as its user (so the files a domain names must be nobody's to read).
 */
export async function startLibvirtd(home: string): Promise<LibvirtSession> {
  const root = process.getuid?.() === 0;
  // Short names: the agent's socket lands under XDG_CONFIG_HOME and a UNIX socket path has 107 bytes at most.
  for (const dir of ['r', 'c', 'k', 'd']) await mkdir(join(home, dir), { recursive: true, mode: 0o700 });
  if (root) await execa('chown', ['-R', '65534:65534', home]);
  const env = {
    HOME: home,
    XDG_RUNTIME_DIR: join(home, 'r'),
    XDG_CONFIG_HOME: join(home, 'c'),
    XDG_CACHE_HOME: join(home, 'k'),
    XDG_DATA_HOME: join(home, 'd'),
  };
  const as = (command: string[]) => (root ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...command] : command);
  const [daemon, ...daemonArgs] = as(['libvirtd', '--timeout', '0']);
  const child = execa(daemon!, daemonArgs, { env, extendEnv: true, reject: false, all: true });
  const virsh = async (...args: string[]) => {
    const [command, ...rest] = as(['virsh', '-c', 'qemu:///session', ...args]);
    const result = await execa(command!, rest, { env, reject: false, all: true });
    if (result.exitCode !== 0) throw new Error(`virsh ${args.join(' ')}: ${result.all}`);
    return String(result.stdout);
  };
  const up = await waitUntil(() => existsSync(join(home, 'r', 'libvirt', 'libvirt-sock')), 60_000, 200);
  if (!up) {
    child.kill('SIGTERM');
    const ended = await child;
    throw new Error(`libvirtd did not open its session socket: ${String(ended.all ?? '').slice(-500)}`);
  }
  return {
    virsh,
    stop: async () => {
      child.kill('SIGTERM');
      await child;
    },
  };
}
