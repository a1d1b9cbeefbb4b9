// What checking an image guest's base block by block costs (docs/images.md,
// "How the base is checked"), in one run: the launch's critical path before
// (the whole base hashed) and now (its block list read and checked), and the
// read throughput QEMU sees through the launcher's checking NBD server
// against QEMU reading the file itself (`qemu-img bench`, sequential 64 KiB
// reads, O_DIRECT off). Usage: node bench/verified-base.ts [guest...]
// (default: console-image desktop, each must be built in payload/).
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { verifyBase } from '../src/payload/guest-payload.ts';
import { loadManifest } from '../src/payload/guest-manifest.ts';
import { serveVerifiedBase } from '../src/session/verified-base.ts';

const guests = process.argv.slice(2).length ? process.argv.slice(2) : ['console-image', 'desktop'];
const READ = 64 * 1024;

// Asynchronous: the checking server answers from this same process.
async function qemuImgBench(args: string[], count: number): Promise<number> {
  const started = performance.now();
  await promisify(execFile)('qemu-img', ['bench', '-c', String(count), '-s', String(READ), '-d', '4', ...args]);
  return (performance.now() - started) / 1000;
}

for (const guest of guests) {
  const dir = join(import.meta.dirname, '..', 'payload', guest);
  const manifest = await loadManifest(dir);
  if (!manifest.image?.blocks) throw new Error(`payload/${guest} has no block list: node build.js image ${guest}`);
  let started = performance.now();
  await verifyBase(dir, manifest.image, 'full');
  const fullS = (performance.now() - started) / 1000;
  started = performance.now();
  const base = await verifyBase(dir, manifest.image, 'blocks');
  const listS = (performance.now() - started) / 1000;
  const mib = manifest.image.bytes / 1048576;
  console.log(
    `${guest}: base ${mib.toFixed(0)} MiB; launch critical path: whole-base sha256 ${fullS.toFixed(2)} s (before) -> block list ${(listS * 1000).toFixed(1)} ms (now)`,
  );

  const count = Math.floor(manifest.image.bytes / READ);
  const direct = await qemuImgBench(['-f', 'raw', base.path], count);
  const served = await serveVerifiedBase(base.path, base.blocks!, (error) => {
    throw error;
  });
  try {
    const nbd = await qemuImgBench(['--image-opts', `driver=raw,file.driver=nbd,file.server.type=unix,file.server.path=${served.socket}`], count);
    console.log(
      `${guest}: sequential read of the whole base: QEMU on the file ${(mib / direct).toFixed(0)} MiB/s, through the checking server ${(mib / nbd).toFixed(0)} MiB/s (${(nbd / direct).toFixed(2)}x the time)`,
    );
  } finally {
    await served.close();
  }
}
console.log(`load: ${execFileSync('cat', ['/proc/loadavg']).toString().trim()}`);
