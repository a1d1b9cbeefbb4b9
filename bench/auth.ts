// bench/auth: what users and encryption cost.
//
//   login      argon2id as calibrated on this machine (printed with its
//              parameters): median of N logins of a real user
//   disk       first boot: QEMU creating the LUKS qcow2 over QMP, and boot to
//              ready including the guest's mke2fs; second boot: opening it
//   throughput sequential write (dd 64 MiB, conv=fsync) and read (after
//              dropping the guest's caches) inside one guest, on its
//              encrypted home disk against a plain qcow2 attached the same
//              way (same size, same ext4 options), alternating; ratios
//
// Boots the real payload under TCG with Machine.boot (no stick lock, no
// session), so only the parts being measured differ. Never fails on a time.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addUser, login, personalDiskPath } from '../src/auth/users.ts';
import { linuxHost } from '../src/hostprobe/linux.ts';
import { openGuestPayload } from '../src/payload/guest-payload.ts';
import { HOME_DISK_BYTES, HOME_DISK_SERIAL, userCmdline } from '../src/session/personal-disk.ts';
import { stickLayout } from '../src/stick/layout.ts';
import { attachEncryptedDisk, type EncryptedDiskResult } from '../src/vmm/encrypted-disk.ts';
import { Machine } from '../src/vmm/machine.ts';
import { hotplugPort } from '../src/vmm/qemu-args.ts';
import { fdChannels } from '../src/vmm/qemu-process.ts';
import { benchOptions, median } from './bench-options.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const { runs, json, say } = benchOptions(3);
const MIB = 64;
const USER = 'bench';
const PASSPHRASE = 'bench passphrase';

const parent = await mkdtemp(join(tmpdir(), 'pocketvm-bench-auth-'));
try {
  const layout = stickLayout(parent);
  await mkdir(layout.usersRoot, { recursive: true });

  // Login: calibrated argon2id, as `user add` does it.
  say('login: creating a user (calibrating argon2id to ~0.5 s here)');
  const { file } = await addUser(layout, USER, PASSPHRASE);
  const loginMs: number[] = [];
  for (let i = 0; i < Math.max(runs, 5); i++) {
    const started = performance.now();
    const user = await login(layout, USER, PASSPHRASE);
    loginMs.push(performance.now() - started);
    user.diskKey.fill(0);
  }

  const payload = await openGuestPayload(join(root, 'payload'), 'default');
  const homeDisk = personalDiskPath(layout, USER, 'default');
  const plainDisk = join(parent, 'plain.qcow2');
  const boot = async (name: string) => {
    const user = await login(layout, USER, PASSPHRASE);
    let home: EncryptedDiskResult | undefined;
    let plain: EncryptedDiskResult | undefined;
    const started = performance.now();
    const machine = await Machine.boot({
      spec: {
        name: `pocketvm-bench-${name}`,
        hostOs: 'linux',
        accelerator: 'tcg',
        memoryMiB: payload.manifest.memory.recommendedMiB,
        cpus: 1,
        kernel: payload.kernel,
        initrd: payload.initrd,
        cmdline: `${payload.manifest.cmdline} ${userCmdline(user)}`,
        disks: [],
        network: 'none',
        channels: fdChannels(),
        startPaused: true,
        hotplugPorts: 2,
      },
      binary: 'qemu-system-x86_64',
      host: linuxHost,
      logs: { qemu: join(parent, `${name}.qemu.log`), console: join(parent, `${name}.console.log`) },
      signOfLifeTimeoutMs: 180_000,
      readyTimeoutMs: 180_000,
      attach: async (qmp) => {
        home = await attachEncryptedDisk(
          qmp,
          { path: homeDisk, key: user.diskKey, id: 'pvm-home', serial: HOME_DISK_SERIAL, sizeBytes: HOME_DISK_BYTES, bus: hotplugPort(0) },
          existsSync,
        );
        plain = await attachEncryptedDisk(
          qmp,
          {
            path: plainDisk,
            key: Buffer.alloc(0),
            id: 'bench-plain',
            serial: 'bench-plain',
            sizeBytes: HOME_DISK_BYTES,
            bus: hotplugPort(1),
            encrypted: false,
          },
          existsSync,
        );
      },
    });
    user.diskKey.fill(0);
    return { machine, readyMs: performance.now() - started, home: home!, plain: plain! };
  };
  const sh = async (machine: Machine, script: string) => {
    const started = performance.now();
    const result = await machine.agent.run('/bin/sh', ['-c', script], { timeoutMs: 300_000 });
    if (result.exitCode !== 0) throw new Error(`guest: ${script}: exit ${result.exitCode}: ${result.stderr.toString()}`);
    return { ms: performance.now() - started, stdout: result.stdout.toString() };
  };

  say('disk: first boot (creates the encrypted disk; the guest formats it)');
  const first = await boot('first');
  await first.machine.shutdown();
  say('disk: second boot (opens it)');
  const second = await boot('second');
  const { machine } = second;
  // The baseline disk gets what 30-home.sh gives the home disk.
  const plainDev = (
    await sh(machine, 'for s in /sys/block/vd*/serial; do read -r v <"$s"; [ "$v" = bench-plain ] && { d=${s%/serial}; echo /dev/${d##*/}; }; done')
  ).stdout.trim();
  await sh(machine, `/sbin/mke2fs -t ext4 -q -F -L bench-plain -m 0 ${plainDev} && mkdir -p /mnt/plain && mount -t ext4 -o noatime ${plainDev} /mnt/plain`);
  const targets = { encrypted: `/home/${USER}`, plain: '/mnt/plain' } as const;
  const samples: Record<keyof typeof targets, { write: number[]; read: number[] }> = { encrypted: { write: [], read: [] }, plain: { write: [], read: [] } };
  for (let i = 0; i < runs; i++) {
    for (const kind of ['encrypted', 'plain'] as const) {
      const file = `${targets[kind]}/bench.bin`;
      await sh(machine, `rm -f ${file}; sync; echo 3 > /proc/sys/vm/drop_caches`);
      const write = await sh(machine, `dd if=/dev/zero of=${file} bs=1M count=${MIB} conv=fsync 2>/dev/null`);
      await sh(machine, 'sync; echo 3 > /proc/sys/vm/drop_caches');
      const read = await sh(machine, `dd if=${file} of=/dev/null bs=1M 2>/dev/null`);
      samples[kind].write.push(MIB / (write.ms / 1000));
      samples[kind].read.push(MIB / (read.ms / 1000));
      say(`run ${i + 1}/${runs} ${kind.padEnd(9)}  write ${samples[kind].write.at(-1)!.toFixed(1)} MiB/s  read ${samples[kind].read.at(-1)!.toFixed(1)} MiB/s`);
    }
  }
  await machine.shutdown();

  const mbps = (values: number[]) => Number(median(values).toFixed(1));
  const result = {
    login: {
      kdf: { algorithm: 'argon2id', memoryKiB: file.kdf.memoryCost, timeCost: file.kdf.timeCost, parallelism: file.kdf.parallelism },
      medianMs: Math.round(median(loginMs)),
      samplesMs: loginMs.map(Math.round),
    },
    disk: {
      virtualBytes: HOME_DISK_BYTES,
      createMs: Math.round(first.home.createMs),
      firstBootReadyMs: Math.round(first.readyMs),
      secondBootReadyMs: Math.round(second.readyMs),
      openMs: Math.round(second.home.attachMs),
      plainCreateMs: Math.round(first.plain.createMs),
    },
    throughput: {
      sizeMiB: MIB,
      runs,
      encrypted: { writeMiBs: mbps(samples.encrypted.write), readMiBs: mbps(samples.encrypted.read) },
      plain: { writeMiBs: mbps(samples.plain.write), readMiBs: mbps(samples.plain.read) },
      writeRatio: Number((median(samples.encrypted.write) / median(samples.plain.write)).toFixed(3)),
      readRatio: Number((median(samples.encrypted.read) / median(samples.plain.read)).toFixed(3)),
    },
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    process.stdout.write(
      [
        `login (argon2id m=${result.login.kdf.memoryKiB} KiB t=${result.login.kdf.timeCost} p=${result.login.kdf.parallelism}, median of ${loginMs.length}):  ${s(result.login.medianMs)}`,
        `disk creation (LUKS qcow2, ${HOME_DISK_BYTES / 2 ** 30} GiB virtual, over QMP):  ${s(result.disk.createMs)}   (plain qcow2: ${s(result.disk.plainCreateMs)})`,
        `boot to ready:  first boot (creates + mke2fs) ${s(result.disk.firstBootReadyMs)}   second boot (opens + mounts) ${s(result.disk.secondBootReadyMs)}   open ${s(result.disk.openMs)}`,
        `sequential ${MIB} MiB in the guest (TCG, median of ${runs}):  write encrypted ${result.throughput.encrypted.writeMiBs} MiB/s  plain ${result.throughput.plain.writeMiBs} MiB/s  ratio ${result.throughput.writeRatio.toFixed(3)}`,
        `                                             read  encrypted ${result.throughput.encrypted.readMiBs} MiB/s  plain ${result.throughput.plain.readMiBs} MiB/s  ratio ${result.throughput.readRatio.toFixed(3)}`,
      ].join('\n') + '\n',
    );
  }
} finally {
  await rm(parent, { recursive: true, force: true });
}
