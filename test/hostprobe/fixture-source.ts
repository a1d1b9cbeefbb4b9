// A ProbeSource made of recorded host outputs (test/hostprobe/fixtures/*.json):
// files, symlinks, command outputs, registry values, node:os facts. Anything
// the fixture does not hold is "missing", as on a host where it is absent.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { OsBasics, ProbeSource, RegistryValue } from '../../src/platform/probe-source.ts';
import { CIM_SCRIPT, driveScript } from '../../src/hostprobe/windows.ts';

export interface HostFixture {
  description: string;
  env: Record<string, string>;
  os: OsBasics;
  files?: Record<string, string>;
  links?: Record<string, string>;
  realPaths?: Record<string, string>;
  exists?: string[];
  readWrite?: string[];
  /** `command arg arg` → stdout (the Windows PowerShell scripts are written `<CIM_SCRIPT>`, `<DRIVE_SCRIPT E>`). */
  commands?: Record<string, string>;
  registry?: Record<string, RegistryValue[]>;
}

export function loadFixture(name: string): HostFixture {
  return JSON.parse(readFileSync(fileURLToPath(new URL(`./fixtures/${name}.json`, import.meta.url)), 'utf8')) as HostFixture;
}

export function fixtureSource(fixture: HostFixture, overrides: Partial<HostFixture> = {}): ProbeSource & { ran: string[] } {
  const f = { ...fixture, ...overrides };
  const ran: string[] = [];
  return {
    ran,
    env: f.env,
    os: f.os,
    readText: async (path) => f.files?.[path],
    readLink: async (path) => f.links?.[path],
    realPath: async (path) => f.realPaths?.[path] ?? path,
    exists: async (path) => (f.exists ?? []).includes(path) || path in (f.files ?? {}),
    canReadWrite: async (path) => (f.readWrite ?? []).includes(path),
    run: async (command, args) => {
      const placeholder = (arg: string) => {
        if (arg === CIM_SCRIPT) return '<CIM_SCRIPT>';
        for (const letter of 'ABCDEFGHIJKLMNOPQRSTUVWXYZ') if (arg === driveScript(letter)) return `<DRIVE_SCRIPT ${letter}>`;
        return arg;
      };
      const key = [command, ...args.map(placeholder)].join(' ');
      ran.push(key);
      return f.commands?.[key];
    },
    registryValues: async (key) => {
      const entry = Object.entries(f.registry ?? {}).find(([k]) => k.toLowerCase() === key.toLowerCase());
      return entry?.[1];
    },
  };
}
