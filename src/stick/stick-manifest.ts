// The manifest of a built stick (.pocketvm/manifest.json): the sha256 and
// size of every file the stick builder put there (launchers, executables,
// addons, QEMU bundles, payloads). `launcher verify` checks all of it;
// `run` and `demo` check what they are about to trust (this platform's
// launcher and the guest's payload) and refuse to start when it differs.
// Files that change in use (users/, run/, per-host verdicts) are not in it.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { PayloadError, StickError, StickTamperedError } from '../errors.ts';
import { replaceFile } from '../primitives/atomic-replace.ts';

export const MANIFEST_PATH = '.pocketvm/manifest.json';
export const MANIFEST_FORMAT = 1;

const fileEntry = z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), bytes: z.number().int().nonnegative() });
const manifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  version: z.string(),
  createdAt: z.string(),
  files: z.record(z.string(), fileEntry),
});

export type StickManifest = z.infer<typeof manifestSchema>;
export type ManifestEntry = z.infer<typeof fileEntry>;

export type StickComponent = 'launcher' | 'qemu' | 'payload' | 'other';

/** Which part of the stick a manifest path belongs to (for messages and sizes). */
export function componentOf(path: string): StickComponent {
  if (path.startsWith('.pocketvm/bin/') || /^launcher(\.exe|\.cmd)?$/.test(path)) return 'launcher';
  if (path.startsWith('.pocketvm/qemu/')) return 'qemu';
  if (path.startsWith('payload/')) return 'payload';
  return 'other';
}

export interface ManifestProblem {
  path: string;
  problem: 'missing' | 'differs';
  component: StickComponent;
}

export interface VerifyProgress {
  step: 'verify';
  message: string;
  done: number;
  total: number;
  unit?: 'bytes';
}

export interface VerifyResult {
  version: string;
  checkedFiles: number;
  checkedBytes: number;
  problems: ManifestProblem[];
}

export async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function onDisk(root: string, path: string): string {
  return join(root, ...path.split('/'));
}

/** Hashes `paths` (stick-relative, `/`-separated) under `root` and writes the manifest. */
export async function writeManifest(root: string, paths: string[], version: string, onProgress?: (event: VerifyProgress) => void): Promise<StickManifest> {
  const files: Record<string, ManifestEntry> = {};
  const sorted = [...new Set(paths)].filter((p) => p !== MANIFEST_PATH).sort();
  for (const [index, path] of sorted.entries()) {
    onProgress?.({ step: 'verify', message: `hashing ${path}`, done: index, total: sorted.length });
    const full = onDisk(root, path);
    files[path] = { sha256: await sha256Of(full), bytes: (await stat(full)).size };
  }
  const manifest: StickManifest = { format: MANIFEST_FORMAT, version, createdAt: new Date().toISOString(), files };
  const target = onDisk(root, MANIFEST_PATH);
  await replaceFile(target, `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** The stick's manifest, or undefined for a stick without one (made by init-stick). */
export async function readManifest(root: string): Promise<StickManifest | undefined> {
  let text: string;
  try {
    text = await readFile(onDisk(root, MANIFEST_PATH), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new StickTamperedError(`${MANIFEST_PATH} on ${root} is not valid JSON`, {
      hint: 'copy a complete stick again (launcher make-stick)',
      details: { file: MANIFEST_PATH },
    });
  }
  const result = manifestSchema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new StickTamperedError(`${MANIFEST_PATH} on ${root} is invalid at ${issue?.path.join('.') || 'the top'}: ${issue?.message ?? 'unknown problem'}`, {
      details: { file: MANIFEST_PATH },
    });
  }
  return result.data;
}

/** Checks the files the manifest lists (those `include` accepts), naming each missing or different one. */
export async function verifyAgainst(
  root: string,
  manifest: StickManifest,
  options: { include?: (path: string) => boolean; onProgress?: (event: VerifyProgress) => void } = {},
): Promise<VerifyResult> {
  const paths = Object.keys(manifest.files)
    .filter(options.include ?? (() => true))
    .sort();
  const problems: ManifestProblem[] = [];
  let checkedBytes = 0;
  // Progress in bytes under one message: a bar on a terminal, one line in a log.
  const total = paths.reduce((sum, path) => sum + manifest.files[path]!.bytes, 0);
  const message = `checking ${paths.length} files against the manifest`;
  for (const path of paths) {
    options.onProgress?.({ step: 'verify', message, done: checkedBytes, total, unit: 'bytes' });
    const expected = manifest.files[path]!;
    const full = onDisk(root, path);
    let size: number;
    try {
      size = (await stat(full)).size;
    } catch {
      problems.push({ path, problem: 'missing', component: componentOf(path) });
      continue;
    }
    // A different size needs no hashing to be a difference.
    if (size !== expected.bytes || (await sha256Of(full)) !== expected.sha256) problems.push({ path, problem: 'differs', component: componentOf(path) });
    checkedBytes += size;
  }
  options.onProgress?.({ step: 'verify', message, done: total, total, unit: 'bytes' });
  return { version: manifest.version, checkedFiles: paths.length, checkedBytes, problems };
}

/** `launcher verify`: the whole stick. */
export async function verifyStick(root: string, onProgress?: (event: VerifyProgress) => void): Promise<VerifyResult> {
  const manifest = await readManifest(root);
  if (!manifest)
    throw new StickError(
      `${root} has no ${MANIFEST_PATH}: it was not made by make-stick, so there is nothing to verify against`,
      'make a complete stick with `launcher make-stick DIR` or `node build.js stick DIR`',
    );
  return verifyAgainst(root, manifest, onProgress ? { onProgress } : {});
}

export function describeProblems(problems: ManifestProblem[]): string {
  const named = problems
    .slice(0, 5)
    .map((p) => `${p.path} (${p.problem})`)
    .join(', ');
  return problems.length > 5 ? `${named} and ${problems.length - 5} more` : named;
}

/**
 * Before a launch: the launcher for this platform (entries and
 * `.pocketvm/bin/<platform>/`) and the guest's payload must be what the stick
 * was built with. A stick without a manifest (init-stick, ./demo-stick) is not
 * checked here; its payload still is, against SHA256SUMS.
 */
export async function checkBeforeLaunch(root: string, guest: string, platform: string): Promise<void> {
  const manifest = await readManifest(root);
  if (!manifest) return;
  // An image guest's base is left to the launch (docs/images.md, "How the base
  // is checked"): its blocks are checked as the guest reads them against the
  // guest.json checked here, or the whole of it against its content-addressed
  // name when it has no block list. Hashing it here too would put the whole
  // base (1.8 GiB for the desktop) back on every launch's critical path.
  const isBase = (path: string) => path.startsWith(`payload/${guest}/`) && /^base-[0-9a-f]{64}\.ext4$/.test(path.slice(`payload/${guest}/`.length));
  const include = (path: string) =>
    (path.startsWith(`.pocketvm/bin/${platform}/`) || path.startsWith(`payload/${guest}/`) || /^launcher(\.exe|\.cmd)?$/.test(path)) && !isBase(path);
  const { problems } = await verifyAgainst(root, manifest, { include });
  const payload = problems.filter((p) => p.component === 'payload');
  const hint = 'this stick was changed or damaged since it was made; `launcher verify` lists every difference; copy a complete stick again';
  if (payload.length > 0) {
    throw new PayloadError(`the ${guest} payload on ${root} differs from the stick's manifest: ${describeProblems(payload)}`, {
      hint,
      details: { problems: payload },
    });
  }
  if (problems.length > 0) {
    throw new StickTamperedError(`the launcher on ${root} differs from the stick's manifest: ${describeProblems(problems)}`, { hint, details: { problems } });
  }
}
