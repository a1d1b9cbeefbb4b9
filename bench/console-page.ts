// bench/console-page: the console page against noVNC straight on QEMU, same run.
//
//   launch → first desktop frame: `launcher run --display page --guest G`
//     (passphrase on stdin, so no person types on the page) from process start
//     to the first frame in Chromium that shows the session (desktop: most of
//     the canvas the wallpaper's colour with a terminal window on it; the
//     console guest: a lit screen), for a person who already exists and has
//     launched before (their overlay made); against bare QEMU booting the same
//     image (a plain qcow2 over the same base, booted once before, so it too
//     is an everyday boot) with the same memory, vCPUs and display devices to
//     the same session-ready marker on its serial port. `--runs N` rounds,
//     alternating which half goes first; the load average beside each figure.
//     The very first launch (the overlay created and formatted, the first
//     boot's account set-up) is its own line. Beside each everyday figure,
//     the host CPU seconds spent to it (bench/cpu-shares.ts): QEMU's vCPU
//     thread, QEMU's other threads, the rest of the launcher's process tree,
//     Chromium's, the bench's own: on a 2-core host the vCPU has one core and
//     the others share the second.
//   keypress → changed pixel: a key pressed in the page (a letter, then
//     Backspace, alternately, in the desktop's terminal or the console's
//     shell) to the first animation frame whose canvas differs, median of 50;
//     against the same noVNC modules, with the page's options and the page's
//     screen size, in a page of the bench's own connected straight to QEMU's
//     websocket VNC (`-vnc ...,websocket=`: a TCP port on 127.0.0.1, for this
//     baseline only; the launcher never gives QEMU one). Both guests run at
//     once and the presses alternate between them in blocks of 5. Each press
//     is split into: keydown → the websocket's send (the page), send → the
//     first message back (bridge + QEMU + guest), that → the last message
//     before the changed frame, and that → the frame (noVNC's decoding and
//     drawing).
//
// `--guest default` runs the console guest (quick); the default is `desktop`.
// Prints the figures and ratios; never fails on a time (a boot that shows
// nothing in 30 minutes ends it).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { connect, createServer as createNetServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type { Browser, Page } from 'puppeteer-core';
import { openGuestPayload } from '../src/payload/guest-payload.ts';
import { DESKTOP_READY_MARKER, DESKTOP_WALLPAPER } from '../src/payload/desktop-guest.ts';
import { systemCmdline } from '../src/session/system-disk.ts';
import { READY_MARKER } from '../src/vmm/console-tap.ts';
import { addStickUser, launcher, launcherJson } from '../test/integration/harness.ts';
import { startChromium, startPageRun } from '../test/integration/page-browser.ts';
import { benchOptions, median } from './bench-options.ts';
import { cpuSeconds, cpuSpent, describeCpu } from './cpu-shares.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const { runs, json, say } = benchOptions(1);
const guestAt = process.argv.indexOf('--guest');
const GUEST = guestAt >= 0 ? process.argv[guestAt + 1]! : 'desktop';
const DESKTOP = GUEST !== 'default';
const PRESSES = 50;
const BLOCK = 5;
const USER = 'bench';
const PASSPHRASE = 'bench passphrase';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.timeOrigin + performance.now();
const load = () => loadavg()[0]!.toFixed(1);

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitFor(condition: () => Promise<boolean> | boolean, limitMs: number, stepMs = 20): Promise<void> {
  const deadline = performance.now() + limitMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error('timed out');
    await sleep(stepMs);
  }
}

/**
 * Run in every page before its own scripts: notes the time of each websocket
 * send and message (the screen's only websocket), and watches the canvas for
 * the first frame that shows the session (`window.__shown`, epoch ms). The
 * watch reads the whole canvas back, which is not free: every 50 ms it cost
 * Chromium 21 % of a core (4.2 s of CPU in 20 s against 0.5 s without it), on
 * the core the page's half shares with QEMU's I/O and the launcher, so it
 * slowed the half it measured. It looks every 250 ms, and only after the
 * screen's websocket brought something (noVNC draws what it brings) or a
 * second went by: at most a quarter second late, at a sixth of the cost.
 */
const PROBE = `(() => {
  window.__ws = { sent: [], received: [] };
  // noVNC checks the socket's own properties: a real WebSocket, with a listener and a timed send.
  const Base = window.WebSocket;
  const send = Base.prototype.send;
  Base.prototype.send = function (data) { window.__ws.sent.push(performance.now()); return send.call(this, data); };
  const Timed = function (...args) {
    const ws = new Base(...args);
    ws.addEventListener('message', () => window.__ws.received.push(performance.now()));
    return ws;
  };
  Timed.prototype = Base.prototype;
  Object.assign(Timed, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.WebSocket = Timed;
  const [r, g, b] = [${DESKTOP_WALLPAPER.rgb.join(', ')}];
  const desktop = ${DESKTOP};
  const shown = () => {
    const canvas = document.querySelector('#screen canvas');
    if (!canvas || canvas.width < 64) return false;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let wallpaper = 0, lit = 0, all = 0;
    for (let i = 0; i < data.length; i += 64) {
      all++;
      if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 24) wallpaper++;
      else if (data[i] + data[i + 1] + data[i + 2] > 60) lit++;
    }
    // The desktop: a fifth wallpaper at least, as the page test asks (the terminal covers two thirds of
    // the page's 792×720 screen: 0.3 was never reached), and the terminal's 5 % beside it.
    return desktop ? wallpaper / all >= 0.2 && (all - wallpaper) / all >= 0.05 : lit * 16 > 500;
  };
  let seen = -1, checked = 0;
  const watch = setInterval(() => {
    const messages = window.__ws.received.length, at = performance.now();
    if (messages === seen && at - checked < 1000) return;
    seen = messages;
    checked = at;
    if (shown()) { window.__shown = performance.timeOrigin + performance.now(); clearInterval(watch); }
  }, 250);
})()`;

/** Installs a keydown → changed-frame timer in the page; one key per press. */
const TIMER = `(() => {
  const canvas = document.querySelector('#screen canvas');
  const ctx = canvas.getContext('2d');
  const snap = () => ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  window.__latency = { pending: null, results: [] };
  document.addEventListener('keydown', (event) => {
    if (window.__latency.pending) return;
    const before = snap();
    const pressed = event.timeStamp;
    window.__latency.pending = true;
    const check = () => {
      const now = snap();
      for (let i = 0; i < now.length; i += 4) if (now[i] !== before[i]) {
        const at = performance.now();
        const sent = window.__ws.sent.find((t) => t >= pressed);
        const back = window.__ws.received.find((t) => t >= sent);
        const last = window.__ws.received.filter((t) => t <= at).at(-1);
        window.__latency.results.push({ total: at - pressed, page: sent - pressed, roundTrip: back - sent, more: last - back, draw: at - last });
        window.__latency.pending = null;
        return;
      }
      requestAnimationFrame(check);
    };
    requestAnimationFrame(check);
  }, true);
})()`;

interface Press {
  total: number;
  page: number;
  roundTrip: number;
  more: number;
  draw: number;
}

/** Where to click to type: the console's screen anywhere; on the desktop, inside the terminal (the median of the pixels that are not wallpaper). */
const TYPING_SPOT = `(() => {
  const canvas = document.querySelector('#screen canvas');
  const box = canvas.getBoundingClientRect();
  const [r, g, b] = [${DESKTOP_WALLPAPER.rgb.join(', ')}];
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const xs = [], ys = [];
  for (let y = 0; y < canvas.height; y += 4) for (let x = 0; x < canvas.width; x += 4) {
    const i = (y * canvas.width + x) * 4;
    if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) >= 24) { xs.push(x); ys.push(y); }
  }
  const mid = (list) => list.sort((p, q) => p - q)[list.length >> 1] ?? 0;
  const at = ${DESKTOP} && xs.length ? [mid(xs), mid(ys)] : [canvas.width / 2, canvas.height / 2];
  return { x: box.left + (at[0] * box.width) / canvas.width, y: box.top + (at[1] * box.height) / canvas.height };
})()`;

async function prepareForPresses(page: Page): Promise<void> {
  await page.bringToFront();
  const spot = (await page.evaluate(TYPING_SPOT)) as { x: number; y: number };
  await page.mouse.click(spot.x, spot.y);
  await sleep(1_000);
  await page.evaluate(TIMER);
}

async function presses(page: Page, count: number): Promise<Press[]> {
  // A page in the background gets no animation frames: the one typed into is in front.
  await page.bringToFront();
  const done = await page.evaluate('window.__latency.results.length');
  for (let i = 0; i < count; i++) {
    const before = (done as number) + i;
    await page.keyboard.press(before % 2 === 0 ? 'KeyA' : 'Backspace');
    await waitFor(async () => ((await page.evaluate('window.__latency.results.length')) as number) > before, 20_000, 5);
    await sleep(150);
  }
  return ((await page.evaluate('window.__latency.results')) as Press[]).slice(done as number);
}

/** A page of the bench's own: noVNC's modules with the console page's options, at the console page's screen size, straight on QEMU's websocket. */
async function baselinePageServer(wsPort: number, size: { width: number; height: number }): Promise<{ server: Server; url: string }> {
  const novnc = join(root, 'node_modules', '@novnc', 'novnc');
  const html = `<!doctype html><body style="margin:0;background:#000"><div id="screen" style="width:${size.width}px;height:${size.height}px"></div><script type="module">
import RFB from '/novnc/core/rfb.js';
const rfb = new RFB(document.getElementById('screen'), 'ws://127.0.0.1:${wsPort}/');
rfb.scaleViewport = true;
rfb.resizeSession = true;
rfb.focusOnClick = true;
rfb.addEventListener('connect', () => { document.body.dataset.screen = 'connected'; rfb.focus(); });
</script></body>`;
  const server = createServer(async (request, response) => {
    const path = new URL(request.url ?? '/', 'http://x').pathname;
    if (path === '/') return void response.writeHead(200, { 'content-type': 'text/html' }).end(html);
    const file = normalize(join(novnc, path.slice('/novnc/'.length)));
    if (!file.startsWith(novnc)) return void response.writeHead(404).end();
    let body: Buffer;
    try {
      body = await readFile(file);
    } catch {
      return void response.writeHead(404).end();
    }
    response.writeHead(200, { 'content-type': 'text/javascript' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/` };
}

interface Size {
  memoryMiB: number;
  cpus: number;
  /** The launcher's `-cpu` (a named model, so a saved state resumes on another host), read from its QEMU log. */
  cpuModel: string;
}

interface Bare {
  qemu: ChildProcess;
  readyMs: number;
  /** Host CPU seconds to the marker: QEMU's vCPU thread and its other threads. */
  cpu: Record<string, number>;
  wsPort: number;
  quit(): Promise<void>;
}

/** Bare QEMU: the same kernel, initramfs and image (a plain qcow2 `disk` over the base) with the session's size and screen devices, to the ready marker. */
async function bareQemu(size: Size, disk: string | undefined, dir: string): Promise<Bare> {
  const payload = await openGuestPayload(join(root, 'payload'), GUEST);
  const manifest = JSON.parse(await readFile(join(root, 'payload', GUEST, 'guest.json'), 'utf8')) as { image?: { init: string } };
  const wsPort = await freePort();
  const qmpSocket = join(dir, `qmp-${wsPort}.sock`);
  const cmdline = DESKTOP
    ? [payload.manifest.cmdline, ...systemCmdline(manifest.image!), `pocketvm.user=${USER}`]
    : [payload.manifest.cmdline, 'console=tty0 console=ttyS0 pocketvm.display=1'];
  const started = performance.now();
  const qemu = spawn(
    'qemu-system-x86_64',
    [
      // debug-threads: the vCPU thread named as the launcher's QEMU names it, so bench/cpu-shares.ts tells it apart.
      ...['-name', 'bare,debug-threads=on', '-nodefaults', '-no-user-config', '-display', 'none', '-machine', 'q35', '-accel', 'tcg', '-cpu', size.cpuModel],
      ...['-m', `${size.memoryMiB}M`, '-smp', String(size.cpus)],
      ...['-vnc', `unix:${join(dir, `vnc-${wsPort}.sock`)},websocket=127.0.0.1:${wsPort}`, '-device', 'virtio-vga', '-device', 'virtio-tablet-pci'],
      ...['-kernel', payload.kernel, '-initrd', payload.initrd, '-append', cmdline.join(' ')],
      ...['-serial', 'stdio', '-qmp', `unix:${qmpSocket},server=on,wait=off`],
      ...['-device', 'virtio-serial-pci', '-chardev', 'null,id=ga', '-device', 'virtserialport,chardev=ga,name=org.qemu.guest_agent.0'],
      ...['-chardev', 'qemu-vdagent,id=vdagent,clipboard=on', '-device', 'virtserialport,chardev=vdagent,name=com.redhat.spice.0'],
      ...(disk ? ['-drive', `file=${disk},format=qcow2,if=none,id=system`, '-device', 'virtio-blk-pci,drive=system,serial=pocketvm-root'] : []),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  qemu.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString('latin1')));
  const marker = DESKTOP ? DESKTOP_READY_MARKER : READY_MARKER;
  try {
    await waitFor(() => out.includes(marker) || qemu.exitCode !== null, 1_800_000, 50);
    if (!out.includes(marker)) throw new Error(`bare QEMU exited before ${marker}`);
  } catch (error) {
    qemu.kill('SIGKILL');
    throw error;
  }
  const readyMs = performance.now() - started;
  return {
    qemu,
    readyMs,
    cpu: cpuSpent({}, cpuSeconds({ bare: qemu.pid! })),
    wsPort,
    // QMP quit: QEMU flushes the qcow2 before it exits (the warm overlay is used again).
    quit: async () => {
      const exited = new Promise((resolve) => qemu.once('exit', resolve));
      const qmp = connect(qmpSocket);
      qmp.on('error', () => qemu.kill('SIGKILL'));
      qmp.write('{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n');
      await Promise.race([exited, sleep(20_000).then(() => qemu.kill('SIGKILL'))]);
      qmp.destroy();
    },
  };
}

interface PageLaunch {
  firstFrameMs: number;
  /** Host CPU seconds from the launch to the first frame: QEMU's vCPU and other threads, the rest of the launcher's tree, Chromium's, the bench's own process. */
  cpu: Record<string, number>;
  page: Page;
  /** The launcher's lines and the page's steps, by the time from the launch. */
  phases: () => string[];
  run: Awaited<ReturnType<typeof startPageRun>>;
}

/** `launcher run --display page`, the page opened as soon as its address is printed; to the first frame that shows the session. */
async function pageLaunch(browser: Browser, stickRoot: string): Promise<PageLaunch> {
  const chromium = { chromium: browser.process()!.pid! };
  const cpuBefore = { ...cpuSeconds(chromium), bench: process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6 };
  const launched = now();
  const served = await startPageRun(['--stick', stickRoot, '--guest', GUEST, '--accel', 'tcg', '--user', USER, '--passphrase-stdin'], {}, `${PASSPHRASE}\n`);
  const phases: Array<{ at: number; line: string }> = [];
  const stamp = (line: string, at = now()) => phases.push({ at: at - launched, line });
  for (const line of served.stderr().split('\n').filter(Boolean)) stamp(line);
  served.run.stderr?.on('data', (chunk: Buffer) =>
    chunk
      .toString()
      .split('\n')
      .filter(Boolean)
      .forEach((line) => stamp(line)),
  );
  const page = await browser.newPage();
  await page.evaluateOnNewDocument(PROBE);
  await page.goto(served.firstAddress);
  stamp('(bench) the page loaded');
  let exited = false;
  void served.run.then(() => (exited = true));
  await waitFor(
    async () => {
      if (exited) throw new Error(`the launcher ended before the first frame:\n${served.stderr()}`);
      return (await page.evaluate('window.__shown ?? 0')) !== 0;
    },
    1_800_000,
    100,
  );
  const shownAt = (await page.evaluate('window.__shown')) as number;
  const usage = process.cpuUsage();
  const cpu = cpuSpent(cpuBefore, { ...cpuSeconds({ ...chromium, launcher: served.run.pid! }), bench: (usage.user + usage.system) / 1e6 });
  stamp('(bench) the first frame that shows the session', shownAt);
  // The running session's screen (before it, the page may show the boot).
  await page.waitForSelector('body[data-screen="connected"]', { timeout: 1_800_000 });
  if (DESKTOP) {
    // The guest's own steps (usr/lib/pocketvm/boot-time.sh), by its uptime: read after the frame, so not in the figure.
    const times = await launcher(['exec', '--guest', GUEST, '--stick', stickRoot, '--', 'cat', '/run/pocketvm/boot-times']);
    for (const line of times.stdout.split('\n').filter(Boolean)) stamp(`(guest uptime) ${line}`, shownAt + 1);
  }
  const lines = () => phases.sort((a, b) => a.at - b.at).map((p) => `${(p.at / 1000).toFixed(1).padStart(6)} s  ${p.line}`);
  return { firstFrameMs: shownAt - launched, cpu, page, phases: lines, run: served };
}

async function endPageLaunch(launch: PageLaunch, stickRoot: string): Promise<void> {
  await launch.page.close();
  await launcher(['stop', '--stick', stickRoot]);
  await launch.run.run;
}

const browser = await startChromium();
const parent = await mkdtemp(join(tmpdir(), 'pocketvm-bench-page-'));
const stickRoot = join(parent, 'stick');
const live: { bare?: Bare } = {};
try {
  if (!existsSync(join(root, 'payload', GUEST, 'guest.json'))) throw new Error(`payload/${GUEST} is not built (node build.js image ${GUEST})`);
  const made = await launcher(['init-stick', stickRoot, '--guest', GUEST]);
  if (made.exitCode !== 0) throw new Error(`init-stick failed: ${made.stderr}`);
  await addStickUser(stickRoot, USER, PASSPHRASE);

  say(`first launch (the person's overlay created), load ${load()}…`);
  const first = await pageLaunch(browser, stickRoot);
  const firstLoad = load();
  const status = await launcherJson<Omit<Size, 'cpuModel'>>(['status', '--stick', stickRoot]);
  const qemuLog = await readFile(join(stickRoot, 'run', `${GUEST}.qemu.log`), 'utf8');
  const size = { memoryMiB: status.json.memoryMiB, cpus: status.json.cpus, cpuModel: / -cpu (\S+) /.exec(qemuLog)?.[1] ?? 'max' };
  if (!json) for (const line of first.phases()) say(`  ${line}`);
  await endPageLaunch(first, stickRoot);

  // Bare QEMU's own "everyday" state: a plain qcow2 over the base, booted once (its first boot untimed for the ratio).
  let warm: string | undefined;
  if (DESKTOP) {
    const payload = JSON.parse(await readFile(join(root, 'payload', GUEST, 'guest.json'), 'utf8')) as { image: { file: string } };
    warm = join(parent, 'warm.qcow2');
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', join(root, 'payload', GUEST, payload.image.file), '-F', 'raw', warm]);
    say(`bare QEMU's first boot (its overlay's account made), load ${load()}…`);
    const once = await bareQemu(size, warm, parent);
    await sleep(10_000); // the guest's file systems commit their writes
    await once.quit();
    say(`  ${(once.readyMs / 1000).toFixed(1)} s`);
  }
  const bareDisk = async (round: number) => {
    if (!warm) return undefined;
    const disk = join(parent, `run-${round}.qcow2`);
    await rm(disk, { force: true });
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', warm, '-F', 'qcow2', disk]);
    return disk;
  };

  const rounds: Array<{
    pageMs: number;
    pageLoad: string;
    bareMs: number;
    bareLoad: string;
    phases: string[];
    pageCpu: Record<string, number>;
    bareCpu: Record<string, number>;
  }> = [];
  let kept: PageLaunch | undefined;
  for (let round = 0; round < runs; round++) {
    const lastRound = round === runs - 1;
    let pageHalf: PageLaunch | undefined;
    let bareHalf: Bare | undefined;
    let pageLoad = '';
    let bareLoad = '';
    const runPage = async () => {
      say(`round ${round + 1}: the console page, an everyday launch, load ${load()}…`);
      pageHalf = await pageLaunch(browser, stickRoot);
      pageLoad = load();
      if (!lastRound) await endPageLaunch(pageHalf, stickRoot);
    };
    const runBare = async () => {
      say(`round ${round + 1}: bare QEMU, load ${load()}…`);
      bareHalf = await bareQemu(size, await bareDisk(round), parent);
      bareLoad = load();
      if (!lastRound) await bareHalf.quit();
    };
    // The last round's halves stay up for the keypresses: the bare one last, so the page's launch does not share the machine with it.
    if (round % 2 === 0 || lastRound) {
      await runPage();
      await runBare();
    } else {
      await runBare();
      await runPage();
    }
    rounds.push({
      pageMs: pageHalf!.firstFrameMs,
      pageLoad,
      bareMs: bareHalf!.readyMs,
      bareLoad,
      phases: pageHalf!.phases(),
      pageCpu: pageHalf!.cpu,
      bareCpu: bareHalf!.cpu,
    });
    if (lastRound) {
      kept = pageHalf;
      live.bare = bareHalf;
    }
  }

  // Keypresses: both guests up, alternating blocks.
  const page = kept!.page;
  const bare = live.bare!;
  const screen = (await page.evaluate(
    "(() => { const r = document.getElementById('screen').getBoundingClientRect(); return { width: Math.round(r.width), height: Math.round(r.height) }; })()",
  )) as { width: number; height: number };
  const { server, url } = await baselinePageServer(bare.wsPort, screen);
  const basePage = await browser.newPage();
  await basePage.evaluateOnNewDocument(PROBE);
  await basePage.goto(url);
  await basePage.waitForSelector('body[data-screen="connected"]', { timeout: 60_000 });
  say(`keypresses, ${PRESSES} on each, alternating blocks of ${BLOCK}, load ${load()}…`);
  await sleep(5_000); // the screens settle at the page's size
  await prepareForPresses(page);
  await prepareForPresses(basePage);
  const pagePresses: Press[] = [];
  const basePresses: Press[] = [];
  const keyLoads: number[] = [];
  while (pagePresses.length < PRESSES) {
    basePresses.push(...(await presses(basePage, BLOCK)));
    pagePresses.push(...(await presses(page, BLOCK)));
    keyLoads.push(loadavg()[0]!);
  }
  server.close();
  await endPageLaunch(kept!, stickRoot);
  await bare.quit();
  live.bare = undefined;

  const part = (list: Press[], key: keyof Press) => Number(median(list.map((p) => p[key])).toFixed(1));
  const split = (list: Press[]) => ({
    total: part(list, 'total'),
    page: part(list, 'page'),
    roundTrip: part(list, 'roundTrip'),
    more: part(list, 'more'),
    draw: part(list, 'draw'),
  });
  const pageMs = median(rounds.map((r) => r.pageMs));
  const bareMs = median(rounds.map((r) => r.bareMs));
  const result = {
    guest: GUEST,
    machine: size,
    firstLaunchMs: Math.round(first.firstFrameMs),
    firstLaunchLoad: Number(firstLoad),
    rounds: rounds.map((r) => ({
      pageMs: Math.round(r.pageMs),
      pageLoad: Number(r.pageLoad),
      bareMs: Math.round(r.bareMs),
      bareLoad: Number(r.bareLoad),
      pageCpuSeconds: r.pageCpu,
      bareCpuSeconds: r.bareCpu,
    })),
    launchToFirstFrameMs: Math.round(pageMs),
    bareQemuReadyMs: Math.round(bareMs),
    launchRatio: Number((pageMs / bareMs).toFixed(2)),
    screen,
    keypress: split(pagePresses),
    keypressBaseline: split(basePresses),
    keypressRatio: Number((median(pagePresses.map((p) => p.total)) / median(basePresses.map((p) => p.total))).toFixed(2)),
    keypressLoad: [Math.min(...keyLoads), Math.max(...keyLoads)].map((l) => Number(l.toFixed(1))),
    presses: PRESSES,
  };
  if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    console.log(`guest ${GUEST}: ${size.memoryMiB} MiB, ${size.cpus} vCPU, -cpu ${size.cpuModel}, virtio-vga, TCG, both halves`);
    console.log(`first launch (overlay created) → first frame  ${s(result.firstLaunchMs)}  (load ${firstLoad})`);
    for (const [i, r] of rounds.entries()) {
      console.log(`round ${i + 1}: page ${s(r.pageMs)} (load ${r.pageLoad})   bare QEMU ${s(r.bareMs)} (load ${r.bareLoad})`);
      console.log(`  host CPU to the frame: ${describeCpu(r.pageCpu)};  bare QEMU to its marker: ${describeCpu(r.bareCpu)}`);
    }
    console.log(
      `launch → first frame in the browser (everyday)  ${s(pageMs)}   bare QEMU → ready marker ${s(bareMs)}   ratio ${result.launchRatio}× (target ≤ 1.15×)`,
    );
    console.log(`the last everyday launch, from the launcher's start:`);
    for (const line of rounds.at(-1)!.phases) console.log(`  ${line}`);
    const k = result.keypress;
    const b = result.keypressBaseline;
    console.log(
      `keypress → changed pixel (median of ${PRESSES}, screen ${screen.width}×${screen.height}, load ${result.keypressLoad.join('–')})  page ${k.total} ms   noVNC on QEMU's websocket ${b.total} ms   ratio ${result.keypressRatio}× (target ≤ 1.2×)`,
    );
    console.log(
      `  medians, page / baseline: keydown → websocket send ${k.page} / ${b.page} ms; send → first message back ${k.roundTrip} / ${b.roundTrip} ms; → last message before the frame ${k.more} / ${b.more} ms; → the changed frame ${k.draw} / ${b.draw} ms`,
    );
  }
} finally {
  live.bare?.qemu.kill('SIGKILL');
  await browser.close();
  await launcher(['stop', '--force', '--stick', stickRoot]);
  await rm(parent, { recursive: true, force: true });
}
