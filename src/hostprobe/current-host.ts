// The one place that chooses the host adapter.
import { darwinHost } from './darwin.ts';
import type { HostAdapter } from './host-adapter.ts';
import { linuxHost } from './linux.ts';
import { windowsHost } from './windows.ts';

const adapters: Partial<Record<NodeJS.Platform, HostAdapter>> = {
  linux: linuxHost,
  win32: windowsHost,
  darwin: darwinHost,
};

export function currentHostAdapter(): HostAdapter {
  const adapter = adapters[process.platform];
  if (!adapter) throw new Error(`pocketvm does not support ${process.platform} hosts`);
  return adapter;
}
