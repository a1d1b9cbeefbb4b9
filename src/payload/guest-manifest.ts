// The payload manifest `payload/<guest>/guest.json`: its schema, and loading
// it with errors that name the field and say what was expected.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { PayloadError } from '../errors.ts';

// Payload files are named, never pathed: a manifest cannot point outside its
// own guest folder.
const payloadFileName = z
  .string()
  .min(1)
  .regex(/^[A-Za-z0-9._-]+$/, 'a plain file name inside the guest folder (letters, digits, . _ -)')
  .refine((name) => name !== '.' && name !== '..', 'a plain file name inside the guest folder');

const guestName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'lower-case letters, digits and -, at most 32, starting with a letter or digit');

// A dynamic-table rule the guest brings (FIT/FET; src/dyntable/rules.ts).
const tableRule = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ -, at most 64'),
  table: z.enum(['FIT', 'FET']),
  guestPath: z.string().min(1).max(1024),
  hostPath: z.string().min(1).max(1024).optional(),
  mode: z.enum(['cow', 'readonly']).optional(),
  description: z.string().max(200).optional(),
});

// An image guest's read-only base (docs/images.md): its file is named by its
// content, so a stick can keep an older base while an overlay still uses it.
const baseImage = z
  .strictObject({
    file: payloadFileName,
    sha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lower-case hex digits'),
    bytes: z.int().min(1),
    /** What the payload's initramfs starts inside the image after switch_root. */
    init: z.string().regex(/^\/[A-Za-z0-9._/-]+$/, 'an absolute path inside the image'),
    /** The sha256 of each block of the base (src/payload/base-blocks.ts): a launch checks blocks as the guest reads them. */
    blocks: z
      .strictObject({
        file: payloadFileName,
        sha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lower-case hex digits'),
        blockBytes: z.int().min(4096).max(16 * 1024 * 1024),
      })
      .optional(),
  })
  .refine((image) => image.file === `base-${image.sha256}.ext4`, { path: ['file'], message: 'must be base-<sha256>.ext4' })
  .refine((image) => !image.blocks || image.blocks.file === `base-${image.sha256}.blocks`, { path: ['blocks', 'file'], message: 'must be base-<sha256>.blocks' });

/** Environment names and values `launcher exec` adds in this guest: no NUL, no `=` in a name. */
const execEnvironment = z.record(z.string().regex(/^[A-Z_][A-Z0-9_]{0,63}$/, 'an upper-case environment name'), z.string().max(1024).regex(/^[^\0]*$/));

export const GuestManifestSchema = z
  .strictObject({
    schemaVersion: z.literal(1),
    name: guestName,
    description: z.string().max(200).optional(),
    /** payload: the system is the initramfs; image: the system is a base image under each user's overlay. */
    kind: z.enum(['payload', 'image']).default('payload'),
    image: baseImage.optional(),
    kernel: payloadFileName,
    initrd: payloadFileName,
    cmdline: z.string().max(2048),
    memory: z.strictObject({
      minimumMiB: z.int().min(64).max(1 << 20),
      recommendedMiB: z.int().min(64).max(1 << 20),
    }),
    cpus: z.strictObject({
      minimum: z.int().min(1).max(256),
      recommended: z.int().min(1).max(256),
    }),
    devices: z.strictObject({
      console: z.literal('serial'),
      agent: z.literal('virtio-serial'),
      network: z.enum(['none', 'user']),
    }),
    readyTimeoutSeconds: z.int().min(5).max(3600).default(180),
    tables: z.array(tableRule).max(64).optional(),
    /** Added to the environment of every `launcher exec` command (the desktop's DISPLAY and XAUTHORITY: docs/desktop.md). */
    execEnv: execEnvironment.optional(),
  })
  .refine((m) => m.memory.recommendedMiB >= m.memory.minimumMiB, { path: ['memory', 'recommendedMiB'], message: 'must be at least memory.minimumMiB' })
  .refine((m) => m.cpus.recommended >= m.cpus.minimum, { path: ['cpus', 'recommended'], message: 'must be at least cpus.minimum' })
  .refine((m) => (m.kind === 'image') === (m.image !== undefined), { path: ['image'], message: 'required with kind "image", and only with it' });

export type GuestManifest = z.infer<typeof GuestManifestSchema>;

/** `memory.minimumMiB: Too small: expected number to be >=64` — one per problem. */
export function describeIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => `${issue.path.length ? issue.path.join('.') : '(top level)'}: ${issue.message}`);
}

export function parseManifest(text: string, source: string): GuestManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new PayloadError(`${source} is not valid JSON: ${(error as Error).message}`, {
      hint: 'restore the file from the release, or rebuild the stick with `launcher init-stick`',
    });
  }
  const result = GuestManifestSchema.safeParse(raw);
  if (!result.success) {
    const problems = describeIssues(result.error);
    throw new PayloadError(`${source} is invalid: ${problems.join('; ')}`, {
      hint: 'fix the named fields (the schema is in src/payload/guest-manifest.ts)',
      details: { problems },
    });
  }
  return result.data;
}

export async function loadManifest(guestDir: string): Promise<GuestManifest> {
  const path = join(guestDir, 'guest.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new PayloadError(`the guest manifest ${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`, {
      hint: 'the payload on this stick is incomplete: rebuild it with `node build.js payload` or `launcher init-stick`',
      cause: error,
    });
  }
  return parseManifest(text, path);
}
