// The host's keychain, only when asked (--remember-on-this-host): the Secret
// Service on Linux (GNOME Keyring, KWallet), the Keychain on macOS, the
// Credential Manager on Windows, through @napi-rs/keyring. Chosen over keytar:
// keytar is archived and builds against libsecret's headers at install time,
// while @napi-rs/keyring is maintained and ships prebuilt binaries per
// platform (it talks D-Bus itself, so no libsecret is needed at run time).
// On Linux the store is pinned to the Secret Service: the kernel keyring that
// the library would otherwise fall back to forgets everything at logout, which
// is not what "remember on this host" promises.
import { statSync } from 'node:fs';
import { nodePlatform, platformOf } from '../platform/current.ts';

const SERVICE = 'pocketvm';

export class KeychainUnavailableError extends Error {}

interface KeyringModule {
  AsyncEntry: new (
    service: string,
    account: string,
    options?: { linux?: { store?: 'secret-service' | 'keyutils' } },
  ) => {
    setSecret(secret: Uint8Array): Promise<void>;
    getSecret(): Promise<Array<number> | null>;
    deleteCredential(): Promise<boolean>;
  };
}

/** The entry's account name: the user and their random id, so two sticks with an "alice" do not collide. */
export function keychainAccount(user: { name: string; id: string }): string {
  return `${user.name}@${user.id}`;
}

/** Why there is no keychain here, or undefined when there may be one. */
export function keychainAbsentReason(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = nodePlatform()): string | undefined {
  if (platformOf(platform)?.keychainNeedsSessionBus && !env['DBUS_SESSION_BUS_ADDRESS']) {
    const uid = process.getuid?.();
    if (uid === undefined || !existsBus(`/run/user/${uid}/bus`)) return 'no keychain service on this host (no D-Bus session bus for a Secret Service)';
  }
  return undefined;
}

function existsBus(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}

async function entry(account: string) {
  const reason = keychainAbsentReason();
  if (reason) throw new KeychainUnavailableError(reason);
  let keyring: KeyringModule;
  try {
    keyring = (await import('@napi-rs/keyring')) as unknown as KeyringModule;
  } catch (error) {
    throw new KeychainUnavailableError(`no keychain support in this launcher (${(error as Error).message})`);
  }
  return new keyring.AsyncEntry(SERVICE, account, { linux: { store: 'secret-service' } });
}

function unavailable(error: unknown): KeychainUnavailableError {
  if (error instanceof KeychainUnavailableError) return error;
  const message = (error as Error).message ?? String(error);
  return new KeychainUnavailableError(`no keychain service on this host (${message.split('\n')[0]})`);
}

// The passphrase goes in and out as bytes (setSecret/getSecret), never as a
// JavaScript string: its UTF-8 bytes, which is what setPassword stored on the
// Secret Service and the macOS Keychain too. (On Windows setPassword stored
// UTF-16: a passphrase remembered there by an older launcher no longer works,
// is forgotten, and is asked for once.) What the library and the keychain
// service keep of it in their own memory is beyond reach here.

export async function rememberPassphrase(account: string, passphrase: Buffer): Promise<void> {
  try {
    await (await entry(account)).setSecret(passphrase);
  } catch (error) {
    throw unavailable(error);
  }
}

/**
 * The remembered passphrase in a new Buffer the caller zeroes, or undefined
 * (none, or no keychain: never an error). The library hands the bytes over
 * as an array of numbers, which is zeroed once copied.
 */
export async function recallPassphrase(account: string): Promise<Buffer | undefined> {
  let secret: Array<number> | null;
  try {
    secret = await (await entry(account)).getSecret();
  } catch {
    return undefined;
  }
  if (!secret) return undefined;
  const bytes = Buffer.alloc(secret.length);
  for (let i = 0; i < secret.length; i++) bytes[i] = secret[i]!;
  secret.fill(0);
  return bytes;
}

/** True when an entry was removed. */
export async function forgetPassphrase(account: string): Promise<boolean> {
  try {
    return await (await entry(account)).deleteCredential();
  } catch (error) {
    throw unavailable(error);
  }
}
