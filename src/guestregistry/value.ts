// Typed registry values: the shapes the API speaks, their validation, and the
// limits every layer enforces (docs/registry.md). Pure: no storage.
import { RegistryLimitError, RegistryTypeError } from '../errors.ts';

export type RegValue =
  | { type: 'string'; data: string }
  | { type: 'expand-string'; data: string }
  | { type: 'int32'; data: number }
  | { type: 'int64'; data: bigint }
  | { type: 'bool'; data: boolean }
  | { type: 'binary'; data: Uint8Array }
  | { type: 'multi-string'; data: string[] };

export type RegType = RegValue['type'];
export type RegLayer = 'defaults' | 'user' | 'host' | 'session';
/** The layers a caller may write; defaults ship read-only, session facts are never persisted. */
export type RegWritableLayer = 'user' | 'host';
export interface SessionFact {
  key: string;
  name: string;
  value: RegValue;
}

export const REG_TYPES: readonly RegType[] = ['string', 'expand-string', 'int32', 'int64', 'bool', 'binary', 'multi-string'];
export const WRITABLE_LAYERS: readonly RegWritableLayer[] = ['user', 'host'];

/**
 * Windows REG_* numbers, used in storage and in `.reg` `hex(N):`. `bool` has
 * no Windows type: 0x100 is ours (one byte, 00 or 01), so export → import is
 * lossless for it too.
 */
export const REG_TYPE_CODE: Record<RegType, number> = {
  string: 1, // REG_SZ
  'expand-string': 2, // REG_EXPAND_SZ
  binary: 3, // REG_BINARY
  int32: 4, // REG_DWORD (little-endian)
  'multi-string': 7, // REG_MULTI_SZ
  int64: 11, // REG_QWORD
  bool: 0x100, // pocketvm REG_BOOL
};

export function regTypeFromCode(code: number): RegType | undefined {
  for (const type of REG_TYPES) if (REG_TYPE_CODE[type] === code) return type;
  return undefined;
}

/**
 * Limits, Windows-like (Windows: key name 255, value name 16,383, tree depth
 * 512, value data "a few KB, 1 MB at most" as its documented guidance).
 */
export const REG_LIMITS = {
  /** Characters in one key name (one path component). */
  keyNameChars: 255,
  /** Characters in a whole key path (components and backslashes). */
  keyPathChars: 2048,
  /** Components in a key path. */
  keyDepth: 512,
  /** Characters in a value name. */
  valueNameChars: 16_383,
  /** Bytes of a value's data as Windows stores it (strings as UTF-16LE with terminators). */
  valueBytes: 1024 * 1024,
  /** Values in one key, per layer. */
  valuesPerKey: 16_384,
} as const;

// Control characters cannot be written in a .reg key line or value name.
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Splits and checks a key path: `Guest`, `Tables\Rules`. The root is `''` (no components). */
export function keyComponents(key: string, options: { allowRoot?: boolean } = {}): string[] {
  if (typeof key !== 'string') throw new RegistryTypeError(`a key path must be a string, not ${typeof key}`);
  if (key === '') {
    if (options.allowRoot) return [];
    throw new RegistryLimitError('the key path is empty', { hint: 'name a key such as Guest or Tables\\Rules' });
  }
  if (key.length > REG_LIMITS.keyPathChars) {
    throw new RegistryLimitError(`the key path is ${key.length} characters long; the limit is ${REG_LIMITS.keyPathChars}`, {
      details: { limit: 'keyPathChars' },
    });
  }
  const parts = key.split('\\');
  if (parts.length > REG_LIMITS.keyDepth) {
    throw new RegistryLimitError(`the key path is ${parts.length} levels deep; the limit is ${REG_LIMITS.keyDepth}`, { details: { limit: 'keyDepth' } });
  }
  for (const part of parts) {
    if (part === '')
      throw new RegistryLimitError(`the key path "${key}" has an empty component`, {
        hint: 'separate key names with single backslashes, without one at either end',
      });
    if (part.length > REG_LIMITS.keyNameChars) {
      throw new RegistryLimitError(`the key name "${part.slice(0, 40)}…" is ${part.length} characters long; the limit is ${REG_LIMITS.keyNameChars}`, {
        details: { limit: 'keyNameChars' },
      });
    }
    if (CONTROL.test(part)) throw new RegistryLimitError(`the key name ${JSON.stringify(part)} contains a control character`);
  }
  return parts;
}

/** Canonical form for comparisons: keys and value names are case-insensitive, case-preserving. */
export function foldCase(text: string): string {
  return text.toLowerCase();
}

export function checkValueName(name: string): void {
  if (typeof name !== 'string') throw new RegistryTypeError(`a value name must be a string, not ${typeof name}`);
  if (name.length > REG_LIMITS.valueNameChars) {
    throw new RegistryLimitError(`the value name "${name.slice(0, 40)}…" is ${name.length} characters long; the limit is ${REG_LIMITS.valueNameChars}`, {
      details: { limit: 'valueNameChars' },
    });
  }
  if (CONTROL.test(name)) throw new RegistryLimitError(`the value name ${JSON.stringify(name)} contains a control character`);
}

function checkText(text: unknown, what: string): asserts text is string {
  if (typeof text !== 'string') throw new RegistryTypeError(`${what} must be a string, not ${text === null ? 'null' : typeof text}`);
  if (text.includes('\0')) throw new RegistryTypeError(`${what} contains a NUL character, which registry strings cannot hold`);
}

/** Bytes the value takes as Windows would store it; what the size limit counts. */
export function valueBytes(value: RegValue): number {
  switch (value.type) {
    case 'string':
    case 'expand-string':
      return (value.data.length + 1) * 2;
    case 'multi-string':
      return (value.data.reduce((sum, s) => sum + s.length + 1, 0) + 1) * 2;
    case 'int32':
      return 4;
    case 'int64':
      return 8;
    case 'bool':
      return 1;
    case 'binary':
      return value.data.byteLength;
  }
}

/** Checks a value's shape and size; throws RegistryTypeError / RegistryLimitError. */
export function checkValue(value: RegValue): void {
  if (value === null || typeof value !== 'object') throw new RegistryTypeError('a registry value must be an object { type, data }');
  const { type, data } = value as { type: unknown; data: unknown };
  switch (type) {
    case 'string':
    case 'expand-string':
      checkText(data, `${type} data`);
      break;
    case 'int32':
      if (typeof data !== 'number' || !Number.isInteger(data) || data < -(2 ** 31) || data > 2 ** 31 - 1) {
        throw new RegistryTypeError(`int32 data must be an integer from -2147483648 to 2147483647, not ${String(data)}`);
      }
      break;
    case 'int64':
      if (typeof data !== 'bigint' || data < -(2n ** 63n) || data > 2n ** 63n - 1n) {
        throw new RegistryTypeError(`int64 data must be a bigint from -2^63 to 2^63-1, not ${typeof data === 'bigint' ? String(data) : typeof data}`);
      }
      break;
    case 'bool':
      if (typeof data !== 'boolean') throw new RegistryTypeError(`bool data must be true or false, not ${typeof data}`);
      break;
    case 'binary':
      if (!(data instanceof Uint8Array)) throw new RegistryTypeError('binary data must be a Uint8Array');
      break;
    case 'multi-string':
      if (!Array.isArray(data)) throw new RegistryTypeError('multi-string data must be an array of strings');
      data.forEach((s, i) => checkText(s, `multi-string item ${i}`));
      break;
    default:
      throw new RegistryTypeError(`unknown value type ${JSON.stringify(type)}`, { hint: `the types are ${REG_TYPES.join(', ')}` });
  }
  const bytes = valueBytes(value);
  if (bytes > REG_LIMITS.valueBytes) {
    throw new RegistryLimitError(`the value is ${bytes} bytes; the limit is ${REG_LIMITS.valueBytes} (1 MiB)`, { details: { limit: 'valueBytes', bytes } });
  }
}

export function regValueEquals(a: RegValue, b: RegValue): boolean {
  if (a.type !== b.type) return false;
  if (a.type === 'binary') {
    const other = b.data as Uint8Array;
    return a.data.byteLength === other.byteLength && a.data.every((byte, i) => byte === other[i]);
  }
  if (a.type === 'multi-string') {
    const other = b.data as string[];
    return a.data.length === other.length && a.data.every((s, i) => s === other[i]);
  }
  return a.data === b.data;
}

/** Parses a value typed on a command line (`reg set --type T`); throws RegistryTypeError. */
export function parseValueText(type: RegType, text: string): RegValue {
  switch (type) {
    case 'string':
    case 'expand-string':
      return { type, data: text };
    case 'int32': {
      const n = /^-?\d+$/.test(text) ? Number(text) : /^0x[0-9a-f]{1,8}$/i.test(text) ? Number.parseInt(text.slice(2), 16) | 0 : Number.NaN;
      const value: RegValue = { type, data: n };
      if (Number.isNaN(n)) throw new RegistryTypeError(`"${text}" is not an int32 (a decimal integer or 0x followed by up to 8 hex digits)`);
      checkValue(value);
      return value;
    }
    case 'int64': {
      if (!/^-?\d+$/.test(text) && !/^0x[0-9a-f]{1,16}$/i.test(text))
        throw new RegistryTypeError(`"${text}" is not an int64 (a decimal integer or 0x followed by up to 16 hex digits)`);
      const data = text.startsWith('0x') || text.startsWith('0X') ? BigInt.asIntN(64, BigInt(text)) : BigInt(text);
      const value: RegValue = { type, data };
      checkValue(value);
      return value;
    }
    case 'bool': {
      const t = text.toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(t)) return { type, data: true };
      if (['false', '0', 'no', 'off'].includes(t)) return { type, data: false };
      throw new RegistryTypeError(`"${text}" is not a bool (true/false, 1/0, yes/no, on/off)`);
    }
    case 'binary': {
      const hex = text.replace(/[\s,:]/g, '');
      if (!/^([0-9a-f]{2})*$/i.test(hex)) throw new RegistryTypeError(`"${text.slice(0, 40)}" is not binary data (hex bytes such as 01,ff or 01ff)`);
      return { type, data: Uint8Array.from(Buffer.from(hex, 'hex')) };
    }
    case 'multi-string':
      return { type, data: text === '' ? [] : text.split('\n') };
  }
}

/** A value as text for a person (`reg get`); multi-strings one item per line. */
export function formatValueText(value: RegValue): string {
  switch (value.type) {
    case 'binary':
      return Buffer.from(value.data)
        .toString('hex')
        .replace(/(..)(?=.)/g, '$1,');
    case 'multi-string':
      return value.data.join('\n');
    default:
      return String(value.data);
  }
}

/** JSON form (`--json`, the guest channel): bigint as a decimal string, bytes as hex. */
export type RegValueJson =
  | { type: 'string' | 'expand-string'; data: string }
  | { type: 'int32'; data: number }
  | { type: 'int64'; data: string }
  | { type: 'bool'; data: boolean }
  | { type: 'binary'; data: string }
  | { type: 'multi-string'; data: string[] };

export function valueToJson(value: RegValue): RegValueJson {
  switch (value.type) {
    case 'int64':
      return { type: 'int64', data: value.data.toString() };
    case 'binary':
      return { type: 'binary', data: Buffer.from(value.data).toString('hex') };
    default:
      return value;
  }
}
