// bench/console-page: the console page against noVNC straight on QEMU, same run.
//
//   launch → first frame: `launcher run --display page` (passphrase on stdin,
//     so no person types on the page) from process start to the first lit
//     frame of the guest's screen in Chromium, against bare QEMU booting the
//     same kernel and initramfs to the ready marker on its serial port.
//   keypress → changed pixel: a key pressed in the page (a letter, then
//     Backspace, alternately, at the shell on tty1) to the first animation
//     frame whose canvas differs, median of 50; against the same noVNC
//     modules in a page of their own connected straight to QEMU's websocket
//     VNC (`-vnc ...,websocket=`: a TCP port on 127.0.0.1, for this baseline
//     only; the launcher never gives QEMU one).
//
// Prints the figures and ratios; never fails on a time.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'puppeteer-core';
import { openGuestPayload } from '../src/payload/guest-payload.ts';
import { READY_MARKER } from '../src/vmm/console-tap.ts';
import { addStickUser, freshStick, launcher } from '../test/integration/harness.ts';
import { inPage, litPixels, startChromium, startPageRun } from '../test/integration/page-browser.ts';
import { benchOptions, median } from './bench-options.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const { json, say } = benchOptions(1);
const PRESSES = 50;
/** Bare QEMU's VNC socket (it also needs one for the websocket listener); removed at the end. */
const BARE_VNC_SOCKET = `/tmp/pocketvm-bench-vnc-${process.pid}.sock`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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

/** Installs a keydown → changed-frame timer in the page; one key per call of `measure`. */
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
      for (let i = 0; i < now.length; i += 4) if (now[i] !== before[i]) { window.__latency.results.push(performance.now() - pressed); window.__latency.pending = null; return; }
      requestAnimationFrame(check);
    };
    requestAnimationFrame(check);
  }, true);
})()`;

async function keypressLatencies(page: Page): Promise<number[]> {
  await page.click('#screen canvas');
  await page.evaluate(TIMER);
  for (let i = 0; i < PRESSES; i++) {
    await page.keyboard.press(i % 2 === 0 ? 'KeyA' : 'Backspace');
    await waitFor(async () => (await inPage<number>(page, 'window.__latency.results.length')) > i, 20_000, 5);
    await sleep(30);
  }
  return inPage<number[]>(page, 'window.__latency.results');
}

/** A page of the bench's own: noVNC's modules, connected straight to QEMU's websocket. */
async function baselinePageServer(wsPort: number): Promise<{ server: Server; url: string }> {
  const novnc = join(root, 'node_modules', '@novnc', 'novnc');
  const html = `<!doctype html><body style="margin:0;background:#000"><div id="screen" style="width:1024px;height:700px"></div><script type="module">
import RFB from '/novnc/core/rfb.js';
const rfb = new RFB(document.getElementById('screen'), 'ws://127.0.0.1:${wsPort}/');
rfb.scaleViewport = true;
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

async function bareQemu(): Promise<{ qemu: ChildProcess; readyMs: number; wsPort: number; started: number }> {
  const payload = await openGuestPayload(join(root, 'payload'), 'default');
  const wsPort = await freePort();
  const started = performance.now();
  const qemu = spawn(
    'qemu-system-x86_64',
    [
      ...['-nodefaults', '-no-user-config', '-display', 'none', '-machine', 'q35', '-accel', 'tcg', '-cpu', 'max', '-m', '256M', '-smp', '1'],
      ...['-vnc', `unix:${BARE_VNC_SOCKET},websocket=127.0.0.1:${wsPort}`, '-device', 'virtio-vga', '-device', 'virtio-tablet-pci'],
      ...['-kernel', payload.kernel, '-initrd', payload.initrd, '-append', `${payload.manifest.cmdline} console=tty0 console=ttyS0 pocketvm.display=1`],
      ...['-serial', 'stdio', '-device', 'virtio-serial-pci', '-chardev', 'null,id=ga', '-device', 'virtserialport,chardev=ga,name=org.qemu.guest_agent.0'],
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  qemu.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  try {
    await waitFor(() => out.includes(READY_MARKER), 300_000);
  } catch (error) {
    qemu.kill('SIGKILL');
    throw error;
  }
  return { qemu, readyMs: performance.now() - started, wsPort, started };
}

const browser = await startChromium();
const stick = await freshStick();
let bareQemuProcess: ChildProcess | undefined;
try {
  await addStickUser(stick.root, 'bench', 'bench passphrase');
  // The console page.
  say('console page: launch to first frame…');
  const launched = performance.now();
  const served = await startPageRun(['--stick', stick.root, '--accel', 'tcg', '--user', 'bench', '--passphrase-stdin'], {}, 'bench passphrase\n');
  const page = await browser.newPage();
  await page.goto(served.firstAddress);
  await page.waitForSelector('body[data-screen="connected"]', { timeout: 300_000 });
  await waitFor(async () => (await litPixels(page)) > 500, 120_000, 10);
  const pageFirstFrameMs = performance.now() - launched;
  await sleep(3_000);
  say('console page: keypresses…');
  const pageLatencies = await keypressLatencies(page);
  await launcher(['stop', '--stick', stick.root]);
  await served.run;
  await page.close();
  // The baseline: bare QEMU, noVNC straight on its websocket.
  say('bare QEMU: boot to ready…');
  const bare = await bareQemu();
  bareQemuProcess = bare.qemu;
  const { server, url } = await baselinePageServer(bare.wsPort);
  const basePage = await browser.newPage();
  await basePage.goto(url);
  await basePage.waitForSelector('body[data-screen="connected"]', { timeout: 60_000 });
  await sleep(3_000);
  say('bare QEMU: keypresses…');
  const baseLatencies = await keypressLatencies(basePage);
  bare.qemu.kill('SIGKILL');
  server.close();
  const pageMedian = median(pageLatencies);
  const baseMedian = median(baseLatencies);
  const result = {
    launchToFirstFrameMs: Math.round(pageFirstFrameMs),
    bareQemuReadyMs: Math.round(bare.readyMs),
    launchRatio: Number((pageFirstFrameMs / bare.readyMs).toFixed(2)),
    keypressMedianMs: Number(pageMedian.toFixed(1)),
    keypressBaselineMedianMs: Number(baseMedian.toFixed(1)),
    keypressRatio: Number((pageMedian / baseMedian).toFixed(2)),
    presses: PRESSES,
  };
  if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    console.log(
      `launch → first frame in the browser  ${(result.launchToFirstFrameMs / 1000).toFixed(1)} s   bare QEMU → ready marker ${(result.bareQemuReadyMs / 1000).toFixed(1)} s   ratio ${result.launchRatio}× (target ≤ 1.15×)`,
    );
    console.log(
      `keypress → changed pixel (median of ${PRESSES})  page ${result.keypressMedianMs} ms   noVNC on QEMU's websocket ${result.keypressBaselineMedianMs} ms   ratio ${result.keypressRatio}× (target ≤ 1.2×)`,
    );
  }
} finally {
  bareQemuProcess?.kill('SIGKILL');
  await rm(BARE_VNC_SOCKET, { force: true });
  await browser.close();
  await launcher(['stop', '--force', '--stick', stick.root]);
  await stick.dispose();
}
