// Where a stick's helper appliance keeps its address and logs (run/ on the
// stick). A module of its own, light to load: `launcher files` finds a
// running appliance through it without loading the machine and daemon code
// (each launcher start pays for what it imports; a cold `files cat` starts two).
import { join } from 'node:path';
import type { StickLayout } from '../stick/layout.ts';

/** run/appliance.json: the running appliance's socket and token. */
export function applianceAddressFile(layout: StickLayout): string {
  return join(layout.runDir, 'appliance.json');
}

export function applianceLogs(layout: StickLayout): { qemu: string; console: string; daemon: string } {
  return {
    qemu: join(layout.runDir, 'appliance.qemu.log'),
    console: join(layout.runDir, 'appliance.console.log'),
    daemon: join(layout.runDir, 'appliance.log'),
  };
}
