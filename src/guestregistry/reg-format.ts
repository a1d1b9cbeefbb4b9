// The Windows `.reg` text formats (REGEDIT4 and "Windows Registry Editor
// Version 5.00") for the guest registry: parsing into operations and writing
// keys and values back, losslessly for every value type (docs/registry.md,
// ".reg files"). Pure: no storage.
import { RegFileError } from '../errors.ts';
import { checkValue, checkValueName, keyComponents, REG_TYPE_CODE, regTypeFromCode, type RegValue } from './value.ts';

export type RegFormat = 'regedit4' | 'v5';

/** The root every key path in a file is written under: `[HKEY_POCKETVM\Guest]`. */
export const REG_ROOT = 'HKEY_POCKETVM';
export const REG_HEADERS: Record<RegFormat, string> = {
  regedit4: 'REGEDIT4',
  v5: 'Windows Registry Editor Version 5.00',
};

export type RegOperation =
  | { op: 'key'; key: string; line: number }
  | { op: 'delete-key'; key: string; line: number }
  | { op: 'set'; key: string; name: string; value: RegValue; line: number }
  | { op: 'delete-value'; key: string; name: string; line: number };

export interface ParsedReg {
  format: RegFormat;
  operations: RegOperation[];
}

// ---------------------------------------------------------------- file bytes

/**
 * Text of a `.reg` file: UTF-16LE with a BOM (what regedit writes for v5),
 * UTF-8 with or without a BOM, or, when the bytes are not UTF-8, Windows-1252
 * (regedit's REGEDIT4 on western systems).
 */
export function decodeRegFile(bytes: Uint8Array): string {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return new TextDecoder('utf-16le').decode(bytes.subarray(2));
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return new TextDecoder('utf-8').decode(bytes.subarray(3));
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return new TextDecoder('windows-1252').decode(bytes);
  }
}

/** Bytes for a file: v5 as UTF-16LE with a BOM (as regedit writes it), REGEDIT4 as UTF-8. */
export function encodeRegFile(text: string, format: RegFormat): Buffer {
  return format === 'v5' ? Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]) : Buffer.from(text, 'utf8');
}

// ------------------------------------------------------------ string payloads

/** Strings inside hex(1)/hex(2)/hex(7): UTF-16LE in v5; in REGEDIT4 "ANSI", which pocketvm writes as UTF-8. */
function textBytes(text: string, format: RegFormat): Buffer {
  return format === 'v5' ? Buffer.from(text, 'utf16le') : Buffer.from(text, 'utf8');
}

function bytesText(bytes: Uint8Array, format: RegFormat): string | undefined {
  if (format === 'v5') {
    if (bytes.length % 2 !== 0) return undefined;
    return new TextDecoder('utf-16le').decode(bytes);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return new TextDecoder('windows-1252').decode(bytes);
  }
}

function multiStringText(items: readonly string[]): string {
  return `${items.map((item) => `${item}\0`).join('')}\0`;
}

/** Inverse of multiStringText; tolerant of files missing a terminator. */
function multiStringItems(text: string): string[] {
  let body = text.endsWith('\0') ? text.slice(0, -1) : text;
  if (body === '') return [];
  if (body.endsWith('\0')) body = body.slice(0, -1);
  return body.split('\0');
}

function int64Bytes(value: bigint): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigInt64LE(value);
  return bytes;
}

// ------------------------------------------------------------------- writing

const CONTROL = /[\u0000-\u001f\u007f]/;

function quote(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** `prefix` then hex bytes, wrapped like regedit: lines under 80 columns, `\` continues, two-space indent. */
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function hexLines(prefix: string, bytes: Uint8Array): string {
  if (bytes.length === 0) return prefix;
  let out = '';
  let line = prefix;
  const last = bytes.length - 1;
  for (let i = 0; i <= last; i++) {
    // "xx," is 3 columns; keep each line with its "\" under 80.
    if (line.length + 3 > 77 + (i === last ? 1 : 0) && line.length > 2) {
      out += `${line}\\\r\n`;
      line = '  ';
    }
    line += i === last ? HEX[bytes[i]!]! : `${HEX[bytes[i]!]!},`;
  }
  return out + line;
}

export function valueLine(name: string, value: RegValue, format: RegFormat): string {
  const lhs = `${name === '' ? '@' : quote(name)}=`;
  switch (value.type) {
    case 'string':
      // A string with a line break or other control character cannot sit in quotes.
      return CONTROL.test(value.data) ? hexLines(`${lhs}hex(1):`, textBytes(`${value.data}\0`, format)) : `${lhs}${quote(value.data)}`;
    case 'expand-string':
      return hexLines(`${lhs}hex(2):`, textBytes(`${value.data}\0`, format));
    case 'int32':
      return `${lhs}dword:${(value.data >>> 0).toString(16).padStart(8, '0')}`;
    case 'int64':
      return hexLines(`${lhs}hex(b):`, int64Bytes(value.data));
    case 'bool':
      return `${lhs}hex(${REG_TYPE_CODE.bool.toString(16)}):${value.data ? '01' : '00'}`;
    case 'binary':
      return hexLines(`${lhs}hex:`, value.data);
    case 'multi-string':
      return hexLines(`${lhs}hex(7):`, textBytes(multiStringText(value.data), format));
  }
}

export interface RegKeyEntry {
  /** The key path ('' is the root). */
  key: string;
  values: ReadonlyArray<{ name: string; value: RegValue }>;
}

/** A whole file: header, then each key and its values, CRLF line ends (as regedit writes). */
export function writeReg(entries: Iterable<RegKeyEntry>, format: RegFormat = 'v5'): string {
  const lines: string[] = [REG_HEADERS[format], ''];
  for (const entry of entries) {
    lines.push(`[${entry.key === '' ? REG_ROOT : `${REG_ROOT}\\${entry.key}`}]`);
    for (const { name, value } of entry.values) lines.push(valueLine(name, value, format));
    lines.push('');
  }
  lines.push('');
  return lines.join('\r\n');
}

// ------------------------------------------------------------------- reading

/** Reads a quoted string starting at text[start] === '"'; returns it and the index after the closing quote. */
function readQuoted(text: string, start: number, line: number, source: string | undefined): { value: string; end: number } {
  let value = '';
  for (let i = start + 1; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') return { value, end: i + 1 };
    if (c === '\\') {
      const next = text[i + 1];
      if (next !== '\\' && next !== '"')
        throw new RegFileError(line, `unknown escape \\${next ?? ''} in a quoted string (only \\\\ and \\" are allowed)`, source);
      value += next;
      i++;
    } else {
      value += c;
    }
  }
  throw new RegFileError(line, 'a quoted string has no closing "', source);
}

function parseHexBytes(text: string, line: number, source: string | undefined): Uint8Array {
  const body = text.replace(/\s+/g, '');
  if (body === '') return new Uint8Array();
  const items = body.split(',');
  if (items.at(-1) === '') items.pop();
  const bytes = new Uint8Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    const byte = item.length === 1 || item.length === 2 ? Number.parseInt(item, 16) : Number.NaN;
    // parseInt stops at the first non-hex character: "1g" reads as 1, so check the round trip.
    if (Number.isNaN(byte) || (item.length === 2 ? HEX[byte] !== item.toLowerCase() : byte.toString(16) !== item.toLowerCase())) {
      throw new RegFileError(line, `"${item.slice(0, 20)}" is not a hex byte`, source);
    }
    bytes[i] = byte;
  }
  return bytes;
}

function hexValue(typeCode: number, bytes: Uint8Array, format: RegFormat, line: number, source: string | undefined): RegValue {
  const type = regTypeFromCode(typeCode);
  const fail = (why: string) => new RegFileError(line, why, source);
  switch (type) {
    case 'binary':
      return { type, data: bytes };
    case 'string':
    case 'expand-string': {
      const text = bytesText(bytes, format);
      if (text === undefined) throw fail(`hex(${typeCode.toString(16)}) holds an odd number of bytes, not UTF-16LE text`);
      const nul = text.indexOf('\0');
      return { type, data: nul < 0 ? text : text.slice(0, nul) };
    }
    case 'multi-string': {
      const text = bytesText(bytes, format);
      if (text === undefined) throw fail('hex(7) holds an odd number of bytes, not UTF-16LE text');
      return { type, data: multiStringItems(text) };
    }
    case 'int32':
      if (bytes.length !== 4) throw fail(`hex(4) needs 4 bytes, not ${bytes.length}`);
      return { type, data: Buffer.from(bytes).readInt32LE() };
    case 'int64':
      if (bytes.length !== 8) throw fail(`hex(b) needs 8 bytes, not ${bytes.length}`);
      return { type, data: Buffer.from(bytes).readBigInt64LE() };
    case 'bool':
      if (bytes.length !== 1 || bytes[0]! > 1) throw fail(`hex(${typeCode.toString(16)}) (bool) needs one byte, 00 or 01`);
      return { type, data: bytes[0] === 1 };
    default:
      throw fail(`value type hex(${typeCode.toString(16)}) is not supported (supported: hex, hex(1), hex(2), hex(3), hex(4), hex(7), hex(b), hex(100))`);
  }
}

function parseData(data: string, format: RegFormat, line: number, source: string | undefined): RegValue | null {
  if (data === '-') return null;
  if (data.startsWith('"')) {
    const { value, end } = readQuoted(data, 0, line, source);
    if (data.slice(end).trim() !== '') throw new RegFileError(line, `unexpected text after the string: "${data.slice(end, end + 20)}"`, source);
    return { type: 'string', data: value };
  }
  const dword = /^dword:([0-9a-fA-F]{1,8})$/.exec(data);
  if (dword) return { type: 'int32', data: Number.parseInt(dword[1]!, 16) | 0 };
  if (/^dword:/i.test(data)) throw new RegFileError(line, `"${data.slice(0, 30)}" is not a dword (dword: and 1 to 8 hex digits)`, source);
  const hex = /^hex(?:\(([0-9a-fA-F]{1,8})\))?:(.*)$/s.exec(data);
  if (hex)
    return hexValue(hex[1] === undefined ? REG_TYPE_CODE.binary : Number.parseInt(hex[1], 16), parseHexBytes(hex[2]!, line, source), format, line, source);
  throw new RegFileError(line, `cannot read the value data "${data.slice(0, 30)}" (expected "string", dword:, hex:, hex(N): or -)`, source);
}

/** Turns a thrown limit/type error into one naming the line. */
function atLine<T>(line: number, source: string | undefined, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof RegFileError) throw error;
    throw new RegFileError(line, (error as Error).message, source);
  }
}

function keyPath(text: string, line: number, source: string | undefined): string {
  const upper = text.toUpperCase();
  const root = REG_ROOT.toUpperCase();
  if (upper === root) return '';
  if (!upper.startsWith(`${root}\\`)) throw new RegFileError(line, `the key [${text.slice(0, 60)}] is not under ${REG_ROOT}`, source);
  const key = text.slice(root.length + 1);
  atLine(line, source, () => keyComponents(key));
  return key;
}

/**
 * Parses a whole file into operations. Throws RegFileError naming the first
 * bad line; nothing is applied here, so a caller can run all or nothing.
 */
export function parseReg(input: string, options: { source?: string } = {}): ParsedReg {
  const source = options.source;
  const text = input.startsWith('\uFEFF') ? input.slice(1) : input;
  const lines = text.split(/\r\n|\n|\r/);
  let index = 0;
  while (index < lines.length && lines[index]!.trim() === '') index++;
  // Empty (or only blank lines): most likely a failed export or the wrong
  // file, so it is refused rather than imported as "nothing", and said plainly.
  if (index >= lines.length) throw new RegFileError(1, `the file is empty (a .reg file starts with "${REG_HEADERS.v5}" or "${REG_HEADERS.regedit4}")`, source);
  const header = lines[index]?.trim();
  const format = header === REG_HEADERS.regedit4 ? 'regedit4' : header === REG_HEADERS.v5 ? 'v5' : undefined;
  if (!format) {
    throw new RegFileError(index + 1, `the file does not start with "${REG_HEADERS.v5}" or "${REG_HEADERS.regedit4}"`, source);
  }
  index++;
  const operations: RegOperation[] = [];
  let key: string | undefined;
  while (index < lines.length) {
    const lineNo = index + 1;
    let line = lines[index]!.trim();
    index++;
    if (line === '' || line.startsWith(';')) continue;
    if (line.startsWith('[')) {
      if (!line.endsWith(']')) throw new RegFileError(lineNo, 'a key line has no closing ]', source);
      const inner = line.slice(1, -1);
      if (inner.startsWith('-')) {
        const path = keyPath(inner.slice(1), lineNo, source);
        if (path === '') throw new RegFileError(lineNo, `the root ${REG_ROOT} cannot be deleted`, source);
        operations.push({ op: 'delete-key', key: path, line: lineNo });
        key = undefined;
      } else {
        key = keyPath(inner, lineNo, source);
        if (key !== '') operations.push({ op: 'key', key, line: lineNo });
      }
      continue;
    }
    if (!line.startsWith('"') && !line.startsWith('@'))
      throw new RegFileError(lineNo, `cannot read "${line.slice(0, 40)}" (expected [KEY], "name"=data or @=data)`, source);
    let name: string;
    let rest: string;
    if (line.startsWith('@')) {
      name = '';
      rest = line.slice(1).trimStart();
    } else {
      const quoted = readQuoted(line, 0, lineNo, source);
      name = quoted.value;
      rest = line.slice(quoted.end).trimStart();
    }
    if (!rest.startsWith('=')) throw new RegFileError(lineNo, 'expected = after the value name', source);
    let data = rest.slice(1).trim();
    // Hex data continues on the next line after a trailing backslash.
    if (/^hex(\([0-9a-fA-F]+\))?:/.test(data)) {
      while (data.endsWith('\\')) {
        if (index >= lines.length) throw new RegFileError(lineNo, 'the hex data continues (\\) past the end of the file', source);
        data = data.slice(0, -1) + lines[index]!.trim();
        index++;
      }
    }
    if (key === undefined) throw new RegFileError(lineNo, 'a value comes before any [KEY] line (or after a [-KEY] deletion)', source);
    if (key === '') throw new RegFileError(lineNo, `values cannot sit at the root ${REG_ROOT}; put them in a key below it`, source);
    const currentKey = key;
    atLine(lineNo, source, () => checkValueName(name));
    const value = parseData(data, format, lineNo, source);
    if (value === null) {
      operations.push({ op: 'delete-value', key: currentKey, name, line: lineNo });
    } else {
      atLine(lineNo, source, () => checkValue(value));
      operations.push({ op: 'set', key: currentKey, name, value, line: lineNo });
    }
  }
  return { format, operations };
}
