// users/<name>/user.json: who the user is, how their passphrase is stretched,
// and their wrapped disk key. Validated by schema and by a checksum over its
// canonical content, so a hand edit or a damaged file is reported, never
// silently "repaired" or rewritten. (The checksum detects accidents and
// edits; it is no defence against someone who recomputes it: that is the
// AES-GCM tag's job, see key-wrap.ts.)
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { AuthError } from '../errors.ts';
import { replaceFile } from '../primitives/atomic-replace.ts';
import { KDF_BOUNDS } from './passphrase.ts';

export const USER_FILE_FORMAT = 'pocketvm-user';
export const USER_FILE_VERSION = 1;

/** Guest user names: safe in /etc/passwd, a path and the kernel command line. */
export const USER_NAME_PATTERN = /^[a-z_][a-z0-9_-]{0,31}$/;

const bounded = (name: keyof typeof KDF_BOUNDS, unit: string) =>
  z
    .int()
    .min(KDF_BOUNDS[name].min, `below ${KDF_BOUNDS[name].min} ${unit}, which argon2 cannot use`)
    .max(KDF_BOUNDS[name].max, `over the ${KDF_BOUNDS[name].max} ${unit} a pocketvm user file may ask for`);

const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'not base64');

export const userFileSchema = z.strictObject({
  format: z.literal(USER_FILE_FORMAT),
  version: z.literal(USER_FILE_VERSION),
  name: z.string().regex(USER_NAME_PATTERN),
  /** Random, stable across passphrase changes (names the keychain entry). */
  id: z.uuid(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  kdf: z.strictObject({
    algorithm: z.literal('argon2id'),
    policy: z.int().positive(),
    // Bounded here, so parsing refuses a file that would make argon2 allocate
    // gigabytes or run for hours before the passphrase is ever tried.
    memoryCost: bounded('memoryCost', 'KiB'),
    timeCost: bounded('timeCost', 'passes'),
    parallelism: bounded('parallelism', 'lanes'),
    salt: base64,
  }),
  wrappedKey: z.strictObject({
    algorithm: z.literal('aes-256-gcm'),
    iv: base64,
    tag: base64,
    ciphertext: base64,
  }),
  checksum: z.string().regex(/^sha256:[0-9a-f]{64}$/),
});

export type UserFile = z.infer<typeof userFileSchema>;
export type UserFileContent = Omit<UserFile, 'checksum'>;

/** JSON with keys sorted at every level: the same content always hashes the same. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

export function userFileChecksum(content: UserFileContent | UserFile): string {
  const { checksum: _ignored, ...rest } = content as UserFile;
  return `sha256:${createHash('sha256').update(canonical(rest)).digest('hex')}`;
}

export function sealUserFile(content: UserFileContent): UserFile {
  return { ...content, checksum: userFileChecksum(content) };
}

/** Parses and checks a user.json text; `path` and `name` are for the messages. */
export function parseUserFile(text: string, path: string, name: string): UserFile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw corrupt(path, 'it is not JSON');
  }
  const parsed = userFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw corrupt(path, `${issue?.path.join('.') || 'the file'}: ${issue?.message ?? 'invalid'}`);
  }
  if (parsed.data.kdf.memoryCost < 8 * parsed.data.kdf.parallelism) throw corrupt(path, `kdf.memoryCost: below the 8 KiB per lane argon2 needs`);
  if (parsed.data.checksum !== userFileChecksum(parsed.data)) throw corrupt(path, 'its checksum does not match its content (edited by hand, or damaged)');
  if (parsed.data.name !== name) throw corrupt(path, `it belongs to "${parsed.data.name}", not "${name}"`);
  return parsed.data;
}

function corrupt(path: string, why: string): AuthError {
  return new AuthError(`${path} is corrupt: ${why}`, {
    hint: 'the file was left as it is; restore it from a backup of the stick, or remove the user (launcher user remove) and create it again',
    details: { reason: 'corrupt-user-file', path },
  });
}

export async function readUserFile(path: string, name: string): Promise<UserFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EISDIR') throw corrupt(path, 'it is a folder, not a file');
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new AuthError(`there is no user "${name}" on this stick`, {
        hint: 'launcher user list shows the users; launcher user add NAME creates one',
        details: { reason: 'unknown-user', user: name },
      });
    }
    throw error;
  }
  return parseUserFile(text, path, name);
}

/** Replaced atomically, so a pulled stick leaves the old file or the new one (FAT included). */
export async function writeUserFile(path: string, file: UserFile): Promise<void> {
  await replaceFile(path, `${JSON.stringify(file, null, 2)}\n`);
}
