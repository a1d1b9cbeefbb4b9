import assert from 'node:assert/strict';
import { encode } from '../../src/ninep/codec.ts';
import { MAX_SEGMENTS, parseSegments, ReadPlacements } from '../../src/ninep/ram-placement.ts';
import { NAMESPACE_MSIZE } from '../../src/ninep/msize.ts';
import { RecordingRam, segmentList } from './frame-peer.ts';

const tread = (tag: number, count = 100) => encode({ type: 'Tread', tag, fid: 1, offset: 0, count } as never);
const rread = (tag: number, data: Buffer) => encode({ type: 'Rread', tag, data } as never);

describe('placed reads: page lists and placements', () => {
  it('parses the segment list after a Tread', () => {
    const segments = [
      { phys: 0x1000, len: 4096 },
      { phys: 2 ** 40, len: 100 },
    ];
    assert.deepEqual(parseSegments(segmentList(segments)), segments);
  });

  it('takes the longest list a read of the namespace msize can need: every page apart, the buffer not page-aligned', () => {
    const data = NAMESPACE_MSIZE - 24; // the most one Tread asks for
    const pages = Math.ceil((4095 + data) / 4096);
    assert.ok(pages <= MAX_SEGMENTS);
    const segments = Array.from({ length: pages }, (_, i) => ({ phys: 0x10_0000 + i * 0x2000 + (i === 0 ? 4095 : 0), len: i === 0 ? 1 : 4096 }));
    assert.equal(parseSegments(segmentList(segments))?.length, pages);
    assert.equal(parseSegments(segmentList([...segments, ...segments])), undefined, 'twice as many is broken');
  });

  it('refuses a list that does not add up', () => {
    assert.equal(parseSegments(Buffer.alloc(3)), undefined);
    assert.equal(parseSegments(segmentList([])), undefined, 'no segments');
    assert.equal(parseSegments(segmentList([{ phys: 0, len: 4096 }]).subarray(0, 15)), undefined, 'cut short');
    assert.equal(parseSegments(Buffer.concat([segmentList([{ phys: 0, len: 4096 }]), Buffer.alloc(1)])), undefined, 'trailing bytes');
    assert.equal(parseSegments(segmentList([{ phys: 0, len: 0 }])), undefined, 'an empty segment');
    const huge = segmentList([{ phys: 0, len: 1 }]);
    huge.writeBigUInt64LE(2n ** 63n, 4);
    assert.equal(parseSegments(huge), undefined, 'an address past 2^53');
    const many = Buffer.alloc(4);
    many.writeUInt32LE(1_000_000, 0);
    assert.equal(parseSegments(many), undefined);
  });

  it('writes an Rread into the segments and gives the 11-byte header to send', () => {
    const ram = new RecordingRam();
    const placements = new ReadPlacements(ram);
    const segments = [{ phys: 0x5000, len: 8192 }];
    placements.request(tread(3), segments);
    const data = Buffer.from('placed bytes');
    const reply = rread(3, data);
    const header = placements.reply(reply);
    assert.ok(header);
    assert.equal(header.length, 11);
    assert.equal(header.readUInt32LE(0), 11 + data.length, 'its size still counts the data');
    assert.equal(header.readUInt32LE(7), data.length);
    assert.deepEqual(ram.writes, [{ segments, data }]);
    assert.equal(placements.reply(reply), undefined, 'a placement serves one reply');
    assert.deepEqual({ ...placements.counters, placeMs: 0 }, { placed: 1, declined: 0, placeMs: 0 });
  });

  it('sends the reply whole when RAM refuses, for errors and empty reads, and for tags that asked nothing', () => {
    const ram = new RecordingRam();
    const placements = new ReadPlacements(ram);
    const segments = [{ phys: 0, len: 4096 }];
    placements.request(tread(1), segments);
    assert.equal(placements.reply(rread(1, Buffer.alloc(0))), undefined);
    placements.request(tread(2), segments);
    assert.equal(placements.reply(encode({ type: 'Rlerror', tag: 2, ecode: 5 } as never)), undefined);
    assert.equal(placements.reply(rread(4, Buffer.from('x'))), undefined);
    ram.accept = false;
    placements.request(tread(5), segments);
    assert.equal(placements.reply(rread(5, Buffer.from('x'))), undefined);
    assert.deepEqual({ ...placements.counters, placeMs: 0 }, { placed: 0, declined: 1, placeMs: 0 });
  });

  it('cancel: pending placements are dropped and nothing is placed until allowed again', () => {
    const ram = new RecordingRam();
    const placements = new ReadPlacements(ram);
    const segments = [{ phys: 0x10_0000, len: 4096 }];
    placements.request(tread(1), segments);
    placements.request(tread(2), segments);
    assert.equal(placements.pending, 2);
    placements.cancel();
    assert.equal(placements.pending, 0);
    assert.equal(placements.reply(rread(1, Buffer.from('late'))), undefined, 'a reply after the cancel goes in frames');
    placements.request(tread(3), segments);
    assert.equal(placements.pending, 0, 'no new placement while cancelled');
    assert.equal(placements.reply(rread(3, Buffer.from('x'))), undefined);
    assert.equal(ram.writes.length, 0);
    placements.allow();
    placements.request(tread(4), segments);
    assert.ok(placements.reply(rread(4, Buffer.from('y'))));
    assert.equal(ram.writes.length, 1);
  });

  it('forgets a placement when its tag is reused without one, and when a Tflush names it', () => {
    const ram = new RecordingRam();
    const placements = new ReadPlacements(ram);
    const segments = [{ phys: 0, len: 4096 }];
    placements.request(tread(7), segments);
    placements.request(tread(7), undefined);
    assert.equal(placements.reply(rread(7, Buffer.from('x'))), undefined);
    placements.request(tread(8), segments);
    placements.request(encode({ type: 'Tflush', tag: 9, oldtag: 8 } as never), undefined);
    assert.equal(placements.reply(rread(8, Buffer.from('late'))), undefined, 'the flushed read goes in frames: its pages may be unpinned after Rflush');
    assert.equal(ram.writes.length, 0);
  });
});
