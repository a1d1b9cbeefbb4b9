// An image guest's recipe, images/<guest>/recipe.json: what goes into its
// read-only base image (a Debian system from mmdebstrap, parts of a payload's
// initramfs tree, the files under images/<guest>/rootfs/, a hook), and the
// manifest fields the launcher boots it with (docs/images.md, "The recipe").
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { PayloadBuildError } from '../payload/errors.ts';

const guestName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'lower-case letters, digits and -, at most 32');
/** A path inside the image tree: relative, no `..`. */
const treePath = z
  .string()
  .min(1)
  .max(512)
  .refine((path) => !path.startsWith('/') && !path.split('/').includes('..'), 'a relative path inside the tree, without ..');

export const ImageRecipeSchema = z.strictObject({
  schemaVersion: z.literal(1),
  description: z.string().max(200).optional(),
  /** The built payload whose kernel and initramfs boot the image (the 9P module and guest helpers are built for that kernel). */
  kernelFrom: guestName.default('default'),
  /** A Debian system made by mmdebstrap with the machine's apt sources (cached under .cache/image/ by this block's content). */
  mmdebstrap: z
    .strictObject({
      suite: z.string().regex(/^[a-z0-9.-]+$/),
      variant: z.enum(['extract', 'custom', 'essential', 'apt', 'required', 'minbase', 'buildd', 'important', 'debootstrap', 'standard']).default('minbase'),
      components: z
        .array(z.string().regex(/^[a-z0-9-]+$/))
        .max(8)
        .optional(),
      packages: z.array(z.string().regex(/^[a-z0-9][a-z0-9+.:=~-]*$/, 'a Debian package name (optionally =version)')).max(2000),
    })
    .optional(),
  /** Paths of the kernelFrom payload's initramfs copied into the image ("." is all of it): its modules, the pocketvm services and helpers. */
  payloadTree: z
    .array(z.union([z.literal('.'), treePath]))
    .max(64)
    .default([]),
  /** A script in images/<guest>/ run as `hook TREE` after the files are in place (as root, like mmdebstrap's hooks). */
  hook: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/)
    .optional(),
  /** Free space in the base's file system beyond what the tree needs: room the overlay's writes can use. */
  freeMiB: z.int().min(8).max(65536).default(256),
  /** What the payload's initramfs starts inside the image (switch_root): the image's init. */
  init: z
    .string()
    .regex(/^\/[A-Za-z0-9._/-]+$/)
    .default('/sbin/init'),
  guest: z.strictObject({
    cmdline: z.string().max(1024).default(''),
    memory: z.strictObject({ minimumMiB: z.int().min(64), recommendedMiB: z.int().min(64) }),
    cpus: z.strictObject({ minimum: z.int().min(1), recommended: z.int().min(1) }),
    network: z.enum(['none', 'user']).default('none'),
    readyTimeoutSeconds: z.int().min(5).max(3600).default(180),
    /** The manifest's execEnv: what `launcher exec` adds to a command's environment in this guest. */
    execEnv: z
      .record(
        z.string().regex(/^[A-Z_][A-Z0-9_]{0,63}$/, 'an upper-case environment name'),
        z
          .string()
          .max(1024)
          .regex(/^[^\0]*$/),
      )
      .optional(),
  }),
});

export type ImageRecipe = z.infer<typeof ImageRecipeSchema>;

export async function readImageRecipe(path: string): Promise<ImageRecipe> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new PayloadBuildError(`no image recipe at ${path}`, {
      hint: 'an image guest is described by images/<guest>/recipe.json (docs/images.md)',
      cause: error,
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new PayloadBuildError(`${path} is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = ImageRecipeSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(top level)'}: ${issue.message}`);
    throw new PayloadBuildError(`${path} is invalid: ${problems.join('; ')}`, { details: { problems } });
  }
  return parsed.data;
}
