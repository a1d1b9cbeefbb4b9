// Shared test data: one value of every type, with the awkward cases (escapes,
// line breaks, non-ASCII, empty items, extremes) a round trip must survive.
import type { RegValue } from '../../src/guestregistry/value.ts';

export const EVERY_TYPE: Array<{ key: string; name: string; value: RegValue }> = [
  { key: 'Guest', name: 'Hostname', value: { type: 'string', data: 'pocket-box' } },
  { key: 'Guest', name: '', value: { type: 'string', data: 'the default value' } },
  { key: 'Types', name: 'quoted', value: { type: 'string', data: 'say "hi" to C:\\Users\\ä€😀' } },
  { key: 'Types', name: 'empty', value: { type: 'string', data: '' } },
  { key: 'Types', name: 'two lines', value: { type: 'string', data: 'first\r\nsecond\ttab' } },
  { key: 'Types', name: 'expand', value: { type: 'expand-string', data: '%HOME%\\bin;ü' } },
  { key: 'Types', name: 'int32 max', value: { type: 'int32', data: 2147483647 } },
  { key: 'Types', name: 'int32 min', value: { type: 'int32', data: -2147483648 } },
  { key: 'Types', name: 'int32 zero', value: { type: 'int32', data: 0 } },
  { key: 'Types', name: 'int64 max', value: { type: 'int64', data: 9223372036854775807n } },
  { key: 'Types', name: 'int64 min', value: { type: 'int64', data: -9223372036854775808n } },
  { key: 'Types', name: 'true', value: { type: 'bool', data: true } },
  { key: 'Types', name: 'false', value: { type: 'bool', data: false } },
  { key: 'Types', name: 'bytes', value: { type: 'binary', data: Uint8Array.from({ length: 300 }, (_, i) => (i * 37) & 0xff) } },
  { key: 'Types', name: 'no bytes', value: { type: 'binary', data: new Uint8Array() } },
  { key: 'Types', name: 'multi', value: { type: 'multi-string', data: ['one', '', 'three "3"', 'vier ß'] } },
  { key: 'Types', name: 'multi empty', value: { type: 'multi-string', data: [] } },
  { key: 'Types', name: 'multi one empty', value: { type: 'multi-string', data: [''] } },
  { key: 'Types\\Sub Key\\Deeper [x]', name: 'name with \\ and "', value: { type: 'string', data: 'x' } },
];
