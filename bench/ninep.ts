// bench/ninep: the launcher's 9P2000.L server against QEMU's own virtio-9p
// (local backend), both exporting the same host directory to the same guest,
// in the same run, alternating:
//
//   ours     serveNinep + LocalDirBackend behind the Ethernet transport on
//            the namespace's network card, mounted by the payload's own boot
//            step (40-namespace.sh: 9pnet_pocketvm) on /host, as in a session
//   baseline -fsdev local,security_model=none + virtio-9p-pci, mounted with
//            trans=virtio and the same options (msize, cache=mmap, ...)
//   guestfwd (with --guestfwd) our server again, over user-mode networking's
//            guestfwd to a private chardev, mounted with trans=tcp: the
//            transport the issue asked to compare
//
// Ours has the guest's RAM as a shared file (src/vmm/guest-ram.ts), so its
// reads are placed: the launcher writes the data into the reader's pages, as
// virtio-9p does; --no-place gives the guest ordinary RAM (reads copied by
// the guest CPU out of the frames, the fallback).
//
// Measured inside the guest (/proc/uptime, 10 ms steps): sequential write and
// read of a file (--mib, default 256; caches dropped before the read), stat of
// each of --files (default 10,000) names from a shell loop (the loop's own
// cost, measured on the guest's tmpfs, subtracted), and readdir of that
// directory (a shell glob: names only, no stat). Then the server's own cost
// per message, in process with no guest. Prints medians and ratios (target:
// ours >= 0.5 x QEMU's on every line); never fails on a time.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveEthernetTransport, type EthernetTransport } from '../src/dyntable/ninep/ethernet-transport.ts';
import { LocalDirBackend } from '../src/dyntable/ninep/local-backend.ts';
import { type NinepServer, serveNinep } from '../src/dyntable/ninep/server.ts';
import { linuxHost } from '../src/hostprobe/linux.ts';
import { openGuestPayload } from '../src/payload/guest-payload.ts';
import { NAMESPACE_CHANNEL_ID, NAMESPACE_CMDLINE_WORD, NAMESPACE_MAC, NAMESPACE_MSIZE } from '../src/session/namespace-channel.ts';
import { GuestRamFile } from '../src/vmm/guest-ram.ts';
import { Machine } from '../src/vmm/machine.ts';
import { fdChannels } from '../src/vmm/qemu-process.ts';
import { startHarness } from '../test/dyntable/ninep/harness.ts';
import { benchOptions, median } from './bench-options.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const { runs, json, say } = benchOptions(3);
const numberOption = (name: string, fallback: number) => {
  const at = process.argv.indexOf(name);
  const value = at >= 0 ? Number(process.argv[at + 1]) : fallback;
  return Number.isInteger(value) && value > 0 ? value : fallback;
};
const MIB = numberOption('--mib', 256);
const FILES = numberOption('--files', 10_000);
const withGuestfwd = process.argv.includes('--guestfwd');
const place = !process.argv.includes('--no-place');

type Target = 'ours' | 'qemu' | 'guestfwd';
const MOUNTS: Record<Target, string> = { ours: '/host', qemu: '/mnt/qemu9p', guestfwd: '/mnt/guestfwd' };
/** What 40-namespace.sh gives /host, minus the transport. */
const MOUNT_OPTIONS = `version=9p2000.L,msize=${NAMESPACE_MSIZE},cache=mmap,noatime,nosuid,nodev`;
const FWD_CHANNEL = 'fwd';
const FWD_MAC = '02:70:76:6d:39:02';

interface Sample {
  writeMiBs: number;
  readMiBs: number;
  statOps: number;
  readdirOps: number;
}

const parent = await mkdtemp(join(tmpdir(), 'pocketvm-bench-ninep-'));
let machine: Machine | undefined;
let guestRam: GuestRamFile | undefined;
const servers: NinepServer[] = [];
const transports: EthernetTransport[] = [];
try {
  const shared = join(parent, 'shared');
  await mkdir(join(shared, 'many'), { recursive: true });
  say(`bench/ninep: ${FILES} files in ${shared}/many`);
  for (let i = 0; i < FILES; i++) await writeFile(join(shared, 'many', `f${i}`), '');

  const payload = await openGuestPayload(join(root, 'payload'), 'default');
  const channels = fdChannels([NAMESPACE_CHANNEL_ID, ...(withGuestfwd ? [FWD_CHANNEL] : [])]);
  const fwd = channels.extra?.[FWD_CHANNEL];
  const extraArgs = [
    '-fsdev', `local,id=qemu9p,path=${shared},security_model=none`,
    '-device', 'virtio-9p-pci,fsdev=qemu9p,mount_tag=qemu9p',
    ...(fwd?.kind === 'fd'
      ? ['-chardev', `socket,id=${FWD_CHANNEL},fd=${fwd.fd}`, '-netdev', `user,id=fwdnet,restrict=on,guestfwd=tcp:10.0.2.100:564-chardev:${FWD_CHANNEL}`, '-device', `virtio-net-pci,netdev=fwdnet,mac=${FWD_MAC},romfile=`]
      : []),
  ];
  say('booting the guest (TCG): our server on the namespace card, QEMU virtio-9p on the same folder');
  const backend = await LocalDirBackend.open(shared);
  const serve = (stream: import('node:stream').Duplex) => {
    const server = serveNinep(stream, backend, { closeBackend: false, maxMsize: NAMESPACE_MSIZE });
    servers.push(server);
    return server;
  };
  const memoryMiB = payload.manifest.memory.recommendedMiB;
  if (place) {
    const ram = GuestRamFile.create(memoryMiB);
    if (ram instanceof GuestRamFile) guestRam = ram;
    else say(`no shared guest RAM (${ram.reason}): reads are copied in the guest`);
  }
  machine = await Machine.boot({
    ...(guestRam ? { guestRam } : {}),
    spec: {
      name: 'pocketvm-bench-ninep',
      hostOs: 'linux',
      accelerator: 'tcg',
      memoryMiB,
      cpus: 1,
      kernel: payload.kernel,
      initrd: payload.initrd,
      cmdline: `${payload.manifest.cmdline} ${NAMESPACE_CMDLINE_WORD}`,
      disks: [],
      network: 'none',
      channels,
      nics: [{ id: NAMESPACE_CHANNEL_ID, mac: NAMESPACE_MAC }],
      ...(withGuestfwd ? { streams: [FWD_CHANNEL] } : {}),
      startPaused: true,
    },
    binary: 'qemu-system-x86_64',
    // QEMU takes its options in any order: the baseline's devices go first.
    binaryPrefixArgs: extraArgs,
    host: linuxHost,
    logs: { qemu: join(parent, 'qemu.log'), console: join(parent, 'console.log') },
    signOfLifeTimeoutMs: 180_000,
    readyTimeoutMs: 180_000,
    attach: async (_qmp, streams) => {
      // Served while paused, as in a session: the boot step mounts /host before ready.
      transports.push(serveEthernetTransport(streams[NAMESPACE_CHANNEL_ID]!, { maxMessage: NAMESPACE_MSIZE, openSession: serve, ...(guestRam ? { guestRam } : {}) }));
      if (streams[FWD_CHANNEL]) serve(streams[FWD_CHANNEL]);
    },
  });
  const guest = machine;
  /** Runs a script as root; returns its output and its duration measured in the guest. */
  const sh = async (script: string): Promise<{ out: string; ms: number }> => {
    const wrapped = `read t0 _ </proc/uptime\n${script}\nrc=$?\nread t1 _ </proc/uptime\necho "@@ $t0 $t1"\nexit $rc`;
    const result = await guest.agent.run('/bin/sh', ['-c', wrapped], { timeoutMs: 1_800_000 });
    const out = result.stdout.toString();
    if (result.exitCode !== 0) throw new Error(`guest: ${script}: exit ${result.exitCode}: ${result.stderr.toString()}${out}`);
    const times = /@@ ([\d.]+) ([\d.]+)\n?$/.exec(out);
    if (!times) throw new Error(`guest: ${script}: no timing`);
    return { out: out.slice(0, times.index), ms: Math.max(10, (Number(times[2]) - Number(times[1])) * 1000) };
  };

  const mounted = (await sh('grep " 9p " /proc/mounts')).out;
  if (!mounted.includes(' /host 9p ')) throw new Error(`the boot step did not mount /host: ${mounted}`);
  await sh(`mkdir -p ${MOUNTS.qemu} && mount -t 9p -o trans=virtio,${MOUNT_OPTIONS} qemu9p ${MOUNTS.qemu}`);
  if (withGuestfwd) {
    await sh(`for d in /sys/class/net/*; do [ "$(cat $d/address)" = ${FWD_MAC} ] && ifc=\${d##*/}; done; ip link set $ifc up && ip addr add 10.0.2.15/24 dev $ifc && mkdir -p ${MOUNTS.guestfwd} && mount -t 9p -o trans=tcp,port=564,${MOUNT_OPTIONS} 10.0.2.100 ${MOUNTS.guestfwd}`);
  }
  const mountLines = (await sh('grep " 9p " /proc/mounts')).out.trim();
  // The shell loop's own cost (same names, on tmpfs), subtracted from the stat figures.
  await sh(`mkdir -p /tmp/many && cd /tmp/many && i=0; while [ $i -lt ${FILES} ]; do : >f$i; i=$((i + 1)); done`);
  const statLoop = (dir: string) => `cd ${dir} && i=0; while [ $i -lt ${FILES} ]; do [ -e f$i ] || exit 1; i=$((i + 1)); done`;
  const loopMs: number[] = [];
  const dropCaches = 'sync; echo 3 >/proc/sys/vm/drop_caches';

  const measure = async (target: Target): Promise<Sample> => {
    const dir = MOUNTS[target];
    await sh(`rm -f ${dir}/bench.bin; ${dropCaches}`);
    const write = await sh(`dd if=/dev/zero of=${dir}/bench.bin bs=1M count=${MIB} conv=fsync 2>/dev/null`);
    await sh(dropCaches);
    const read = await sh(`dd if=${dir}/bench.bin of=/dev/null bs=1M 2>/dev/null`);
    await sh(`rm -f ${dir}/bench.bin; ${dropCaches}`);
    const stat = await sh(statLoop(`${dir}/many`));
    loopMs.push((await sh(statLoop('/tmp/many'))).ms);
    await sh(dropCaches);
    const readdir = await sh(`set -- ${dir}/many/*; [ $# -eq ${FILES} ] || { echo "$# names"; exit 1; }`);
    const fsStatMs = Math.max(10, stat.ms - median(loopMs));
    return { writeMiBs: MIB / (write.ms / 1000), readMiBs: MIB / (read.ms / 1000), statOps: FILES / (fsStatMs / 1000), readdirOps: FILES / (readdir.ms / 1000) };
  };

  const targets: Target[] = ['ours', 'qemu', ...(withGuestfwd ? (['guestfwd'] as const) : [])];
  const samples: Record<Target, Sample[]> = { ours: [], qemu: [], guestfwd: [] };
  for (let run = 0; run < runs; run++) {
    // Alternate who goes first: the guest's memory and the host's page cache favour neither.
    const order = run % 2 === 0 ? targets : [...targets].reverse();
    for (const target of order) {
      const sample = await measure(target);
      samples[target].push(sample);
      say(`run ${run + 1}/${runs} ${target.padEnd(8)} write ${sample.writeMiBs.toFixed(1)} MiB/s  read ${sample.readMiBs.toFixed(1)} MiB/s  stat ${sample.statOps.toFixed(0)}/s  readdir ${sample.readdirOps.toFixed(0)}/s`);
    }
  }
  // The guest CPU's own copy speed (a tmpfs file read into a buffer, one
  // copy_to_user per byte): no transport through which the guest copies each
  // byte even once can read faster than this, while virtio-9p's reads are
  // copied by QEMU on the host into the reader's pages.
  const ceilingMs: number[] = [];
  const CEILING_MIB = Math.min(MIB, 64); // in guest RAM: small enough for any guest size
  await sh(`dd if=/dev/zero of=/tmp/ceiling.bin bs=1M count=${CEILING_MIB} 2>/dev/null`);
  for (let run = 0; run < runs; run++) ceilingMs.push((await sh('dd if=/tmp/ceiling.bin of=/dev/null bs=1M 2>/dev/null')).ms);
  await sh('rm -f /tmp/ceiling.bin');
  const guestCopyMiBs = CEILING_MIB / (median(ceilingMs) / 1000);
  const messages = servers.reduce((n, s) => n + s.counters.messages, 0);
  const placed = transports.reduce((n, t) => n + t.counters.placed, 0);
  const declined = transports.reduce((n, t) => n + t.counters.declined, 0);
  await machine.shutdown();
  machine = undefined;

  // The server's own cost per message: one client, one request in flight, no guest.
  say('server overhead: in process, no guest');
  const harness = await startHarness(join(parent, 'shared'));
  const c = harness.client;
  const fileFid = await c.open(harness.root, ['many', 'f0'], 0);
  const rounds = 20_000;
  let started = performance.now();
  for (let i = 0; i < rounds; i++) await c.getattr(fileFid);
  const getattrUs = ((performance.now() - started) * 1000) / rounds;
  started = performance.now();
  for (let i = 0; i < rounds / 2; i++) await c.clunk((await c.walk(harness.root, ['many', `f${i % FILES}`])).fid);
  const walkClunkUs = ((performance.now() - started) * 1000) / rounds;
  await harness.close();

  const med = (target: Target, key: keyof Sample) => median(samples[target].map((s) => s[key]));
  const lines = (['writeMiBs', 'readMiBs', 'statOps', 'readdirOps'] as const).map((key) => ({
    key,
    ours: med('ours', key),
    qemu: med('qemu', key),
    ratio: med('ours', key) / med('qemu', key),
    ...(withGuestfwd ? { guestfwd: med('guestfwd', key), guestfwdRatio: med('guestfwd', key) / med('qemu', key) } : {}),
  }));
  const result = {
    runs,
    fileMiB: MIB,
    files: FILES,
    mounts: mountLines.split('\n'),
    shellLoopMs: Math.round(median(loopMs)),
    lines: lines.map((l) => Object.fromEntries(Object.entries(l).map(([k, v]) => [k, typeof v === 'number' ? Number(v.toFixed(3)) : v]))),
    target: 0.5,
    serverMessages: messages,
    placedReads: { placed, declined, sharedRam: guestRam !== undefined },
    serverOverheadUs: { getattr: Number(getattrUs.toFixed(1)), walkOrClunk: Number(walkClunkUs.toFixed(1)) },
    guestCopyMiBs: Number(guestCopyMiBs.toFixed(1)),
    samples,
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    const label: Record<(typeof lines)[number]['key'], string> = {
      writeMiBs: `sequential write ${MIB} MiB (MiB/s)`,
      readMiBs: `sequential read ${MIB} MiB (MiB/s)`,
      statOps: `stat, ${FILES} files (ops/s)`,
      readdirOps: `readdir, ${FILES} entries (entries/s)`,
    };
    const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(1)).padStart(8);
    const header = `${''.padEnd(38)}${'ours'.padStart(8)}${'QEMU 9p'.padStart(10)}  ratio${withGuestfwd ? `${'guestfwd'.padStart(10)}  ratio` : ''}`;
    process.stdout.write(
      [
        `bench/ninep, TCG, median of ${runs}: our server on the namespace card (9pnet_pocketvm) against QEMU's virtio-9p (local), same folder, same guest`,
        header,
        ...lines.map((l) => `  ${label[l.key].padEnd(36)}${fmt(l.ours)}${fmt(l.qemu).padStart(10)}  ${l.ratio.toFixed(2).padStart(5)}${l.guestfwd === undefined ? '' : `${fmt(l.guestfwd).padStart(10)}  ${l.guestfwdRatio!.toFixed(2).padStart(5)}`}`),
        `  target: ours >= 0.50 x QEMU's on every line; stat figures exclude the shell loop (${result.shellLoopMs} ms per ${FILES} on tmpfs)`,
        `guest copy ceiling: a ${CEILING_MIB} MiB tmpfs read in the guest runs at ${guestCopyMiBs.toFixed(1)} MiB/s (${(guestCopyMiBs / med('qemu', 'readMiBs')).toFixed(2)} x QEMU's 9P read): a transport the guest copies through once reads no faster`,
        `placed reads: ${guestRam ? `${placed} Rreads written into the readers' pages${declined ? `, ${declined} declined` : ''}` : 'off (ordinary guest RAM): the guest copied every read'}`,
        `server overhead per message (in process, no guest): Tgetattr ${result.serverOverheadUs.getattr} us, Twalk/Tclunk ${result.serverOverheadUs.walkOrClunk} us; ${messages} messages served in the guest runs`,
      ].join('\n') + '\n',
    );
  }
} finally {
  machine?.kill();
  // After QEMU: the launcher's descriptor is the last reference to the RAM file.
  if (machine) await machine.process.exited;
  guestRam?.close();
  for (const transport of transports) await transport.close().catch(() => {});
  for (const server of servers) await server.close().catch(() => {});
  await rm(parent, { recursive: true, force: true });
}
