// Key material spelled as text (QEMU's LUKS secret takes the disk key as its
// hex spelling) without a JavaScript string: a string cannot be cleared and
// lives on in the heap until the collector reuses its memory, where a core
// dump or /proc/<pid>/mem would find it. A Buffer is zeroed once written.
const HEX = Buffer.from('0123456789abcdef');

/** The lower-case hex spelling of `key`, in a new Buffer the caller zeroes after use. */
export function hexBytes(key: Buffer): Buffer {
  const out = Buffer.alloc(key.length * 2);
  for (let i = 0; i < key.length; i++) {
    out[2 * i] = HEX[key[i]! >> 4]!;
    out[2 * i + 1] = HEX[key[i]! & 15]!;
  }
  return out;
}
