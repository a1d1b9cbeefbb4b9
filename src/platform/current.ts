// The one place that asks which OS this process runs on.
import { darwinPlatform } from './darwin.ts';
import type { HostPlatform } from './host-platform.ts';
import { linuxPlatform } from './linux.ts';
import { windowsPlatform } from './windows.ts';

const platforms: Partial<Record<NodeJS.Platform, HostPlatform>> = {
  linux: linuxPlatform,
  win32: windowsPlatform,
  darwin: darwinPlatform,
};

/** Node's name for this OS; functions that take one (so a test can name another) default to it. */
export function nodePlatform(): NodeJS.Platform {
  return process.platform;
}

/**
 * The record of an OS by Node's name for it (default: this one), or undefined
 * for one pocketvm does not support: code that runs before a launch is refused
 * reads "no" for every capability there, and starts.
 */
export function platformOf(name: NodeJS.Platform = nodePlatform()): HostPlatform | undefined {
  return platforms[name];
}

/** This host's platform record; an OS pocketvm does not support is refused here. */
export function currentPlatform(): HostPlatform {
  const platform = platformOf();
  if (!platform) throw new Error(`pocketvm does not support ${nodePlatform()} hosts`);
  return platform;
}

/** The folder of this process's executables on a stick (`.pocketvm/bin/<folder>/`), also on an OS without a record. */
export function binFolder(): string {
  return platformOf()?.binFolder ?? `${nodePlatform()}-${process.arch}`;
}
