// bench/network (`node build.js bench network [--runs N] [--mib N] [--json]`):
// what the guest's user-mode network costs and gives (docs/network.md).
//
//   boot: bare QEMU (TCG) booting the payload to POCKETVM_READY on its serial
//         port with the user-mode card and pocketvm.net=MAC (the boot step
//         takes a DHCP lease before the services start), against the same
//         boot with no network card (`-nic none`), alternating in the same
//         run; and the DHCP step alone, from the guest's boot trace
//         (pocketvm.trace: "network: DHCP on eth0" to "network: ADDRESS").
//   throughput: in one guest booted by the launcher, busybox wget fetching
//         N MiB from an HTTP server on the host's 127.0.0.1 (as 10.0.2.2),
//         against the same wget fetching the same N MiB from busybox httpd on
//         the guest's own loopback (a file in the guest's RAM): the same
//         guest TCP stack and client, without virtio-net, libslirp and the
//         host's socket. Timed in the guest (/proc/uptime), alternating.
//
// Prints medians and ratios; never fails on a time.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { openGuestPayload } from '../src/payload/guest-payload.ts';
import { networkCmdlineWord } from '../src/session/network-setting.ts';
import { READY_MARKER } from '../src/vmm/console-tap.ts';
import { USER_NETWORK_MAC } from '../src/vmm/qemu-args.ts';
import { HOST_FROM_GUEST, startHttpServer } from '../test/integration/network-servers.ts';
import { bootToMarker } from './bare-qemu.ts';
import { benchOptions, median, numberOption } from './bench-options.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const { runs, json, say } = benchOptions(3);
const MIB = numberOption('--mib', 32);
const launcher = join(root, 'launcher');
const PASSPHRASE = 'bench network passphrase';

interface BareBoot {
  readyMs: number;
  /** DHCP on the card, from the guest's trace (with the network only). */
  dhcpMs?: number;
}

async function bareQemuBoot(payload: { kernel: string; initrd: string; cmdline: string; memoryMiB: number }, network: boolean): Promise<BareBoot> {
  const cmdline = [payload.cmdline, 'pocketvm.trace', ...(network ? [networkCmdlineWord()] : [])].join(' ');
  // The launcher's own arguments for the card (src/vmm/qemu-args.ts), or none.
  const nic = network ? ['-netdev', 'user,id=net0', '-device', `virtio-net-pci,netdev=net0,id=net0-dev,mac=${USER_NETWORK_MAC},romfile=`] : ['-nic', 'none'];
  const { ms: readyMs, console } = await bootToMarker({ ...payload, cmdline, cpuMax: true, extra: nic });
  const dhcpStart = /\[([\d.]+)\] network: DHCP on/.exec(console)?.[1];
  const bound = /\[([\d.]+)\] network: 10\.0\.2\.15 on/.exec(console)?.[1];
  if (network && !(dhcpStart && bound)) throw new Error('the guest traced no DHCP lease (is the payload built with boot.d/35-network.sh?)');
  return { readyMs, ...(dhcpStart && bound ? { dhcpMs: (Number(bound) - Number(dhcpStart)) * 1000 } : {}) };
}

async function guest(stick: string, script: string): Promise<string> {
  const result = await execa(launcher, ['exec', '--root', '--stick', stick, '--', 'sh', '-c', script], { reject: false });
  if (result.exitCode !== 0) throw new Error(`in the guest: ${script}: ${String(result.stderr)}`);
  return String(result.stdout);
}

/** Seconds of one wget of `url` to /dev/null, timed by the guest's own clock. */
async function fetchSeconds(stick: string, url: string): Promise<number> {
  const out = await guest(stick, `read a _ </proc/uptime; wget -q -Y off -O /dev/null '${url}' || exit 1; read b _ </proc/uptime; echo "$a $b"`);
  const [a, b] = out.trim().split(' ').map(Number);
  return b! - a!;
}

const parent = await mkdtemp(join(tmpdir(), 'pocketvm-bench-net-'));
const http = await startHttpServer();
let booted: string | undefined;
try {
  const stick = join(parent, 'stick');
  say(`bench/network: preparing a stick in ${stick}`);
  const made = await execa(launcher, ['init-stick', stick], { reject: false });
  if (made.exitCode !== 0) throw new Error(`init-stick failed: ${String(made.stderr)}`);
  const user = await execa(launcher, ['user', 'add', 'bench', '--passphrase-stdin', '--stick', stick], { reject: false, input: `${PASSPHRASE}\n` });
  if (user.exitCode !== 0) throw new Error(`user add failed: ${String(user.stderr)}`);
  const opened = await openGuestPayload(join(stick, 'payload'), 'default');
  const payload = { kernel: opened.kernel, initrd: opened.initrd, cmdline: opened.manifest.cmdline, memoryMiB: opened.manifest.memory.recommendedMiB };

  say('boot: one warm-up pair, then alternating with and without the card');
  await bareQemuBoot(payload, true);
  await bareQemuBoot(payload, false);
  const withMs: number[] = [];
  const withoutMs: number[] = [];
  const dhcpMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const on = await bareQemuBoot(payload, true);
    const off = await bareQemuBoot(payload, false);
    withMs.push(on.readyMs);
    withoutMs.push(off.readyMs);
    dhcpMs.push(on.dhcpMs!);
    say(
      `run ${i + 1}/${runs}: with the card ${(on.readyMs / 1000).toFixed(2)} s (DHCP ${on.dhcpMs!.toFixed(0)} ms), without ${(off.readyMs / 1000).toFixed(2)} s`,
    );
  }

  say(`throughput: ${MIB} MiB, one guest booted by the launcher`);
  const started = await execa(launcher, ['run', '--detach', '--accel', 'tcg', '--stick', stick, '--user', 'bench', '--passphrase-stdin'], {
    reject: false,
    input: `${PASSPHRASE}\n`,
  });
  if (started.exitCode !== 0) throw new Error(`launcher run failed: ${String(started.stderr)}`);
  booted = stick;
  const bytes = MIB * 1024 * 1024;
  await guest(stick, `mkdir -p /tmp/www && head -c ${bytes} /dev/zero >/tmp/www/f && httpd -p 127.0.0.1:8080 -h /tmp/www`);
  const hostUrl = `http://${HOST_FROM_GUEST}:${http.port}/bytes/${bytes}`;
  const loopbackUrl = 'http://127.0.0.1:8080/f';
  await fetchSeconds(stick, hostUrl);
  await fetchSeconds(stick, loopbackUrl);
  const hostS: number[] = [];
  const loopbackS: number[] = [];
  for (let i = 0; i < runs; i++) {
    hostS.push(await fetchSeconds(stick, hostUrl));
    loopbackS.push(await fetchSeconds(stick, loopbackUrl));
    say(`run ${i + 1}/${runs}: from the host ${(MIB / hostS.at(-1)!).toFixed(1)} MiB/s, guest loopback ${(MIB / loopbackS.at(-1)!).toFixed(1)} MiB/s`);
  }

  const result = {
    runs,
    boot: {
      withNetworkMedianMs: Math.round(median(withMs)),
      withoutNetworkMedianMs: Math.round(median(withoutMs)),
      addedMs: Math.round(median(withMs) - median(withoutMs)),
      ratio: Number((median(withMs) / median(withoutMs)).toFixed(3)),
      dhcpMedianMs: Math.round(median(dhcpMs)),
    },
    throughput: {
      mib: MIB,
      fromHostMiBps: Number((MIB / median(hostS)).toFixed(1)),
      guestLoopbackMiBps: Number((MIB / median(loopbackS)).toFixed(1)),
      ratio: Number((median(loopbackS) / median(hostS)).toFixed(3)),
    },
    samples: { withMs: withMs.map(Math.round), withoutMs: withoutMs.map(Math.round), dhcpMs: dhcpMs.map(Math.round), hostS, loopbackS },
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    process.stdout.write(
      [
        `boot to ${READY_MARKER} (bare QEMU, TCG), median of ${runs}: with the user-mode card ${(result.boot.withNetworkMedianMs / 1000).toFixed(2)} s, without ${(result.boot.withoutNetworkMedianMs / 1000).toFixed(2)} s   ratio ${result.boot.ratio.toFixed(3)} (+${result.boot.addedMs} ms)`,
        `  of which the DHCP lease (guest trace)  ${result.boot.dhcpMedianMs} ms`,
        `fetch ${MIB} MiB with wget, median of ${runs}: from the host's 127.0.0.1 ${result.throughput.fromHostMiBps} MiB/s, from the guest's own loopback ${result.throughput.guestLoopbackMiBps} MiB/s   ratio ${result.throughput.ratio.toFixed(3)}`,
      ].join('\n') + '\n',
    );
  }
} finally {
  if (booted) await execa(launcher, ['stop', '--stick', booted], { reject: false });
  await http.close();
  await rm(parent, { recursive: true, force: true });
}
