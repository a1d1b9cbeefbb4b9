// In-process throughput of the server + LocalDirBackend (no guest): the
// ceiling the guest transport can reach. Prints figures; never fails on time.
// Full size: NINEP_PERF_MIB=256 NINEP_PERF_FILES=10000.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { OpenFlags } from '../../src/ninep/backend.ts';
import { decodeDirents } from '../../src/ninep/codec.ts';
import { startHarness } from './harness.ts';

const MiB = 1024 * 1024;
const FILE_MiB = Number(process.env.NINEP_PERF_MIB ?? 64);
const FILES = Number(process.env.NINEP_PERF_FILES ?? 2000);

describe('ninep in-process throughput', function () {
  this.timeout(600_000);
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ninep-perf-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it(`sequential write and read of ${FILE_MiB} MiB, stat + readdir of ${FILES} files`, async () => {
    const h = await startHarness(tmp);
    const c = h.client;
    const chunk = 512 * 1024 - 24;
    const data = Buffer.alloc(chunk, 0x5a);
    const total = FILE_MiB * MiB;
    // Several requests in flight, like the Linux client with several pages in writeback.
    const depth = 4;
    let t = performance.now();
    const wfid = await c.create(h.root, [], 'big', OpenFlags.RDWR);
    for (let off = 0; off < total; off += chunk * depth) {
      const ps: Array<Promise<number>> = [];
      for (let i = 0; i < depth && off + i * chunk < total; i++)
        ps.push(c.write(wfid, off + i * chunk, data.subarray(0, Math.min(chunk, total - off - i * chunk))));
      await Promise.all(ps);
    }
    await c.clunk(wfid);
    const writeMBs = total / MiB / ((performance.now() - t) / 1000);
    t = performance.now();
    const rfid = await c.open(h.root, ['big'], OpenFlags.RDONLY);
    let got = 0;
    for (let off = 0; off < total; off += chunk * depth) {
      const ps: Array<Promise<Buffer>> = [];
      for (let i = 0; i < depth; i++) ps.push(c.read(rfid, off + i * chunk, chunk));
      for (const b of await Promise.all(ps)) got += b.length;
    }
    await c.clunk(rfid);
    assert.equal(got, total);
    const readMBs = total / MiB / ((performance.now() - t) / 1000);

    fs.mkdirSync(path.join(tmp, 'many'));
    for (let i = 0; i < FILES; i++) fs.writeFileSync(path.join(tmp, 'many', `f${i}`), '');
    t = performance.now();
    const dfid = await c.open(h.root, ['many'], OpenFlags.RDONLY | OpenFlags.DIRECTORY);
    const names: string[] = [];
    let offset = 0;
    for (;;) {
      const r = await c.call({ type: 'Treaddir', fid: dfid, offset, count: 512 * 1024 - 24 });
      const es = decodeDirents(r.data);
      if (es.length === 0) break;
      for (const e of es) names.push(e.name);
      offset = es[es.length - 1]!.offset;
    }
    await c.clunk(dfid);
    const readdirMs = performance.now() - t;
    const dir = await c.walk(h.root, ['many']);
    t = performance.now();
    const conc = 8;
    for (let i = 0; i < FILES; i += conc) {
      await Promise.all(
        Array.from({ length: Math.min(conc, FILES - i) }, async (_, j) => {
          const w = await c.walk(dir.fid, [`f${i + j}`]);
          await c.getattr(w.fid);
          await c.clunk(w.fid);
        }),
      );
    }
    const statOps = FILES / ((performance.now() - t) / 1000);
    assert.equal(names.length, FILES + 2);
    console.log(
      `      write ${writeMBs.toFixed(0)} MB/s, read ${readMBs.toFixed(0)} MB/s, readdir ${FILES} in ${readdirMs.toFixed(0)} ms, walk+getattr+clunk ${statOps.toFixed(0)} files/s`,
    );
    console.log(`      counters: ${JSON.stringify(h.server.counters)}`);
    await h.close();
  });
});
