// bench/ninep: the namespace a session serves against QEMU's own virtio-9p,
// both on the same host folder, same guest, same run, alternating:
//
//   ours     the product's path: openNamespace (src/dyntable/namespace.ts)
//            on a temporary stick with a home whose Documents folder is
//            served by the built-in rules (copy-on-write, the default
//            exclusions, the guest user as owner), sealed at rest under a
//            user's key (src/dyntable/sealed/) as every session's is, the 9P
//            server behind the Ethernet transport on the namespace card,
//            mounted on /host by the payload's own boot step
//            (40-namespace.sh), as in a session
//   plain    the same namespace on a second stick without the at-rest key,
//            mounted a second time over the same card on /mnt/plain: what
//            sealing costs through a guest (ours / plain)
//   baseline -fsdev local,security_model=none + virtio-9p-pci on that same
//            Documents folder, mounted with trans=virtio and the same
//            options (msize, cache=mmap, ...)
//   guestfwd (with --guestfwd) our server again, over user-mode networking's
//            guestfwd to a private chardev, mounted with trans=tcp
//
// Ours has the guest's RAM as a shared file (src/vmm/guest-ram.ts), so its
// reads and writes are placed; --no-place gives the guest ordinary RAM.
//
// Measured inside the guest (/proc/uptime, 10 ms steps): sequential write of
// a file (--mib, default 256: for ours it lands in upper/ on the stick), read
// back (caches dropped; the write line's --lines name covers both), read of a
// host file of that size (caches dropped), stat of each of --files
// (default 10,000) host files from a shell loop and readdir of them (a glob),
// then create, list and stat as many files in a new folder (for ours a
// copy-on-write folder: everything lands in upper/). The shell loops' own
// cost, measured on the guest's tmpfs, is subtracted. Then a second table,
// in process with no guest: the same listing and lookups through the 9P
// server on the namespace and on LocalDirBackend (the plain passthrough).
// --lines write,read,stat,readdir,create,list,cowstat measures only those
// (bench/ninep-in-process.ts gives the second table alone, without a guest).
// Prints medians and ratios (target: ours >= 1.0 x QEMU's on every line,
// 0.5 the floor; sealed >= 0.8 x plain), and the launcher's part of a Twrite's
// and a Tread's round trip (the server's time to answer, the transport's
// reading or writing guest RAM; the rest is the guest's and QEMU's); never
// fails on a time.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { openNamespace } from '../src/dyntable/namespace.ts';
import { discoverHostContext } from '../src/dyntable/name-mapping.ts';
import { deriveAtRestKey } from '../src/dyntable/sealed/keys.ts';
import { sealedReadCounters } from '../src/dyntable/sealed/sealed-file.ts';
import type { NinepBackend } from '../src/ninep/backend.ts';
import { serveEthernetTransport, type EthernetTransport } from '../src/ninep/ethernet-transport.ts';
import { LocalDirBackend } from '../test/ninep/local-backend.ts';
import { type NinepServer, serveNinep } from '../src/ninep/server.ts';
import { linuxHost } from '../src/hostprobe/linux.ts';
import { openGuestPayload } from '../src/payload/guest-payload.ts';
import { NAMESPACE_CHANNEL_ID, NAMESPACE_CMDLINE_WORD, NAMESPACE_MAC } from '../src/session/namespace-channel.ts';
import { NAMESPACE_MSIZE } from '../src/ninep/msize.ts';
import { GUEST_USER_ID } from '../src/session/personal-disk.ts';
import { stickLayout } from '../src/stick/layout.ts';
import { GuestRamFile } from '../src/vmm/guest-ram.ts';
import { Machine } from '../src/vmm/machine.ts';
import { type NicTxWatchdog, watchNicTransmit } from '../src/vmm/nic-tx-watchdog.ts';
import { fdChannels } from '../src/vmm/qemu-process.ts';
import { EXEC_CHANNEL_ID, EXEC_PORT_NAME, ExecService } from '../src/session/exec-channel.ts';
import { benchOptions, median, numberOption } from './bench-options.ts';
import { inProcessFigures } from './ninep-in-process-figures.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const { runs, json, say } = benchOptions(3);
const MIB = numberOption('--mib', 256);
const FILES = numberOption('--files', 10_000);
const withGuestfwd = process.argv.includes('--guestfwd');
const place = !process.argv.includes('--no-place');
/** --lines readdir,stat: measure only these lines (quicker while working on one of them). */
const linesAt = process.argv.indexOf('--lines');
const only = linesAt >= 0 ? new Set((process.argv[linesAt + 1] ?? '').split(',')) : undefined;
const wanted = (line: string) => only === undefined || only.has(line);

type Target = 'ours' | 'plain' | 'qemu' | 'guestfwd';
/** Where each target shows the served Documents folder in the guest. */
const MOUNTS: Record<Target, string> = { ours: '/host/Documents', plain: '/mnt/plain/Documents', qemu: '/mnt/qemu9p', guestfwd: '/mnt/guestfwd/Documents' };
/** What 40-namespace.sh gives /host, minus the transport. */
const MOUNT_OPTIONS = `version=9p2000.L,msize=${NAMESPACE_MSIZE},cache=mmap,noatime,nosuid,nodev`;
const FWD_CHANNEL = 'fwd';
const FWD_MAC = '02:70:76:6d:39:02';

const KEYS = ['writeMiBs', 'readBackMiBs', 'readMiBs', 'statOps', 'readdirOps', 'createOps', 'listOps', 'cowStatOps'] as const;
type Key = (typeof KEYS)[number];
type Sample = Record<Key, number>;
const LABELS: Record<Key, string> = {
  writeMiBs: `write ${MIB} MiB (MiB/s)`,
  readBackMiBs: `read back what was written (MiB/s)`,
  readMiBs: `read ${MIB} MiB host file (MiB/s)`,
  statOps: `stat ${FILES} host files (/s)`,
  readdirOps: `readdir ${FILES} host files (/s)`,
  createOps: `create ${FILES} files, cow folder (/s)`,
  listOps: `list ${FILES} files, cow folder (/s)`,
  cowStatOps: `stat ${FILES} files, cow folder (/s)`,
};

/** In process, no guest: one listing and a walk + getattr + clunk of each name through the 9P server. */
const inProcess = (backend: NinepBackend, dir: string[]) => inProcessFigures(backend, dir, FILES);
const round = (v: number) => Number(v.toFixed(3));

const parent = await mkdtemp(join(tmpdir(), 'pocketvm-bench-ninep-'));
let machine: Machine | undefined;
let guestRam: GuestRamFile | undefined;
const namespaces: NinepBackend[] = [];
const servers: NinepServer[] = [];
const transports: EthernetTransport[] = [];
const watchdogs: NicTxWatchdog[] = [];
try {
  // A home with the folder a person would have, served by the built-in rules.
  const home = join(parent, 'home');
  const documents = join(home, 'Documents');
  const stick = join(parent, 'stick');
  const plainStick = join(parent, 'plain-stick');
  await mkdir(join(documents, 'many'), { recursive: true });
  await mkdir(join(home, '.ssh'), { recursive: true });
  await writeFile(join(home, '.ssh', 'id_ed25519'), 'secret');
  await mkdir(stick, { recursive: true });
  await mkdir(plainStick, { recursive: true });
  say(`bench/ninep: ${FILES} files in ${documents}/many, a ${MIB} MiB host file`);
  for (let i = 0; i < FILES; i++) await writeFile(join(documents, 'many', `f${i}`), '');
  // Content, not a hole: the read is of real blocks.
  await writeFile(join(documents, 'big.bin'), Buffer.alloc(MIB << 20, 0x5a));

  const payload = await openGuestPayload(join(root, 'payload'), 'default');
  const host = await discoverHostContext({ home, env: { HOME: home }, stickRoot: stick });
  const open = async (onStick: string, atRestKey?: Buffer) => {
    const opened = await openNamespace({
      layout: stickLayout(onStick),
      user: 'bench',
      guest: 'default',
      manifest: payload.manifest,
      host,
      owner: { uid: GUEST_USER_ID, gid: GUEST_USER_ID },
      mapHostOwner: true,
      ...(atRestKey ? { atRestKey } : {}),
    });
    namespaces.push(opened.backend);
    const served = opened.table.entries.find((e) => e.target.kind === 'host' && e.target.hostPath === documents);
    if (!served || served.guestPath !== '/host/Documents' || served.mode !== 'cow')
      throw new Error(`the built-in rules do not serve ${documents} as /host/Documents (cow)`);
    return opened.backend;
  };
  // As a session derives it from the user's disk key (src/session/session.ts).
  const sealed = await open(stick, deriveAtRestKey(randomBytes(32)));
  const backend = await open(plainStick);

  // The exec port every session gives the guest, served as a session serves it: without one, the
  // guest's exec server looks for it (payload/rootfs/lib/pocketvm/lib.sh, wait_for_port) for tens of
  // seconds under TCG, taking about a third of the vCPU while the first runs measure.
  const channels = fdChannels([NAMESPACE_CHANNEL_ID, EXEC_CHANNEL_ID, ...(withGuestfwd ? [FWD_CHANNEL] : [])]);
  const execs = new ExecService();
  const fwd = channels.extra?.[FWD_CHANNEL];
  const extraArgs = [
    '-fsdev',
    `local,id=qemu9p,path=${documents},security_model=none`,
    '-device',
    'virtio-9p-pci,fsdev=qemu9p,mount_tag=qemu9p',
    ...(fwd?.kind === 'fd'
      ? [
          '-chardev',
          `socket,id=${FWD_CHANNEL},fd=${fwd.fd}`,
          '-netdev',
          `user,id=fwdnet,restrict=on,guestfwd=tcp:10.0.2.100:564-chardev:${FWD_CHANNEL}`,
          '-device',
          `virtio-net-pci,netdev=fwdnet,mac=${FWD_MAC},romfile=`,
        ]
      : []),
  ];
  say('booting the guest (TCG): the session namespace on the namespace card, QEMU virtio-9p on the same folder');
  // The card's first mount is the boot step's /host (sealed, as in a session);
  // the next is /mnt/plain, made below.
  let mounts = 0;
  const serve = (stream: Duplex) => {
    const server = serveNinep(stream, mounts++ === 0 ? sealed : backend, { closeBackend: false, maxMsize: NAMESPACE_MSIZE });
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
      serialPorts: [{ id: EXEC_CHANNEL_ID, name: EXEC_PORT_NAME }],
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
    attach: async (qmp, streams) => {
      // Served while paused, as in a session: the boot step mounts /host before ready.
      const transport = serveEthernetTransport(streams[NAMESPACE_CHANNEL_ID]!, {
        maxMessage: NAMESPACE_MSIZE,
        openSession: serve,
        ...(guestRam ? { guestRam } : {}),
      });
      transports.push(transport);
      // As in a session (namespace-channel.ts): QEMU 7.2 can stop taking the card's transmit queue.
      watchdogs.push(watchNicTransmit(qmp, { nicId: NAMESPACE_CHANNEL_ID, activity: () => transport.counters.frames, log: say }));
      if (streams[FWD_CHANNEL]) serve(streams[FWD_CHANNEL]);
      const exec = streams[EXEC_CHANNEL_ID];
      if (exec) void execs.channel().open?.(exec, {});
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
  await sh(`mkdir -p /mnt/qemu9p && mount -t 9p -o trans=virtio,${MOUNT_OPTIONS} qemu9p /mnt/qemu9p`);
  await sh(`ifc=$(grep ' /host 9p ' /proc/mounts | cut -d' ' -f1) && mkdir -p /mnt/plain && mount -t 9p -o trans=pocketvm,${MOUNT_OPTIONS} "$ifc" /mnt/plain`);
  if (mounts !== 2) throw new Error(`expected the card's second mount to reach the plain namespace (${mounts} mounts seen)`);
  if (withGuestfwd) {
    await sh(
      `for d in /sys/class/net/*; do [ "$(cat $d/address)" = ${FWD_MAC} ] && ifc=\${d##*/}; done; ip link set $ifc up && ip addr add 10.0.2.15/24 dev $ifc && mkdir -p /mnt/guestfwd && mount -t 9p -o trans=tcp,port=564,${MOUNT_OPTIONS} 10.0.2.100 /mnt/guestfwd`,
    );
  }
  const mountLines = (await sh('grep " 9p " /proc/mounts')).out.trim();
  // The shell loops' own cost (same names, on tmpfs), subtracted from the per-file figures.
  const statLoop = (dir: string, prefix: string) => `cd ${dir} && i=0; while [ $i -lt ${FILES} ]; do [ -e ${prefix}$i ] || exit 1; i=$((i + 1)); done`;
  const createLoop = (dir: string) => `cd ${dir} && i=0; while [ $i -lt ${FILES} ]; do : >g$i || exit 1; i=$((i + 1)); done`;
  const loopMs = { stat: [] as number[], create: [] as number[] };
  const dropCaches = 'sync; echo 3 >/proc/sys/vm/drop_caches';
  const perSecond = (count: number, ms: number, loop: number[]) => count / (Math.max(10, ms - median(loop)) / 1000);

  const measure = async (target: Target, run: number): Promise<Sample> => {
    const dir = MOUNTS[target];
    const cow = `${dir}/cow-${target}-${run}`;
    const sample: Sample = { writeMiBs: NaN, readBackMiBs: NaN, readMiBs: NaN, statOps: NaN, readdirOps: NaN, createOps: NaN, listOps: NaN, cowStatOps: NaN };
    if (wanted('write')) {
      await sh(`rm -f ${dir}/bench.bin; ${dropCaches}`);
      const write = await sh(`dd if=/dev/zero of=${dir}/bench.bin bs=1M count=${MIB} conv=fsync 2>/dev/null`);
      sample.writeMiBs = MIB / (write.ms / 1000);
      // Ours keeps it in upper/ (sealed: this read opens it through the cipher).
      await sh(dropCaches);
      sample.readBackMiBs = MIB / ((await sh(`dd if=${dir}/bench.bin of=/dev/null bs=1M 2>/dev/null`)).ms / 1000);
      await sh(`rm -f ${dir}/bench.bin`);
    }
    if (wanted('read')) {
      await sh(dropCaches);
      sample.readMiBs = MIB / ((await sh(`dd if=${dir}/big.bin of=/dev/null bs=1M 2>/dev/null`)).ms / 1000);
    }
    if (wanted('stat') || wanted('create') || wanted('cowstat')) {
      await sh(`rm -rf /tmp/loop && mkdir /tmp/loop`);
      loopMs.create.push((await sh(createLoop('/tmp/loop'))).ms);
      loopMs.stat.push((await sh(statLoop('/tmp/loop', 'g'))).ms);
    }
    if (wanted('stat')) {
      await sh(dropCaches);
      sample.statOps = perSecond(FILES, (await sh(statLoop(`${dir}/many`, 'f'))).ms, loopMs.stat);
    }
    if (wanted('readdir')) {
      await sh(dropCaches);
      sample.readdirOps = FILES / ((await sh(`set -- ${dir}/many/*; [ $# -eq ${FILES} ] || { echo "$# names"; exit 1; }`)).ms / 1000);
    }
    if (wanted('create') || wanted('list') || wanted('cowstat')) {
      await sh(`mkdir ${cow}`);
      const create = await sh(createLoop(cow));
      if (wanted('create')) sample.createOps = perSecond(FILES, create.ms, loopMs.create);
      await sh(dropCaches);
      const list = await sh(`set -- ${cow}/*; [ $# -eq ${FILES} ] || { echo "$# names"; exit 1; }`);
      if (wanted('list')) sample.listOps = FILES / (list.ms / 1000);
      if (wanted('cowstat')) sample.cowStatOps = perSecond(FILES, (await sh(statLoop(cow, 'g'))).ms, loopMs.stat);
    }
    return sample;
  };

  const targets: Target[] = ['ours', 'plain', 'qemu', ...(withGuestfwd ? (['guestfwd'] as const) : [])];
  const samples: Record<Target, Sample[]> = { ours: [], plain: [], qemu: [], guestfwd: [] };
  for (let run = 0; run < runs; run++) {
    // Each target goes first in turn: the guest's memory and the host's page cache favour none.
    const order = [...targets.slice(run % targets.length), ...targets.slice(0, run % targets.length)];
    for (const target of order) {
      const sample = await measure(target, run);
      samples[target].push(sample);
      say(`run ${run + 1}/${runs} ${target.padEnd(8)} ${KEYS.map((k) => `${k} ${sample[k].toFixed(k.endsWith('MiBs') ? 1 : 0)}`).join('  ')}`);
    }
  }
  const messages = servers.reduce((n, s) => n + s.counters.messages, 0);
  const placed = transports.reduce((n, t) => n + t.counters.placed, 0);
  const writesPlaced = transports.reduce((n, t) => n + t.counters.writesPlaced, 0);
  // Tclunks and clone Twalks the guest module answered itself (9pnet_pocketvm, "Round trips saved").
  const quietRequests = transports.reduce((n, t) => n + t.counters.quietRequests, 0);
  // The launcher's part of a Twrite's and a Tread's round trip, sealed (the first mount's server) and plain (the
  // second's); guest RAM is read and written by the transport, for both: the rest is the guest's and QEMU's.
  const perRequest = (ms: number, count: number) => round(count > 0 ? ms / count : 0);
  const served = (server: NinepServer | undefined) => ({
    perTwrite: perRequest(server?.counters.writeMs ?? 0, server?.counters.writes ?? 0),
    perTread: perRequest(server?.counters.readMs ?? 0, server?.counters.reads ?? 0),
  });
  const transmitWatchdog = { looks: watchdogs.reduce((n, w) => n + w.counters.looks, 0), nudges: watchdogs.reduce((n, w) => n + w.counters.nudges, 0) };
  const launcherMs = {
    ours: served(servers[0]),
    plain: served(servers[1]),
    perTwriteReadingRam: perRequest(
      transports.reduce((n, t) => n + t.counters.writeReadMs, 0),
      writesPlaced,
    ),
    perTreadPlacing: perRequest(
      transports.reduce((n, t) => n + t.counters.placeMs, 0),
      placed,
    ),
  };
  await machine.shutdown();
  machine = undefined;

  // Second table: in process, no guest, the same folder through the namespace and through LocalDirBackend.
  say('in process: the namespace and LocalDirBackend, no guest');
  const local = await LocalDirBackend.open(documents);
  const inProc = { namespace: await inProcess(backend, ['Documents', 'many']), local: await inProcess(local, ['many']) };

  const med = (target: Target, key: Key) => median(samples[target].map((s) => s[key]));
  const lines = KEYS.filter((key) => !Number.isNaN(med('ours', key))).map((key) => ({
    key,
    ours: med('ours', key),
    qemu: med('qemu', key),
    ratio: med('ours', key) / med('qemu', key),
    plain: med('plain', key),
    sealedRatio: med('ours', key) / med('plain', key),
    ...(withGuestfwd ? { guestfwd: med('guestfwd', key), guestfwdRatio: med('guestfwd', key) / med('qemu', key) } : {}),
  }));
  const result = {
    runs,
    fileMiB: MIB,
    files: FILES,
    mounts: mountLines.split('\n'),
    shellLoopMs: { stat: Math.round(median(loopMs.stat)), create: Math.round(median(loopMs.create)) },
    lines: lines.map((l) => Object.fromEntries(Object.entries(l).map(([k, v]) => [k, typeof v === 'number' ? round(v) : v]))),
    target: 1.0,
    floor: 0.5,
    serverMessages: messages,
    placedReads: placed,
    placedWrites: writesPlaced,
    quietRequests,
    launcherMs,
    transmitWatchdog,
    sealedReads: { ...sealedReadCounters },
    inProcess: {
      namespace: { readdirOps: round(inProc.namespace.readdirOps), lookupOps: round(inProc.namespace.lookupOps) },
      local: { readdirOps: round(inProc.local.readdirOps), lookupOps: round(inProc.local.lookupOps) },
    },
    samples,
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(1)).padStart(8);
    const header = `${''.padEnd(40)}${'ours'.padStart(8)}${'QEMU 9p'.padStart(10)}  ratio${'plain'.padStart(10)}  ratio${withGuestfwd ? `${'guestfwd'.padStart(10)}  ratio` : ''}`;
    process.stdout.write(
      [
        `bench/ninep, TCG, median of ${runs}: the session's namespace (/host/Documents, built-in rules, copy-on-write, sealed at rest) against QEMU's virtio-9p on the same folder, and against itself without sealing (plain), same guest`,
        header,
        ...lines.map(
          (l) =>
            `  ${LABELS[l.key].padEnd(38)}${fmt(l.ours)}${fmt(l.qemu).padStart(10)}  ${l.ratio.toFixed(2).padStart(5)}${fmt(l.plain).padStart(10)}  ${l.sealedRatio.toFixed(2).padStart(5)}${l.guestfwd === undefined ? '' : `${fmt(l.guestfwd).padStart(10)}  ${l.guestfwdRatio!.toFixed(2).padStart(5)}`}`,
        ),
        `  target: ours >= 1.0 x QEMU's on every line (floor 0.5), ours >= 0.8 x plain (sealing's cost); shell loops on tmpfs subtracted (stat ${result.shellLoopMs.stat} ms, create ${result.shellLoopMs.create} ms per ${FILES})`,
        `  ${placed} Rreads placed, ${writesPlaced} Twrites placed; ${messages} messages served, ${quietRequests} of them answered by the guest module (quiet); sealed reads: ${sealedReadCounters.ahead} read ahead (${sealedReadCounters.aheadWaited} still opening), ${sealedReadCounters.kept} from blocks kept, ${sealedReadCounters.opened} opened on demand; the card's transmit watchdog nudged QEMU ${transmitWatchdog.nudges} times`,
        `  the launcher's part, per request: Twrite ${launcherMs.ours.perTwrite} ms served (plain ${launcherMs.plain.perTwrite}) + ${launcherMs.perTwriteReadingRam} ms reading guest RAM; Tread ${launcherMs.ours.perTread} ms served (plain ${launcherMs.plain.perTread}) + ${launcherMs.perTreadPlacing} ms placing`,
        `in process (no guest, 9P server + backend): ${''.padEnd(4)}${'namespace'.padStart(10)}${'LocalDir'.padStart(10)}  ratio`,
        `  readdir ${FILES} host files (/s)${''.padEnd(18)}${fmt(inProc.namespace.readdirOps).padStart(10)}${fmt(inProc.local.readdirOps).padStart(10)}  ${(inProc.namespace.readdirOps / inProc.local.readdirOps).toFixed(2).padStart(5)}`,
        `  walk + getattr + clunk (/s)${''.padEnd(21)}${fmt(inProc.namespace.lookupOps).padStart(10)}${fmt(inProc.local.lookupOps).padStart(10)}  ${(inProc.namespace.lookupOps / inProc.local.lookupOps).toFixed(2).padStart(5)}`,
      ].join('\n') + '\n',
    );
  }
} finally {
  for (const watchdog of watchdogs) watchdog.stop();
  machine?.kill();
  // After QEMU: the launcher's descriptor is the last reference to the RAM file.
  if (machine) await machine.process.exited;
  guestRam?.close();
  for (const transport of transports) await transport.close().catch(() => {});
  for (const server of servers) await server.close().catch(() => {});
  for (const namespace of namespaces) await namespace.close?.();
  await rm(parent, { recursive: true, force: true });
}
