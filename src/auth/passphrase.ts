// Passphrase → key-encryption key (KEK), with argon2id (the `argon2` package,
// raw output). Parameters are never below OWASP's argon2id minimum (19 MiB,
// 2 passes, 1 lane) and are raised, memory first, until one derivation takes
// about half a second on the machine that creates the user. They are stored
// with the user (user.json) under a policy version, so a later launcher can
// raise them: a login under an older policy re-derives and re-wraps.
import { timingSafeEqual } from 'node:crypto';
import { UsageError } from '../errors.ts';

export interface KdfParams {
  /** KiB */
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

/** OWASP Password Storage Cheat Sheet, argon2id minimum configuration. */
export const MINIMUM_KDF: KdfParams = { memoryCost: 19_456, timeCost: 2, parallelism: 1 };
/** Raised when the minimums or the calibration change; older files re-hash on login. */
export const KDF_POLICY = 1;
export const KEK_BYTES = 32;
const MAX_MEMORY_KIB = 256 * 1024;
const MAX_TIME_COST = 10;

/**
 * What a user.json may ask for at most, checked before any derivation: four
 * times the memory and passes calibration ever picks (room for a later, raised
 * policy), so a hand-edited file cannot make a login allocate gigabytes or run
 * for hours. argon2 itself needs at least 8 KiB per lane.
 */
export const KDF_BOUNDS = {
  memoryCost: { min: 8, max: 4 * MAX_MEMORY_KIB },
  timeCost: { min: 1, max: 4 * MAX_TIME_COST },
  parallelism: { min: 1, max: 16 },
} as const;

export const MIN_PASSPHRASE_LENGTH = 8;
export const MAX_PASSPHRASE_LENGTH = 1024;
export const PASSPHRASE_POLICY = `a passphrase has ${MIN_PASSPHRASE_LENGTH} to ${MAX_PASSPHRASE_LENGTH} characters, and no line breaks`;

/**
 * A passphrase in memory: the UTF-8 bytes in a Buffer, which whoever made it
 * zeroes once it is used (a JavaScript string cannot be cleared and stays in
 * the heap until the collector reuses the memory). The prompt, stdin and the
 * keychain all hand over Buffers (src/cli/login.ts). A string is accepted only
 * for passphrases that are no secret: the demo user's, tests, benchmarks.
 */
export type Passphrase = Buffer | string;

/** Characters (code points) in `passphrase`: UTF-8 bytes that do not continue a character. */
function characterCount(passphrase: Passphrase): number {
  if (typeof passphrase === 'string') return [...passphrase].length;
  let count = 0;
  for (const byte of passphrase) if ((byte & 0xc0) !== 0x80) count += 1;
  return count;
}

function hasLineBreak(passphrase: Passphrase): boolean {
  return typeof passphrase === 'string' ? /[\r\n]/.test(passphrase) : passphrase.includes(0x0a) || passphrase.includes(0x0d);
}

/** Throws a UsageError naming the policy when the passphrase breaks it. */
export function checkPassphrasePolicy(passphrase: Passphrase): void {
  const length = characterCount(passphrase);
  const problem =
    length === 0
      ? 'the passphrase is empty'
      : length < MIN_PASSPHRASE_LENGTH
        ? 'the passphrase is too short'
        : length > MAX_PASSPHRASE_LENGTH
          ? 'the passphrase is too long'
          : hasLineBreak(passphrase)
            ? 'the passphrase has a line break'
            : undefined;
  if (problem) throw new UsageError(problem, PASSPHRASE_POLICY);
}

/** Whether two passphrases typed at a prompt are the same (in constant time for equal lengths). */
export function samePassphrase(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The UTF-8 bytes of `text` in a new zero-filled Buffer of its own (no shared pool). */
export function passphraseBytes(text: string): Buffer {
  const bytes = Buffer.alloc(Buffer.byteLength(text, 'utf8'));
  bytes.write(text, 'utf8');
  return bytes;
}

/**
 * What argon2 hashes: the passphrase's NFC form in UTF-8 (as before Buffers:
 * argon2 encoded the normalized string), in a new Buffer with an ArrayBuffer
 * of its own, which the caller zeroes. ASCII is its own NFC form, so its bytes
 * are copied as they are; any other passphrase passes through a transient
 * string to be normalized (Node has no normalization of bytes), which cannot
 * be cleared.
 */
export function kdfInput(passphrase: Passphrase): Buffer {
  if (typeof passphrase === 'string') return passphraseBytes(passphrase.normalize('NFC'));
  if (passphrase.every((byte) => byte < 0x80)) {
    const copy = Buffer.alloc(passphrase.length);
    passphrase.copy(copy);
    return copy;
  }
  return passphraseBytes(passphrase.toString('utf8').normalize('NFC'));
}

export function meetsMinimum(params: KdfParams): boolean {
  return params.memoryCost >= MINIMUM_KDF.memoryCost && params.timeCost >= MINIMUM_KDF.timeCost && params.parallelism >= MINIMUM_KDF.parallelism;
}

/**
 * The KEK of `passphrase` (which is left as it is: its owner zeroes it). The
 * bytes argon2 reads are zeroed here once the key is derived: argon2's
 * JavaScript copies a Buffer it is given (Buffer.from), so it is given the
 * ArrayBuffer under kdfInput's Buffer, which Buffer.from wraps without a copy;
 * its native side copies that into memory it clears itself
 * (ARGON2_FLAG_CLEAR_PASSWORD).
 */
export async function deriveKek(passphrase: Passphrase, salt: Buffer, params: KdfParams): Promise<Buffer> {
  // Loaded on first use: the native addon is only needed to log in, and
  // commands that merely read user files (status, recovery) start without it.
  const { default: argon2 } = await import('argon2');
  const input = kdfInput(passphrase);
  try {
    // The typings say Buffer | string; at run time Buffer.from(ArrayBuffer) shares it.
    return await argon2.hash(input.buffer as unknown as Buffer, { type: argon2.argon2id, raw: true, hashLength: KEK_BYTES, salt, ...params });
  } finally {
    input.fill(0);
  }
}

/** Milliseconds one derivation with `params` takes here. */
export async function timeDerivation(params: KdfParams): Promise<number> {
  const started = performance.now();
  await deriveKek('calibration passphrase', Buffer.alloc(16, 1), params);
  return performance.now() - started;
}

/**
 * Parameters at or above the minimum that take about `targetMs` here: the
 * minimum is timed, memory is scaled up to 256 MiB, then passes.
 */
export async function calibrate(targetMs = 500): Promise<KdfParams & { estimatedMs: number }> {
  const base = await timeDerivation(MINIMUM_KDF);
  let factor = targetMs / Math.max(base, 1);
  if (factor <= 1) return { ...MINIMUM_KDF, estimatedMs: Math.round(base) };
  const memoryFactor = Math.min(factor, MAX_MEMORY_KIB / MINIMUM_KDF.memoryCost);
  const memoryCost = Math.floor((MINIMUM_KDF.memoryCost * memoryFactor) / 1024) * 1024;
  factor /= memoryCost / MINIMUM_KDF.memoryCost;
  const timeCost = Math.min(MAX_TIME_COST, Math.max(MINIMUM_KDF.timeCost, Math.round(MINIMUM_KDF.timeCost * factor)));
  const params = { memoryCost: Math.max(memoryCost, MINIMUM_KDF.memoryCost), timeCost, parallelism: 1 };
  return { ...params, estimatedMs: Math.round((base * (params.memoryCost / MINIMUM_KDF.memoryCost) * params.timeCost) / MINIMUM_KDF.timeCost) };
}
