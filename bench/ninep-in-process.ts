// bench/ninep-in-process: the second table of bench/ninep alone, no guest:
// one listing of --files host files and a walk + getattr + clunk of each,
// through the 9P server on the session's namespace (built-in rules,
// copy-on-write Documents) and on LocalDirBackend (the plain passthrough),
// on the same folder, same run, alternating. Quick to repeat while working on
// the server side (e.g. under --cpu-prof); prints medians and ratios, never
// fails on a time.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openNamespace } from '../src/dyntable/namespace.ts';
import { discoverHostContext } from '../src/dyntable/name-mapping.ts';
import { LocalDirBackend } from '../test/ninep/local-backend.ts';
import { openGuestPayload } from '../src/payload/guest-payload.ts';
import { GUEST_USER_ID } from '../src/session/personal-disk.ts';
import { stickLayout } from '../src/stick/layout.ts';
import { benchOptions, median } from './bench-options.ts';
import { inProcessFigures } from './ninep-in-process-figures.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const { runs, json, say } = benchOptions(5);
const at = process.argv.indexOf('--files');
const FILES = at >= 0 && Number.isInteger(Number(process.argv[at + 1])) && Number(process.argv[at + 1]) > 0 ? Number(process.argv[at + 1]) : 10_000;

const parent = await mkdtemp(join(tmpdir(), 'pocketvm-bench-ninep-ip-'));
try {
  const home = join(parent, 'home');
  const documents = join(home, 'Documents');
  const stick = join(parent, 'stick');
  await mkdir(join(documents, 'many'), { recursive: true });
  await mkdir(join(home, '.ssh'), { recursive: true });
  await writeFile(join(home, '.ssh', 'id_ed25519'), 'secret');
  await mkdir(stick, { recursive: true });
  say(`bench/ninep-in-process: ${FILES} files in ${documents}/many`);
  for (let i = 0; i < FILES; i++) await writeFile(join(documents, 'many', `f${i}`), '');
  const payload = await openGuestPayload(join(root, 'payload'), 'default');
  const host = await discoverHostContext({ home, env: { HOME: home }, stickRoot: stick });
  const opened = await openNamespace({
    layout: stickLayout(stick),
    user: 'bench',
    guest: 'default',
    manifest: payload.manifest,
    host,
    owner: { uid: GUEST_USER_ID, gid: GUEST_USER_ID },
    mapHostOwner: true,
  });
  const local = await LocalDirBackend.open(documents);
  const samples = { namespace: [] as Array<{ readdirOps: number; lookupOps: number }>, local: [] as Array<{ readdirOps: number; lookupOps: number }> };
  try {
    for (let run = 0; run < runs; run++) {
      const first = run % 2 === 0;
      if (first) samples.namespace.push(await inProcessFigures(opened.backend, ['Documents', 'many'], FILES));
      samples.local.push(await inProcessFigures(local, ['many'], FILES));
      if (!first) samples.namespace.push(await inProcessFigures(opened.backend, ['Documents', 'many'], FILES));
      say(
        `run ${run + 1}/${runs}: namespace readdir ${samples.namespace.at(-1)!.readdirOps.toFixed(0)}/s lookups ${samples.namespace.at(-1)!.lookupOps.toFixed(0)}/s; LocalDir readdir ${samples.local.at(-1)!.readdirOps.toFixed(0)}/s lookups ${samples.local.at(-1)!.lookupOps.toFixed(0)}/s`,
      );
    }
  } finally {
    await opened.backend.close?.();
  }
  const med = (which: 'namespace' | 'local', key: 'readdirOps' | 'lookupOps') => median(samples[which].map((s) => s[key]));
  const lines = (['readdirOps', 'lookupOps'] as const).map((key) => ({
    key,
    namespace: med('namespace', key),
    local: med('local', key),
    ratio: med('namespace', key) / med('local', key),
  }));
  if (json) process.stdout.write(`${JSON.stringify({ runs, files: FILES, lines, samples }, null, 2)}\n`);
  else {
    const fmt = (v: number) => v.toFixed(0).padStart(10);
    process.stdout.write(
      [
        `bench/ninep-in-process, median of ${runs}: 9P server + backend, no guest`,
        `${''.padEnd(36)}${'namespace'.padStart(10)}${'LocalDir'.padStart(10)}  ratio`,
        ...lines.map(
          (l) =>
            `  ${(l.key === 'readdirOps' ? `readdir ${FILES} host files (/s)` : 'walk + getattr + clunk (/s)').padEnd(34)}${fmt(l.namespace)}${fmt(l.local)}  ${l.ratio.toFixed(2).padStart(5)}`,
        ),
      ].join('\n') + '\n',
    );
  }
} finally {
  await rm(parent, { recursive: true, force: true });
}
