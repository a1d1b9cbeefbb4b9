// The import direction of src/, written down once. Lowest layer first; a file
// may import files of its own folder and of any LOWER layer, never of a higher
// one ("up") nor of another folder of its own layer ("around": two peers that
// know each other are one concern, or need a third thing below both):
//
//   errors.ts → primitives → platform → runtime, payload
//     → stick, auth, vmm, ninep, guestregistry → hostprobe, dyntable
//     → session, audit → console, appliance → images → guests → export → cli
//
// src/ never imports build/ (build/ is a tool above the launcher and may
// import src/; a checkout's launcher loads build/ by a computed path through
// src/cli/checkout-build.ts). Type-only imports count: they are the design's
// dependencies even where they vanish at run time.
//
// test/architecture/import-direction.test.ts fails on an import against this
// table; bench/layout.ts counts them.
import type { ImportEdge, ImportGraph } from './import-graph.ts';

/** Folders of src/ by layer, lowest first. A sub-folder listed on its own is its own unit. */
export const LAYERS: ReadonlyArray<{ folders: readonly string[]; holds: string }> = [
  { folders: ['.'], holds: 'src/errors.ts: the typed errors every layer throws' },
  { folders: ['primitives'], holds: 'atomic replace, directory sync, byte queues, capped logs: no knowledge of pocketvm' },
  { folders: ['platform'], holds: 'every OS difference at run time, one record per OS chosen in current.ts' },
  { folders: ['runtime', 'payload'], holds: 'the running launcher (its files, native addons, dump guards); the guest payload on disk' },
  { folders: ['stick', 'auth', 'vmm', 'ninep', 'guestregistry'], holds: 'the parts: the stick, users and keys, QEMU, the 9P server, the registry store' },
  { folders: ['hostprobe', 'dyntable'], holds: 'what the parts are combined into: the host profile, the tables and namespace' },
  { folders: ['session', 'audit'], holds: 'a launch, start to teardown; the host-writes audit' },
  {
    folders: ['console', 'appliance'],
    holds: 'the console page: its HTTP server, access checks, the screen bridge; the helper appliance behind launcher files (issue 20)',
  },
  { folders: ['images'], holds: 'the image store and catalog on the stick: import, inspect, capture, customize, adapt through the appliance (issues 21, 22)' },
  {
    folders: ['guests'],
    holds: 'several guests on a stick: their records, states and lifecycle (issue 19), guests made from catalog images (issue 21)',
  },
  { folders: ['export'], holds: 'a guest described once and written for another engine: libvirt, OVA, QEMU, Proxmox, NoCloud (issue 22)' },
  { folders: ['cli'], holds: 'commands, prompts, output' },
];

/**
 * Imports allowed against the table for now, each with why; matched by the
 * importing and imported file. The lead empties this list as the branches that
 * remove them merge; an entry that no longer matches an import fails the test,
 * so the list cannot outlive its reason.
 */
export const KNOWN_EXCEPTIONS: ReadonlyArray<{ from: string; to: string; why: string }> = [
  {
    from: 'src/ninep/ethernet-transport.ts',
    to: 'src/vmm/guest-ram.ts',
    why: 'the 9P transport places replies in the guest RAM file (type GuestRamFile); a narrow interface in ninep that the RAM file satisfies removes it (perf-ns is editing these files this round)',
  },
  {
    from: 'src/ninep/ram-placement.ts',
    to: 'src/vmm/guest-ram.ts',
    why: 'as above: ram-placement reads the GuestRamFile type',
  },
];

/** Cycles between files allowed for now, each with why (files sorted as cycles() gives them). */
export const KNOWN_CYCLES: ReadonlyArray<{ files: readonly string[]; why: string }> = [];

export interface Unit {
  /** `stick`, or `.` for files directly in src/. */
  folder: string;
  layer: number;
}

/** The unit of the table a src/ file belongs to (its longest listed folder), or undefined for a folder the table does not list. */
export function unitOf(file: string): Unit | undefined {
  if (!file.startsWith('src/')) return undefined;
  const inside = file.slice('src/'.length);
  if (!inside.includes('/')) return { folder: '.', layer: 0 };
  let best: Unit | undefined;
  LAYERS.forEach(({ folders }, layer) => {
    for (const folder of folders) {
      if (folder !== '.' && inside.startsWith(`${folder}/`) && (!best || folder.length > best.folder.length)) best = { folder, layer };
    }
  });
  return best;
}

export interface DirectionProblem {
  edge: ImportEdge;
  kind: 'up' | 'around' | 'into build' | 'unlisted folder';
  text: string;
}

const describe = (edge: ImportEdge): string => `${edge.from}:${edge.line} imports ${edge.to}${edge.typeOnly ? ' (type only)' : ''}`;

/** Every import of a src/ file against the table (exceptions included: the caller decides). */
export function directionProblems(graph: ImportGraph): DirectionProblem[] {
  const problems: DirectionProblem[] = [];
  for (const edge of graph.edges) {
    if (!edge.from.startsWith('src/')) continue;
    if (!edge.to.startsWith('src/')) {
      if (edge.to === 'build.js' || edge.to.startsWith('build/'))
        problems.push({ edge, kind: 'into build', text: `${describe(edge)}: src/ never imports build/ (see src/cli/checkout-build.ts)` });
      continue;
    }
    const from = unitOf(edge.from);
    const to = unitOf(edge.to);
    if (!from || !to) {
      const file = from ? edge.to : edge.from;
      problems.push({ edge, kind: 'unlisted folder', text: `${file}: its folder is not in the layer table (test/architecture/layers.ts); add it to a layer` });
      continue;
    }
    if (from.folder === to.folder || to.layer < from.layer) continue;
    const kind = to.layer > from.layer ? 'up' : 'around';
    problems.push({
      edge,
      kind,
      text: `${describe(edge)}: ${from.folder} (layer ${from.layer}) ${kind === 'up' ? 'may not import the higher' : 'may not import its peer'} ${to.folder} (layer ${to.layer})`,
    });
  }
  return problems;
}

export const isKnownException = (edge: ImportEdge): boolean => KNOWN_EXCEPTIONS.some(({ from, to }) => edge.from === from && edge.to === to);
