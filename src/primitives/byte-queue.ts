// Bytes received from a stream, kept as the chunks they arrived in until a
// whole frame can be cut off the front: the 9P server's framing (size
// first, little-endian), QEMU's netdev stream framing (big-endian length)
// and the saved state's sealed chunks (vmm/state-cipher.ts) all read
// through it. A frame that lies inside one chunk is returned as a view of
// it, without copying.

export class ByteQueue {
  private chunks: Buffer[] = [];
  /** Bytes held. */
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  clear(): void {
    this.chunks = [];
    this.length = 0;
  }

  /** The first `size` bytes, left in place (there must be that many). */
  peek(size: number): Buffer {
    const first = this.chunks[0]!;
    return first.length >= size ? first.subarray(0, size) : Buffer.concat(this.chunks, size);
  }

  /** The first four bytes as a number (there must be four). */
  peekUInt32(endian: 'le' | 'be'): number {
    const first = this.chunks[0]!;
    const four = first.length >= 4 ? first : Buffer.concat(this.chunks, 4);
    return endian === 'le' ? four.readUInt32LE(0) : four.readUInt32BE(0);
  }

  /** Removes and returns the first `size` bytes (there must be that many; an empty queue gives an empty buffer). */
  take(size: number): Buffer {
    const first = this.chunks[0];
    if (first === undefined) return Buffer.alloc(0);
    this.length -= size;
    if (first.length >= size) {
      if (first.length === size) this.chunks.shift();
      else this.chunks[0] = first.subarray(size);
      return first.subarray(0, size);
    }
    const out = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const c = this.chunks[0]!;
      const n = Math.min(size - got, c.length);
      c.copy(out, got, 0, n);
      got += n;
      if (n === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(n);
    }
    return out;
  }
}
