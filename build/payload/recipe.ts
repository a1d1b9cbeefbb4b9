// payload/recipe.json: what goes into a guest payload, as data. The builder
// knows how; the recipe says what.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { PayloadBuildError } from './errors.ts';

const moduleName = z.string().regex(/^[A-Za-z0-9_-]+$/);
const relativePath = z.string().regex(/^[^/].*$/).refine((p) => !p.split('/').includes('..'), 'must not contain ..');

export const recipeSchema = z.object({
  guest: z.string().regex(/^[a-z0-9][a-z0-9-]*$/),
  architecture: z.string().min(1),
  kernel: z.object({
    metapackage: z.string().min(1),
    concretePrefix: z.string().min(1),
  }),
  packages: z.array(z.object({ name: z.string().min(1), files: z.array(relativePath).min(1) })).min(1),
  libraryDirectories: z.array(relativePath).min(1),
  /** Modules compiled from payload/<dir> against the kernel's headers; named in moduleGroups like any other. */
  moduleSources: z.array(z.object({ name: moduleName, dir: relativePath })).optional(),
  moduleGroups: z.record(z.string().regex(/^[a-z0-9]+$/), z.object({ when: z.string(), modules: z.array(moduleName).min(1) })),
  notes: z.array(z.string()).optional(),
});

export type PayloadRecipe = z.infer<typeof recipeSchema>;

export async function readRecipe(path: string): Promise<PayloadRecipe> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new PayloadBuildError(`cannot read the payload recipe ${path}`, { hint: 'restore payload/recipe.json from git', cause: error });
  }
  const parsed = recipeSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PayloadBuildError(`${path} is invalid (${issue ? `${issue.path.join('.')}: ${issue.message}` : 'schema'})`, {
      hint: 'fix payload/recipe.json',
    });
  }
  return parsed.data;
}
