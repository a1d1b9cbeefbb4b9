// One saved helper-appliance state for the integration tier's sticks. A
// fresh stick has none, so its first `files`/`image`/`import` command boots
// the appliance and saves one (about a minute under TCG, more under load);
// a stick that has one resumes it (a quarter of that: docs/benchmarks.md,
// "files"). The state is the same for every stick of this checkout (its key
// is the appliance payload's checksums, QEMU's version and the machine's
// arguments, never the stick's path: src/appliance/appliance-state.ts), so
// the first stick that saved one hands it on, through .cache/, to every
// later stick made with `freshStick({ savedAppliance: true })`. A state
// copied in under another key (the payload was rebuilt since) is not used:
// the appliance boots and saves its own, as on any stick, and that one is
// handed on instead.
import { createHash } from 'node:crypto';
import { createReadStream, constants } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type ApplianceStateMeta, applianceStateDir } from '../../src/appliance/appliance-state.ts';
import { stickLayout } from '../../src/stick/layout.ts';

const SHARED = join(import.meta.dirname, '..', '..', '.cache', 'appliance-state');

interface StatePair {
  dir: string;
  meta: ApplianceStateMeta;
}

/** The state pair (`KEY.json` + `KEY.vmstate`) in `dir`, when there is one whose record parses. */
async function statePair(dir: string): Promise<StatePair | undefined> {
  const record = (await readdir(dir).catch(() => [])).find((name) => name.endsWith('.json'));
  if (!record) return undefined;
  try {
    return { dir, meta: JSON.parse(await readFile(join(dir, record), 'utf8')) as ApplianceStateMeta };
  } catch {
    return undefined;
  }
}

/** Copies a pair, the state first and its record last (the appliance takes a state without its record for incomplete). */
async function copyPair(from: StatePair, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  const { key } = from.meta;
  for (const name of [`${key}.vmstate`, `${key}.json`]) {
    const partial = join(to, `${name}.partial-${process.pid}`);
    // A copy, never a link: appliance-resume.test.ts damages its stick's state in place.
    await copyFile(join(from.dir, name), partial, constants.COPYFILE_FICLONE);
    await rename(partial, join(to, name));
  }
}

/** Gives a fresh stick the shared state, when there is one; says whether it did. */
export async function seedApplianceState(stickRoot: string): Promise<boolean> {
  const shared = await statePair(SHARED);
  if (!shared) return false;
  await copyPair(shared, applianceStateDir(stickLayout(stickRoot)));
  return true;
}

/**
 * Before a stick is removed: its saved state becomes the shared one when the
 * shared one is missing or under another key, and only when the state is
 * whole (its length and SHA-256 as recorded: a test may have damaged it).
 */
export async function harvestApplianceState(stickRoot: string): Promise<void> {
  const found = await statePair(applianceStateDir(stickLayout(stickRoot)));
  if (!found) return;
  const shared = await statePair(SHARED);
  if (shared?.meta.key === found.meta.key) return;
  const state = join(found.dir, `${found.meta.key}.vmstate`);
  const info = await stat(state).catch(() => undefined);
  if (info?.size !== found.meta.bytes) return;
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(state)) hash.update(chunk as Buffer);
  if (hash.digest('hex') !== found.meta.sha256) return;
  await rm(SHARED, { recursive: true, force: true });
  await copyPair(found, SHARED);
}
