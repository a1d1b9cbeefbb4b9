// Passphrase → key-encryption key (KEK), with argon2id (the `argon2` package,
// raw output). Parameters are never below OWASP's argon2id minimum (19 MiB,
// 2 passes, 1 lane) and are raised, memory first, until one derivation takes
// about half a second on the machine that creates the user. They are stored
// with the user (user.json) under a policy version, so a later launcher can
// raise them: a login under an older policy re-derives and re-wraps.
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

/** Throws a UsageError naming the policy when the passphrase breaks it. */
export function checkPassphrasePolicy(passphrase: string): void {
  const length = [...passphrase].length;
  const problem = length === 0 ? 'the passphrase is empty' : length < MIN_PASSPHRASE_LENGTH ? 'the passphrase is too short' : length > MAX_PASSPHRASE_LENGTH ? 'the passphrase is too long' : /[\r\n]/.test(passphrase) ? 'the passphrase has a line break' : undefined;
  if (problem) throw new UsageError(problem, PASSPHRASE_POLICY);
}

export function meetsMinimum(params: KdfParams): boolean {
  return params.memoryCost >= MINIMUM_KDF.memoryCost && params.timeCost >= MINIMUM_KDF.timeCost && params.parallelism >= MINIMUM_KDF.parallelism;
}

export async function deriveKek(passphrase: string, salt: Buffer, params: KdfParams): Promise<Buffer> {
  // Loaded on first use: the native addon is only needed to log in, and
  // commands that merely read user files (status, recovery) start without it.
  const { default: argon2 } = await import('argon2');
  return argon2.hash(passphrase.normalize('NFC'), { type: argon2.argon2id, raw: true, hashLength: KEK_BYTES, salt, ...params });
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
