// The launcher's end of 9pnet_pocketvm, against the real 9P server and
// LocalDirBackend, with the guest's side played by FramePeer: QEMU's
// length-prefixed frames, fragments, connections, and what a hostile guest
// could send.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { duplexPair } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Errno, OpenFlags } from '../../src/ninep/backend.ts';
import { encode, MessageId, NOTAG, TWRITE_HEADER_SIZE } from '../../src/ninep/codec.ts';
import { type EthernetTransport, FRAGMENT_MAX, serveEthernetTransport } from '../../src/ninep/ethernet-transport.ts';
import { LocalDirBackend } from './local-backend.ts';
import { DEFAULT_MAX_MSIZE, type NinepServer, serveNinep } from '../../src/ninep/server.ts';
import { FrameFlag } from '../../src/ninep/ram-placement.ts';
import { GuestRamFile, type RamSegment } from '../../src/vmm/guest-ram.ts';
import { NinepClient } from './client.ts';
import { FramePeer, GUEST_MAC, RecordingRam, segmentList } from './frame-peer.ts';

describe('ninep Ethernet transport (9pnet_pocketvm frames)', function () {
  let tmp: string;
  let backend: LocalDirBackend;
  let transport: EthernetTransport;
  let peer: FramePeer;
  let servers: NinepServer[];
  let logs: string[];

  beforeEach(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ninep-eth-'));
    fs.writeFileSync(path.join(tmp, 'hello.txt'), 'hello over frames\n');
    backend = await LocalDirBackend.open(tmp);
    const [launcherEnd, qemuEnd] = duplexPair();
    servers = [];
    logs = [];
    transport = serveEthernetTransport(launcherEnd, {
      maxMessage: DEFAULT_MAX_MSIZE,
      log: (m) => logs.push(m),
      openSession: (stream) => {
        const server = serveNinep(stream, backend, { closeBackend: false });
        servers.push(server);
        return server;
      },
    });
    peer = new FramePeer(qemuEnd);
  });

  afterEach(async () => {
    await transport.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function mount(conn: number, fragment = FRAGMENT_MAX): Promise<NinepClient> {
    const client = new NinepClient(peer.connection(conn, fragment));
    await client.version();
    await client.attach(1);
    return client;
  }

  it('serves a mount: replies go to the guest card, whole 9P messages in order', async () => {
    const client = await mount(0x1234);
    const fid = await client.open(1, ['hello.txt'], OpenFlags.RDONLY);
    assert.equal((await client.read(fid, 0, 100)).toString(), 'hello over frames\n');
    assert.equal(transport.counters.sessions, 1);
    for (const f of peer.frames) {
      assert.deepEqual(f.dst, GUEST_MAC, 'replies are addressed to the card that asked');
      assert.equal(f.conn, 0x1234);
    }
  });

  it('moves messages larger than a frame both ways, byte for byte', async () => {
    const client = await mount(7);
    const data = randomBytes(DEFAULT_MAX_MSIZE - 64);
    const fid = await client.create(1, [], 'big.bin', OpenFlags.RDWR);
    assert.equal(await client.write(fid, 0, data), data.length);
    assert.ok(fs.readFileSync(path.join(tmp, 'big.bin')).equals(data), 'the write arrived whole');
    const back = await client.read(fid, 0, data.length);
    assert.ok(back.equals(data), 'the read came back whole');
    const fragments = peer.frames.filter((f) => f.fragment.length > 0);
    assert.ok(
      fragments.some((f) => f.offset > 0),
      'the reply was split',
    );
    assert.ok(fragments.every((f) => f.fragment.length <= FRAGMENT_MAX));
  });

  it('reassembles fragments of concurrent requests that interleave', async () => {
    const client = await mount(9);
    fs.writeFileSync(path.join(tmp, 'a'), '');
    const fidA = await client.open(1, ['a'], OpenFlags.RDWR);
    const fidB = await client.create(1, [], 'b', OpenFlags.RDWR);
    const a = randomBytes(200_000);
    const b = randomBytes(150_000);
    const twrite = (fid: number, data: Buffer, tag: number) => encode({ type: 'Twrite', tag, fid, offset: 0, data } as never);
    const framesA = peer.framesOf(9, twrite(fidA, a, 501));
    const framesB = peer.framesOf(9, twrite(fidB, b, 502));
    const replies = Promise.all([client.sendRaw(Buffer.alloc(0), 501), client.sendRaw(Buffer.alloc(0), 502)]);
    for (let i = 0; i < Math.max(framesA.length, framesB.length); i++) {
      if (framesA[i]) peer.qemu.write(framesA[i]!);
      if (framesB[i]) peer.qemu.write(framesB[i]!);
    }
    const [ra, rb] = await replies;
    assert.equal(ra.type, 'Rwrite');
    assert.equal(rb.type, 'Rwrite');
    assert.ok(fs.readFileSync(path.join(tmp, 'a')).equals(a));
    assert.ok(fs.readFileSync(path.join(tmp, 'b')).equals(b));
  });

  it('each connection id is its own session; a mount it never saw begin gets ESTALE', async () => {
    const first = await mount(100);
    const second = await mount(200);
    assert.equal(transport.counters.sessions, 2);
    // Same fid numbers on both: no mixing.
    await first.clunk(1);
    assert.ok((await second.getattr(1)).qid, 'fid 1 of the second mount is untouched');
    // A connection that never sent Tversion (a mount from before a suspend).
    const stale = new NinepClient(peer.connection(300));
    const reply = await stale.raw({ type: 'Tgetattr', fid: 1, requestMask: 0x7ff } as never);
    assert.equal(reply.type, 'Rlerror');
    assert.equal((reply as { ecode: number }).ecode, Errno.ESTALE);
    assert.equal(transport.counters.stale, 1);
    // A quiet clunk there gets no answer either: its tag may be another request's already.
    const before = peer.frames.length;
    peer.qemu.write(peer.frame(300, 77, 0, encode({ type: 'Tclunk', tag: 77, fid: 1 } as never), undefined, FrameFlag.noReply));
    for (let i = 0; i < 100 && transport.counters.stale < 2; i++) await sleep(5);
    await sleep(30);
    assert.equal(transport.counters.stale, 2);
    assert.equal(peer.frames.length, before, 'no reply to a quiet request on a stale connection');
  });

  it('keeps at most maxSessions mounts: the oldest is retired', async () => {
    await transport.close();
    const [launcherEnd, qemuEnd] = duplexPair();
    transport = serveEthernetTransport(launcherEnd, {
      maxMessage: DEFAULT_MAX_MSIZE,
      maxSessions: 2,
      openSession: (s) => serveNinep(s, backend, { closeBackend: false }),
    });
    peer = new FramePeer(qemuEnd);
    await mount(1);
    await mount(2);
    await mount(3);
    const again = new NinepClient(peer.connection(1));
    const reply = await again.raw({ type: 'Tgetattr', fid: 1, requestMask: 0x7ff } as never);
    assert.equal((reply as { ecode?: number }).ecode, Errno.ESTALE, 'the first mount was retired');
  });

  it('drops what is not a well-formed request, and goes on serving', async () => {
    const client = await mount(5);
    const before = transport.counters.dropped;
    // Another protocol on the card (IPv6 chatter), ignored silently.
    peer.qemu.write(peer.frame(5, 0, 0, Buffer.alloc(40), 0x86dd));
    // A fragment with no start, a header whose size is absurd, one shorter than a 9P header, a tag mismatch.
    peer.qemu.write(peer.frame(5, 77, 4096, Buffer.alloc(10)));
    const huge = Buffer.alloc(16);
    huge.writeUInt32LE(DEFAULT_MAX_MSIZE + 1, 0);
    huge.writeUInt16LE(78, 5);
    peer.qemu.write(peer.frame(5, 78, 0, huge));
    peer.qemu.write(peer.frame(5, 79, 0, Buffer.alloc(3)));
    const mismatch = Buffer.alloc(16);
    mismatch.writeUInt32LE(100, 0);
    mismatch.writeUInt16LE(1, 5);
    peer.qemu.write(peer.frame(5, 80, 0, mismatch));
    // A fragment longer than the message it belongs to.
    const long = Buffer.alloc(32);
    long.writeUInt32LE(20, 0);
    long.writeUInt16LE(81, 5);
    peer.qemu.write(peer.frame(5, 81, 0, long));
    // Then a real request still works.
    assert.ok((await client.getattr(1)).qid);
    assert.equal(transport.counters.dropped - before, 5);
  });

  it('bounds requests left in pieces', async () => {
    await mount(6);
    for (let tag = 0; tag < 100; tag++) {
      const head = Buffer.alloc(64);
      head.writeUInt32LE(100_000, 0);
      head[4] = 118; // Twrite
      head.writeUInt16LE(tag, 5);
      peer.qemu.write(peer.frame(6, tag, 0, head));
    }
    await sleep(20);
    assert.ok(logs.some((l) => /too many requests in pieces/.test(l)));
  });

  it('closes the channel on a frame QEMU itself would never send', async () => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(1 << 24);
    peer.qemu.write(len);
    await transport.closed;
    assert.ok(logs.some((l) => /closing/.test(l)));
  });

  it('survives random and mutated frames', async () => {
    const client = await mount(11);
    for (let i = 0; i < 3000; i++) {
      const body = randomBytes(Math.floor(Math.random() * 200));
      if (body.length >= 7 && i % 2 === 0) body.writeUInt32LE(body.length, 0);
      peer.qemu.write(peer.frame(i % 3 === 0 ? 11 : 12, Math.floor(Math.random() * 65536), i % 5 === 0 ? 0 : Math.floor(Math.random() * 1000), body));
    }
    const tversion = encode({ type: 'Tversion', tag: NOTAG, msize: 8192, version: 'nonsense' } as never);
    peer.sendMessage(13, tversion);
    await sleep(50);
    assert.ok((await client.getattr(1)).qid, 'the real mount still answers');
  });

  describe('placed reads (guest RAM shared)', () => {
    let ram: RecordingRam;
    beforeEach(async () => {
      await transport.close();
      const [launcherEnd, qemuEnd] = duplexPair();
      ram = new RecordingRam();
      transport = serveEthernetTransport(launcherEnd, {
        maxMessage: DEFAULT_MAX_MSIZE,
        log: (m) => logs.push(m),
        guestRam: ram,
        openSession: (s) => serveNinep(s, backend, { closeBackend: false }),
      });
      peer = new FramePeer(qemuEnd);
    });
    const segments = [
      { phys: 0x10_0000, len: 4096 },
      { phys: 0x20_0000, len: 8192 },
    ];
    /** A Tread with the reader's page list after it, in one frame flagged PLACE. */
    const placedRead = (conn: number, fid: number, tag: number, count: number, list = segmentList(segments)) => {
      const message = encode({ type: 'Tread', tag, fid, offset: 0, count } as never);
      peer.qemu.write(peer.frame(conn, tag, 0, Buffer.concat([message, list]), undefined, FrameFlag.place));
    };
    const replyTo = async (tag: number) => {
      for (let i = 0; i < 200 && !peer.frames.some((f) => f.tag === tag); i++) await sleep(5);
      return peer.frames.filter((f) => f.tag === tag);
    };

    it('says so on every frame, writes the data into the pages and sends the Rread header alone', async () => {
      const client = await mount(21);
      const data = randomBytes(10_000);
      fs.writeFileSync(path.join(tmp, 'data.bin'), data);
      const fid = await client.open(1, ['data.bin'], OpenFlags.RDONLY);
      placedRead(21, fid, 700, 12_288);
      const [reply, ...more] = await replyTo(700);
      assert.equal(more.length, 0);
      assert.equal(reply!.flags, FrameFlag.placed | FrameFlag.canPlace | FrameFlag.canQuiet);
      assert.equal(reply!.fragment.length, 11, 'the header alone');
      assert.equal(reply!.fragment.readUInt32LE(0), 11 + data.length, 'its size counts the placed data');
      assert.equal(reply!.fragment.readUInt32LE(7), data.length);
      assert.equal(ram.writes.length, 1);
      assert.deepEqual(ram.writes[0]!.segments, segments);
      assert.ok(ram.writes[0]!.data.equals(data));
      assert.ok(peer.frames.every((f) => f.flags & FrameFlag.canPlace));
      assert.equal(transport.counters.placed, 1);
      // The mount goes on as before.
      assert.ok((await client.read(fid, 0, 100)).equals(data.subarray(0, 100)));
    });

    it('sends the data in frames when guest RAM refuses it, and for a broken page list', async () => {
      const client = await mount(22);
      fs.writeFileSync(path.join(tmp, 'data.bin'), 'eleven bytes');
      const fid = await client.open(1, ['data.bin'], OpenFlags.RDONLY);
      ram.accept = false;
      placedRead(22, fid, 701, 100);
      const [declined] = await replyTo(701);
      assert.equal(declined!.flags & FrameFlag.placed, 0);
      assert.equal(declined!.fragment.subarray(11).toString(), 'eleven bytes');
      assert.equal(transport.counters.declined, 1);
      ram.accept = true;
      placedRead(22, fid, 702, 100, segmentList(segments).subarray(0, 10));
      const [broken] = await replyTo(702);
      assert.equal(broken!.flags & FrameFlag.placed, 0);
      assert.equal(broken!.fragment.subarray(11).toString(), 'eleven bytes');
      assert.ok(logs.some((l) => /bad page list/.test(l)));
      assert.equal(ram.writes.length, 0);
    });

    it('retire (guest reset): what the old guest sent is dropped unread, its mounts are gone, the next guest mounts afresh', async () => {
      const client = await mount(25);
      fs.writeFileSync(path.join(tmp, 'data.bin'), 'old and new');
      const fid = await client.open(1, ['data.bin'], OpenFlags.RDONLY);
      const sessionsBefore = transport.counters.sessions;
      // Still in the socket when the reset comes: a placed read on the old
      // mount, and a mount the old kernel had just begun.
      placedRead(25, fid, 705, 100);
      peer.sendMessage(26, encode({ type: 'Tversion', tag: NOTAG, msize: 8192, version: '9P2000.L' } as never));
      await transport.retire();
      assert.equal(ram.writes.length, 0, 'nothing written to guest RAM');
      assert.equal(transport.counters.sessions, sessionsBefore, "the old kernel's new mount was not opened");
      // The read may have reached the server before the reset (its placement
      // is then cancelled, its reply dropped) or not (dropped unread).
      assert.ok(transport.counters.retired >= 1, JSON.stringify(transport.counters));
      assert.equal((await replyTo(705)).length, 0, 'no reply to the old guest');
      assert.ok(logs.some((l) => /guest reset: 1 mount\(s\) retired/.test(l)));
      // A frame naming a retired mount after the reset is dropped too.
      const retiredBefore = transport.counters.retired;
      placedRead(25, fid, 706, 100);
      await sleep(50);
      assert.equal(transport.counters.retired, retiredBefore + 1);
      assert.equal(ram.writes.length, 0);
      // The next kernel's mount works, placed reads included.
      const next = await mount(27);
      const nextFid = await next.open(1, ['data.bin'], OpenFlags.RDONLY);
      placedRead(27, nextFid, 707, 100);
      const [placed] = await replyTo(707);
      assert.ok(placed!.flags & FrameFlag.placed);
      assert.equal(ram.writes.length, 1);
      assert.equal(ram.writes[0]!.data.toString(), 'old and new');
    });

    it('quiesce (suspend): takes no request until resumed and places nothing meanwhile', async () => {
      const client = await mount(28);
      fs.writeFileSync(path.join(tmp, 'data.bin'), 'held');
      const fid = await client.open(1, ['data.bin'], OpenFlags.RDONLY);
      await transport.quiesce();
      placedRead(28, fid, 708, 100);
      await sleep(100);
      assert.equal(peer.frames.filter((f) => f.tag === 708).length, 0, 'the request waits in the socket');
      assert.equal(ram.writes.length, 0);
      transport.resume();
      const [reply] = await replyTo(708);
      assert.ok(reply!.flags & FrameFlag.placed, 'placed again after resume');
      assert.equal(ram.writes.length, 1);
    });
  });

  describe('placed writes (the data read from guest RAM)', () => {
    const MiB = 1024 * 1024;
    let ramDir: string;
    let ram: GuestRamFile;
    /** Every read the transport made of guest RAM, and the memory each went into. */
    let reads: RamSegment[][];
    let readInto: ArrayBufferLike[];
    beforeEach(async () => {
      await transport.close();
      ramDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ninep-eth-ram-'));
      ram = GuestRamFile.create(4, { dir: ramDir }) as GuestRamFile;
      assert.ok(ram instanceof GuestRamFile);
      reads = [];
      readInto = [];
      const spy = {
        write: (segments: readonly RamSegment[], data: Buffer) => ram.write(segments, data),
        read: (segments: readonly RamSegment[], into: Buffer) => (reads.push([...segments]), readInto.push(into.buffer), ram.read(segments, into)),
      };
      const [launcherEnd, qemuEnd] = duplexPair();
      transport = serveEthernetTransport(launcherEnd, {
        maxMessage: DEFAULT_MAX_MSIZE,
        log: (m) => logs.push(m),
        guestRam: spy,
        retireQuietMs: 50,
        openSession: (st) => serveNinep(st, backend, { closeBackend: false }),
      });
      peer = new FramePeer(qemuEnd);
    });
    afterEach(() => {
      ram.close();
      fs.rmSync(ramDir, { recursive: true, force: true });
    });
    /** The writer's bytes in guest RAM: 3000 at 1 MiB + 100, the rest at 2 MiB. */
    const inRam = (data: Buffer): RamSegment[] => {
      fs.writeSync(ram.fd!, data, 0, 3000, MiB + 100);
      fs.writeSync(ram.fd!, data, 3000, data.length - 3000, 2 * MiB);
      return [
        { phys: MiB + 100, len: 3000 },
        { phys: 2 * MiB, len: data.length - 3000 },
      ];
    };
    /** A Twrite's header (its size counting the data) and the page list, in one frame flagged PLACE, as the module sends it. */
    const placedWrite = (conn: number, fid: number, tag: number, count: number, list: Buffer) => {
      const header = encode({ type: 'Twrite', tag, fid, offset: 0, data: Buffer.alloc(count) } as never).subarray(0, TWRITE_HEADER_SIZE);
      peer.qemu.write(peer.frame(conn, tag, 0, Buffer.concat([header, list]), undefined, FrameFlag.place));
    };
    const replyTo = async (tag: number) => {
      for (let i = 0; i < 400 && !peer.frames.some((f) => f.tag === tag); i++) await sleep(5);
      return peer.frames.filter((f) => f.tag === tag);
    };
    const openForWrite = async (client: NinepClient) => {
      fs.writeFileSync(path.join(tmp, 'out.bin'), '');
      return client.open(1, ['out.bin'], OpenFlags.WRONLY);
    };

    it("reads the data from the writer's pages and serves the Twrite as if it had come in frames", async () => {
      const client = await mount(41);
      const fid = await openForWrite(client);
      const data = randomBytes(10_000);
      const segments = inRam(data);
      placedWrite(41, fid, 800, data.length, segmentList(segments));
      const [reply, ...more] = await replyTo(800);
      assert.equal(more.length, 0);
      assert.equal(reply!.fragment[4], MessageId.Rwrite, JSON.stringify(logs));
      assert.equal(reply!.fragment.readUInt32LE(7), data.length);
      assert.ok(fs.readFileSync(path.join(tmp, 'out.bin')).equals(data), 'the bytes in the pages reached the file');
      assert.deepEqual(reads, [segments]);
      assert.equal(transport.counters.writesPlaced, 1);
      // The mount goes on as before, writes in frames included.
      assert.equal(await client.write(fid, data.length, Buffer.from('tail')), 4);
      assert.equal(fs.readFileSync(path.join(tmp, 'out.bin')).subarray(data.length).toString(), 'tail');
    });

    it('reads the next placed write into the buffer the last one was answered from, and both land whole', async () => {
      const client = await mount(44);
      const fid = await openForWrite(client);
      const first = randomBytes(200_000);
      const second = randomBytes(200_000);
      placedWrite(44, fid, 810, first.length, segmentList(inRam(first)));
      assert.equal((await replyTo(810))[0]!.fragment[4], MessageId.Rwrite, JSON.stringify(logs));
      const header = encode({ type: 'Twrite', tag: 811, fid, offset: first.length, data: Buffer.alloc(second.length) } as never).subarray(
        0,
        TWRITE_HEADER_SIZE,
      );
      peer.qemu.write(peer.frame(44, 811, 0, Buffer.concat([header, segmentList(inRam(second))]), undefined, FrameFlag.place));
      assert.equal((await replyTo(811))[0]!.fragment[4], MessageId.Rwrite, JSON.stringify(logs));
      assert.equal(readInto.length, 2);
      assert.equal(readInto[1], readInto[0], 'the first buffer was given back once answered, and used again');
      assert.ok(fs.readFileSync(path.join(tmp, 'out.bin')).equals(Buffer.concat([first, second])));
    });

    it('fails only that request with EIO for pages outside RAM, below 1 MiB, too short, or a broken list', async () => {
      const client = await mount(42);
      const fid = await openForWrite(client);
      const data = randomBytes(5000);
      const good = inRam(data);
      const bad: Array<[string, Buffer]> = [
        ['past the end of RAM', segmentList([good[0]!, { phys: 4 * MiB - 1000, len: 2000 }])],
        ['below 1 MiB', segmentList([{ phys: 0xf0000, len: 3000 }, good[1]!])],
        ['above 4 GiB', segmentList([{ phys: 2 ** 40, len: 5000 }])],
        ['shorter than the data', segmentList([good[0]!])],
        ['a broken list', segmentList(good).subarray(0, 10)],
        ['no list', Buffer.alloc(0)],
      ];
      for (const [i, [what, list]] of bad.entries()) {
        placedWrite(42, fid, 810 + i, data.length, list);
        const [reply] = await replyTo(810 + i);
        assert.equal(reply!.fragment[4], MessageId.Rlerror, what);
        assert.equal(reply!.fragment.readUInt32LE(7), Errno.EIO, what);
      }
      assert.equal(fs.statSync(path.join(tmp, 'out.bin')).size, 0, 'nothing written');
      assert.equal(transport.counters.writesRefused, bad.length);
      assert.equal(transport.counters.writesPlaced, 0);
      // The mount is unharmed: a good placed write after them works.
      placedWrite(42, fid, 820, data.length, segmentList(good));
      const [ok] = await replyTo(820);
      assert.equal(ok!.fragment[4], MessageId.Rwrite);
      assert.ok(fs.readFileSync(path.join(tmp, 'out.bin')).equals(data));
    });

    it('quiesce (suspend): a placed write waits in the socket, RAM unread, until resumed', async () => {
      const client = await mount(43);
      const fid = await openForWrite(client);
      const data = randomBytes(6000);
      const segments = inRam(data);
      await transport.quiesce();
      placedWrite(43, fid, 830, data.length, segmentList(segments));
      await sleep(100);
      assert.equal(peer.frames.filter((f) => f.tag === 830).length, 0, 'no reply while held');
      assert.equal(reads.length, 0, 'guest RAM not read while held');
      assert.equal(fs.statSync(path.join(tmp, 'out.bin')).size, 0);
      transport.resume();
      const [reply] = await replyTo(830);
      assert.equal(reply!.fragment[4], MessageId.Rwrite);
      assert.ok(fs.readFileSync(path.join(tmp, 'out.bin')).equals(data));
    });

    it('retire (reset, or the guest kernel going away): a placed write from the old guest reads nothing and writes nothing', async () => {
      const client = await mount(44);
      const fid = await openForWrite(client);
      const data = randomBytes(6000);
      const segments = inRam(data);
      // A reset: what comes while the transport retires is dropped unread.
      const retiring = transport.retire();
      placedWrite(44, fid, 840, data.length, segmentList(segments));
      await retiring;
      // After it, a frame naming the retired mount is dropped too.
      placedWrite(44, fid, 841, data.length, segmentList(segments));
      await sleep(50);
      assert.equal(reads.length, 0, 'guest RAM not read');
      assert.equal(peer.frames.filter((f) => f.tag === 840 || f.tag === 841).length, 0, 'no reply to the old guest');
      assert.equal(fs.statSync(path.join(tmp, 'out.bin')).size, 0);
      // The next kernel's mount places writes; its reboot notifier's retire frame ends that too.
      const next = await mount(45);
      const nextFid = await openForWrite(next);
      placedWrite(45, nextFid, 842, data.length, segmentList(segments));
      assert.equal((await replyTo(842))[0]!.fragment[4], MessageId.Rwrite);
      assert.equal(reads.length, 1);
      peer.qemu.write(peer.frame(45, NOTAG, 0, Buffer.alloc(0), undefined, FrameFlag.retire));
      for (let i = 0; i < 200 && transport.counters.guestRetires === 0; i++) await sleep(5);
      placedWrite(45, nextFid, 843, 10, segmentList(segments));
      await sleep(50);
      assert.equal(reads.length, 1, 'nothing read after the guest retired');
      assert.equal(peer.frames.filter((f) => f.tag === 843).length, 0);
    });
  });

  it('quiet requests: says canQuiet; a Tclunk or clone Twalk flagged noReply gets no reply, and its tag and fid serve the next request at once', async () => {
    const client = await mount(31);
    const fid = await client.open(1, ['hello.txt'], OpenFlags.RDONLY);
    const other = (await client.walk(1, ['hello.txt'])).fid;
    assert.ok(
      peer.frames.every((f) => f.flags & FrameFlag.canQuiet),
      'every frame says the launcher answers no quiet clunk',
    );
    const before = peer.frames.length;
    // As the guest module sends them: clunk after clunk with the same tag
    // (the lowest free), then at once that tag and a freed fid number again
    // (a walk that makes that fid anew), before any reply.
    peer.qemu.write(peer.frame(31, 800, 0, encode({ type: 'Tclunk', tag: 800, fid: other } as never), undefined, FrameFlag.noReply));
    peer.qemu.write(peer.frame(31, 800, 0, encode({ type: 'Tclunk', tag: 800, fid } as never), undefined, FrameFlag.noReply));
    peer.qemu.write(peer.frame(31, 800, 0, encode({ type: 'Twalk', tag: 800, fid: 1, newfid: fid, wnames: ['hello.txt'] } as never)));
    for (let i = 0; i < 200 && !peer.frames.slice(before).some((f) => f.tag === 800); i++) await sleep(5);
    await sleep(50);
    const replies = peer.frames.slice(before).filter((f) => f.tag === 800);
    assert.equal(replies.length, 1, "one reply for the tag: the walk's");
    assert.equal(replies[0]!.fragment[4], MessageId.Rwalk, 'the walk made the fid the clunk freed');
    assert.equal(transport.counters.quietRequests, 2);
    // A clone (a walk with no names) sent quietly, its tag again at once: the clone is there for the walk's lopen.
    const before2 = peer.frames.length;
    peer.qemu.write(peer.frame(31, 802, 0, encode({ type: 'Twalk', tag: 802, fid, newfid: 900, wnames: [] } as never), undefined, FrameFlag.noReply));
    peer.qemu.write(peer.frame(31, 802, 0, encode({ type: 'Tlopen', tag: 802, fid: 900, flags: OpenFlags.RDONLY } as never)));
    for (let i = 0; i < 200 && !peer.frames.slice(before2).some((f) => f.tag === 802); i++) await sleep(5);
    await sleep(50);
    assert.deepEqual(
      peer.frames
        .slice(before2)
        .filter((f) => f.tag === 802)
        .map((f) => f.fragment[4]),
      [MessageId.Rlopen],
    );
    assert.equal(transport.counters.quietRequests, 3);
    // Anything else flagged noReply is dropped unanswered.
    const dropped = transport.counters.dropped;
    peer.qemu.write(peer.frame(31, 803, 0, encode({ type: 'Tgetattr', tag: 803, fid, requestMask: 0x3fff } as never), undefined, FrameFlag.noReply));
    for (let i = 0; i < 200 && transport.counters.dropped === dropped; i++) await sleep(5);
    assert.equal(transport.counters.dropped, dropped + 1);
    // A clunk without the flag is answered as before.
    peer.qemu.write(peer.frame(31, 801, 0, encode({ type: 'Tclunk', tag: 801, fid } as never)));
    for (let i = 0; i < 200 && !peer.frames.some((f) => f.tag === 801); i++) await sleep(5);
    assert.equal(peer.frames.find((f) => f.tag === 801)!.fragment[4], MessageId.Rclunk);
  });

  it('without guest RAM: no canPlace, and a page list after a Tread is ignored', async () => {
    const client = await mount(23);
    fs.writeFileSync(path.join(tmp, 'data.bin'), 'in frames');
    const fid = await client.open(1, ['data.bin'], OpenFlags.RDONLY);
    const message = encode({ type: 'Tread', tag: 703, fid, offset: 0, count: 100 } as never);
    peer.qemu.write(peer.frame(23, 703, 0, Buffer.concat([message, segmentList([{ phys: 0, len: 4096 }])]), undefined, FrameFlag.place));
    for (let i = 0; i < 200 && !peer.frames.some((f) => f.tag === 703); i++) await sleep(5);
    const reply = peer.frames.find((f) => f.tag === 703)!;
    assert.equal(reply.flags, FrameFlag.canQuiet);
    assert.equal(reply.fragment.subarray(11).toString(), 'in frames');
    assert.ok(peer.frames.every((f) => (f.flags & FrameFlag.canPlace) === 0));
  });

  it('drops a frame longer than its message unless it is a placed read', async () => {
    const client = await mount(24);
    const message = encode({ type: 'Tgetattr', tag: 704, fid: 1, requestMask: 0x7ff } as never);
    peer.qemu.write(peer.frame(24, 704, 0, Buffer.concat([message, Buffer.alloc(16)])));
    await sleep(20);
    assert.ok(logs.some((l) => /longer than its message/.test(l)));
    assert.ok((await client.getattr(1)).qid);
  });
});
