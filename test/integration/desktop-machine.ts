// The desktop guest (images/desktop/) booted by bare QEMU for its
// integration tests and its benchmark: the image built once by img's build
// step (`node build.js image desktop`, build/image.ts; cached in payload/desktop/
// and .cache/image/desktop/), booted as the launcher boots an image guest (the
// payload's kernel and initramfs, which switch_roots into the disk with serial
// pocketvm-root) but with the base under a throw-away overlay (snapshot=on)
// instead of the user's encrypted one, and the
// devices a desktop session has: virtio-vga behind QEMU's VNC (a UNIX socket in
// a private folder), the qemu-vdagent clipboard port, the guest agent and,
// when given a registry, the launcher's registry port served by the real
// channel (src/guestregistry/guest-channel.ts). No launcher session: this
// proves the guest's side alone.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage, type ImageBuildResult } from '../../build/image.ts';
import { serveGuestChannel, REGISTRY_PORT_NAME, type ChannelRegistry } from '../../src/guestregistry/guest-channel.ts';
import { DESKTOP_READY_MARKER } from '../../src/payload/desktop-guest.ts';
import { networkCmdlineWord } from '../../src/session/network-setting.ts';
import { ROOT_DISK_SERIAL, systemCmdline } from '../../src/session/system-disk.ts';
import { GuestAgentClient } from '../../src/vmm/guest-agent-client.ts';
import { USER_NETWORK_MAC } from '../../src/vmm/qemu-args.ts';
import { QmpClient } from '../../src/vmm/qmp-client.ts';
import { waitForPrefetch } from '../images/fixture-prefetch.ts';
import { repoRoot } from './harness.ts';

let built: Promise<ImageBuildResult> | undefined;

/** The desktop image, built at most once per process (and reused across runs: build/image.ts's stamp). */
export function desktopImage(): Promise<ImageBuildResult> {
  if (!built) waitForPrefetch('desktop-image', (message) => process.stderr.write(`      ${message}\n`));
  built ??= buildImage({
    root: repoRoot,
    guest: 'desktop',
    onProgress: (event) => {
      if (event.step !== 'hook' && event.step !== 'debian') process.stderr.write(`      image: ${event.step}: ${event.message}\n`);
    },
  }).then((image) => {
    process.stderr.write(
      `      desktop image: ${(image.bytes / 1048576).toFixed(0)} MiB, ${image.cached ? 'up to date' : `built in ${image.seconds.toFixed(0)} s`}\n`,
    );
    return image;
  });
  return built;
}

interface DesktopBootOptions {
  user: string;
  /** Served on org.pocketvm.registry.0 (the guest reads Host\... from it). */
  registry?: ChannelRegistry;
  memoryMiB?: number;
  /** Where QEMU's log and the console go (default: the machine's private folder, removed at stop). */
  logDir?: string;
  /** The launcher's user-mode network card (docs/network.md) and pocketvm.net=MAC on the command line. */
  network?: boolean;
  /** Runs QEMU through this command line (e.g. withResolverOnLoopback's unshare); QEMU's argv is appended. */
  wrap?: { command: string; args: string[] };
}

export interface DesktopMachine {
  readonly dir: string;
  readonly qmp: QmpClient;
  readonly agent: GuestAgentClient;
  /** QEMU's VNC server (the display), a UNIX socket. */
  readonly vncSocket: string;
  readonly consoleLog: string;
  /** Milliseconds from QEMU's start to the session-ready marker on the console. */
  waitForSessionReady(timeoutMs: number): Promise<number>;
  /** A shell command in the guest, as root, with the desktop's DISPLAY and XAUTHORITY. */
  sh(script: string, timeoutMs?: number): Promise<{ code: number | null; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

export async function bootDesktop(options: DesktopBootOptions): Promise<DesktopMachine> {
  const image = await desktopImage();
  const dir = await mkdtemp(join(tmpdir(), 'pocketvm-desktop-'));
  const logDir = options.logDir ?? dir;
  const consoleLog = join(logDir, 'desktop.console.log');
  const socket = (name: string) => join(dir, `${name}.sock`);
  // The command line the launcher gives an image guest: the manifest's, then the system disk and its init.
  const manifest = JSON.parse(readFileSync(join(image.dir, 'guest.json'), 'utf8')) as { cmdline: string; image: { init: string } };
  const cmdline = [manifest.cmdline, ...systemCmdline(manifest.image), `pocketvm.user=${options.user}`];
  const args = [
    '-machine',
    'q35',
    '-accel',
    'tcg',
    '-m',
    String(options.memoryMiB ?? 1024),
    '-smp',
    '2',
    '-nodefaults',
    '-no-user-config',
    '-kernel',
    join(image.dir, 'vmlinuz'),
    '-initrd',
    join(image.dir, 'initrd.img'),
    '-drive',
    `file=${image.base},format=raw,if=none,id=system,snapshot=on`,
    '-device',
    `virtio-blk-pci,drive=system,serial=${ROOT_DISK_SERIAL}`,
    '-device',
    'virtio-vga',
    '-display',
    `vnc=unix:${socket('vnc')}`,
    '-device',
    'qemu-xhci',
    '-device',
    'usb-tablet',
    '-device',
    'virtio-serial-pci',
    '-chardev',
    `socket,id=agent,path=${socket('agent')},server=on,wait=off`,
    '-device',
    'virtserialport,chardev=agent,name=org.qemu.guest_agent.0',
    // The clipboard: QEMU's own vdagent, which spice-vdagentd in the guest talks to.
    '-chardev',
    'qemu-vdagent,id=vdagent,clipboard=on',
    '-device',
    'virtserialport,chardev=vdagent,name=com.redhat.spice.0',
    '-qmp',
    `unix:${socket('qmp')},server=on,wait=off`,
    '-serial',
    `file:${consoleLog}`,
  ];
  if (options.registry) {
    cmdline.push('pocketvm.registry');
    args.push(
      '-chardev',
      `socket,id=registry,path=${socket('registry')},server=on,wait=off`,
      '-device',
      `virtserialport,chardev=registry,name=${REGISTRY_PORT_NAME}`,
    );
  }
  if (options.network) {
    // The launcher's card (src/vmm/qemu-args.ts, networkArgs) and the word its boot step looks for.
    cmdline.push(networkCmdlineWord());
    args.push('-netdev', 'user,id=net0', '-device', `virtio-net-pci,netdev=net0,mac=${USER_NETWORK_MAC},romfile=`);
  }
  args.push('-append', cmdline.join(' '));

  const started = performance.now();
  const [command, ...argv] = options.wrap ? [options.wrap.command, ...options.wrap.args, 'qemu-system-x86_64', ...args] : ['qemu-system-x86_64', ...args];
  const qemu = spawn(command!, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let qemuErr = '';
  qemu.stderr?.on('data', (chunk: Buffer) => (qemuErr += chunk.toString()));
  const sockets: Socket[] = [];
  try {
    const open = async (name: string) => {
      const s = await connectWhenListening(socket(name), qemu, () => qemuErr);
      sockets.push(s);
      return s;
    };
    const qmp = await QmpClient.connect(await open('qmp'));
    if (options.registry) serveGuestChannel(await open('registry'), options.registry);
    const agent = new GuestAgentClient(await open('agent'));
    return {
      dir,
      qmp,
      agent,
      vncSocket: socket('vnc'),
      consoleLog,
      async waitForSessionReady(timeoutMs) {
        const deadline = performance.now() + timeoutMs;
        while (performance.now() < deadline) {
          if (existsSync(consoleLog) && readFileSync(consoleLog, 'latin1').includes(DESKTOP_READY_MARKER)) return performance.now() - started;
          if (qemu.exitCode !== null) throw new Error(`QEMU exited (${qemu.exitCode}) before the session was ready: ${qemuErr.trim()}`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        throw new Error(`no ${DESKTOP_READY_MARKER} on the console in ${timeoutMs / 1000} s; the console's end:\n${tail(consoleLog)}`);
      },
      async sh(script, timeoutMs = 60_000) {
        const result = await agent.run(
          '/bin/sh',
          ['-c', `export DISPLAY=:0 XAUTHORITY=/run/pocketvm/Xauthority PATH=/usr/sbin:/usr/bin:/sbin:/bin; ${script}`],
          {
            timeoutMs,
          },
        );
        return { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
      },
      async stop() {
        await stopQemu(qemu, sockets);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await stopQemu(qemu, sockets);
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

async function connectWhenListening(path: string, qemu: ChildProcess, stderr: () => string): Promise<Socket> {
  for (let i = 0; i < 600; i++) {
    if (qemu.exitCode !== null) throw new Error(`QEMU exited (${qemu.exitCode}): ${stderr().trim()}`);
    if (existsSync(path)) {
      const s = await new Promise<Socket | undefined>((resolve) => {
        const c = connect(path);
        c.once('connect', () => resolve(c));
        c.once('error', () => resolve(undefined));
      });
      if (s) return s;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`QEMU did not listen on ${path}`);
}

async function stopQemu(qemu: ChildProcess, sockets: Socket[]): Promise<void> {
  for (const s of sockets) s.destroy();
  if (qemu.exitCode === null && qemu.signalCode === null) {
    const exited = new Promise((resolve) => qemu.once('exit', resolve));
    qemu.kill('SIGKILL');
    await exited;
  }
}

function tail(path: string): string {
  return existsSync(path) ? readFileSync(path, 'latin1').slice(-3000) : '(no console log)';
}
