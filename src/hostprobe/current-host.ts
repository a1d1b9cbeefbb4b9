// This host's adapter: the probe for the OS src/platform/current.ts names.
import { currentPlatform } from '../platform/current.ts';
import type { HostOs } from '../platform/host-platform.ts';
import { darwinHost } from './darwin.ts';
import type { HostAdapter } from './host-adapter.ts';
import { linuxHost } from './linux.ts';
import { windowsHost } from './windows.ts';

const adapters: Record<HostOs, HostAdapter> = {
  linux: linuxHost,
  windows: windowsHost,
  darwin: darwinHost,
};

export function currentHostAdapter(): HostAdapter {
  return adapters[currentPlatform().os];
}
