// Finds the QEMU to run: the portable bundle on the stick first (a host with
// nothing installed must work), then POCKETVM_QEMU, then the host's PATH.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { QemuMissingError } from '../errors.ts';
import type { HostAdapter } from '../hostprobe/host-adapter.ts';

export interface QemuBinaries {
  system: string;
  source: 'stick' | 'env' | 'path';
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function findQemu(host: HostAdapter, stickRoot: string | undefined, env: NodeJS.ProcessEnv = process.env): QemuBinaries {
  const name = `qemu-system-x86_64${host.executableSuffix}`;
  if (stickRoot) {
    const bundled = join(stickRoot, '.pocketvm', 'qemu', host.platform, name);
    if (executable(bundled)) return { system: bundled, source: 'stick' };
  }
  const override = env['POCKETVM_QEMU'];
  if (override) {
    if (executable(override)) return { system: override, source: 'env' };
    throw new QemuMissingError(override, 'POCKETVM_QEMU names a file that is not an executable QEMU; fix or unset it');
  }
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (dir && executable(join(dir, name))) return { system: join(dir, name), source: 'path' };
  }
  throw new QemuMissingError(name, host.qemuInstallHint);
}
