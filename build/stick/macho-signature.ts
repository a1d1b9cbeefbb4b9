// Removes the code signature load command from a thin 64-bit Mach-O binary,
// as `codesign --remove-signature` does, which Node's SEA guide asks for
// before injecting a blob on macOS: a binary whose signature no longer
// matches its pages is killed by the kernel, an unsigned one runs (and can be
// signed ad hoc on a Mac with `codesign --sign -`). No macOS tools exist
// here, hence this. The signature bytes stay in __LINKEDIT, unreferenced.
const MH_MAGIC_64 = 0xfeedfacf;
const LC_CODE_SIGNATURE = 0x1d;

export function removeMachoSignature(binary: Buffer): { removed: boolean } {
  if (binary.length < 32 || binary.readUInt32LE(0) !== MH_MAGIC_64) throw new Error('not a thin little-endian 64-bit Mach-O binary');
  const ncmds = binary.readUInt32LE(16);
  const sizeofcmds = binary.readUInt32LE(20);
  let at = 32;
  for (let i = 0; i < ncmds; i++) {
    const cmd = binary.readUInt32LE(at);
    const size = binary.readUInt32LE(at + 4);
    if (cmd === LC_CODE_SIGNATURE) {
      // Close the gap: move the later load commands up and zero the tail.
      const end = 32 + sizeofcmds;
      binary.copy(binary, at, at + size, end);
      binary.fill(0, end - size, end);
      binary.writeUInt32LE(ncmds - 1, 16);
      binary.writeUInt32LE(sizeofcmds - size, 20);
      return { removed: true };
    }
    at += size;
  }
  return { removed: false };
}
