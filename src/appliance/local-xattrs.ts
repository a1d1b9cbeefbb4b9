// A file's user.* extended attributes, read in the appliance by `files stat`,
// set again on the copy `files get` makes on the host. Node has no xattr API:
// the host's own tool does it (setfattr from attr on Linux, xattr on macOS).
// Only user.*: trusted.* and security.* are the source system's (they need
// root, or mean something only to its kernel: SELinux labels, capabilities).
import { execFile } from 'node:child_process';
import { currentPlatform } from '../platform/current.ts';

export interface CarriedXattrs {
  /** The names set on the local copy. */
  carried: string[];
  /** Names not set (other namespaces, or all when the host cannot), and why. */
  skipped: string[];
  why?: string;
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(command, args, { timeout: 30_000 }, (error, _stdout, stderr) =>
      error ? reject(new Error(String(stderr).trim().split('\n').at(-1) || error.message)) : resolve(),
    ),
  );
}

/** Sets `xattrs` (name → base64 value, as FileEntry holds them) on `path`, the user.* ones; never throws. */
export async function carryXattrs(path: string, xattrs: Record<string, string> | undefined): Promise<CarriedXattrs> {
  const names = Object.keys(xattrs ?? {});
  const user = names.filter((name) => name.startsWith('user.'));
  const result: CarriedXattrs = { carried: [], skipped: names.filter((name) => !name.startsWith('user.')) };
  if (result.skipped.length > 0) result.why = 'only user.* attributes are set on a copy (trusted.* and security.* belong to the source system)';
  if (user.length === 0) return result;
  for (const name of user) {
    const hex = Buffer.from(xattrs![name]!, 'base64').toString('hex');
    try {
      const set = currentPlatform().setXattrCommand(path, name, hex);
      if (!set) throw new Error(`this host (${currentPlatform().os}) has no extended attributes the launcher can set`);
      await run(set.command, set.args);
      result.carried.push(name);
    } catch (error) {
      result.skipped.push(name);
      const message =
        (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'setfattr is not installed (Debian: apt-get install attr)' : (error as Error).message;
      result.why = result.why ? `${result.why}; ${message}` : message;
    }
  }
  return result;
}
