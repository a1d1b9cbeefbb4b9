// The console page in real Chromium (puppeteer-core driving Debian's
// /usr/bin/chromium): `launcher run --display page` on a stick served through
// bindfs (so the test can pull it out), one boot of the default guest. The
// page refuses a request without its token, from another origin or another
// host name, a wrong passphrase; the right one shows the guest's screen; text
// typed on the page lands in a file `launcher exec` reads; the first address
// is spent; `status --json` names the page; pulling the stick out shows the
// ended state. Then `run --detach --display page` (a second boot): the
// address printed, never logged on the stick, and Eject on the page.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Browser, Page } from 'puppeteer-core';
import WebSocket from 'ws';
import { addStickUser, freshStick, launcher, launcherJson, processAlive, repoRoot, waitUntil } from './harness.ts';
import { desktopImage } from './desktop-machine.ts';
import { hasChromium, inPage, litPixels, type PageRun, signInOnPage, startChromium, startPageRun, typeOnScreen } from './page-browser.ts';

const passphrase = 'console page passphrase';
const hasBindfs = spawnSync('bindfs', ['--version']).status === 0 && existsSync('/dev/fuse');

/** A raw request, so the test can send any Host and Origin header (fetch would not let it). */
function rawGet(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function websocketRefused(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => {
      ws.close();
      resolve(101);
    });
    ws.on('error', () => resolve(-1));
  });
}

(hasChromium && hasBindfs ? describe : describe.skip)('the console page in Chromium (bindfs; boots the default guest once)', function () {
  this.timeout(600_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let mount: string;
  let bindfs: ChildProcess | undefined;
  let served: PageRun;
  let browser: Browser;
  let page: Page;
  let cookie = '';
  let waitingFolder = '';

  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, 'tester', passphrase);
    // A table rule of the person's, for a folder outside every known one: it waits for their confirmation.
    waitingFolder = await mkdtemp(join(tmpdir(), 'pocketvm-page-waiting-'));
    for (const [name, value] of [
      ['Table', 'FET'],
      ['GuestPath', '/host/waiting'],
      ['HostPath', waitingFolder],
    ] as const) {
      const set = await launcher(['reg', 'set', '--stick', stick.root, '--user', 'tester', 'Tables\\Rules\\Waiting', name, value]);
      assert.equal(set.exitCode, 0, set.stderr);
    }
    mount = join(dirname(stick.root), 'mnt');
    await mkdir(mount);
    bindfs = spawn('bindfs', ['-f', stick.root, mount], { stdio: 'ignore' });
    assert.ok(await waitUntil(() => spawnSync('mountpoint', ['-q', mount]).status === 0, 10_000, 20), 'bindfs did not mount');
    served = await startPageRun(['--stick', mount, '--accel', 'tcg']);
    browser = await startChromium();
    page = await browser.newPage();
  });
  after(async () => {
    await browser?.close();
    await launcher(['stop', '--force', '--stick', mount]);
    served?.run.kill('SIGKILL');
    bindfs?.kill('SIGKILL');
    spawnSync('fusermount', ['-u', '-z', mount]);
    await stick.dispose();
    if (waitingFolder) await rm(waitingFolder, { recursive: true, force: true });
  });

  it('refuses a request without its token, with a wrong token, from another origin, or for another host name', async () => {
    const { origin, firstAddress } = served;
    const port = new URL(origin).port;
    assert.equal((await rawGet(`${origin}/`, {})).status, 403);
    assert.equal((await rawGet(`${origin}/api/status`, {})).status, 403);
    assert.equal((await rawGet(`${origin}/?t=not-the-token`, {})).status, 403);
    // The right token, but from another origin or through another name (DNS rebinding): refused, and not spent.
    assert.equal((await rawGet(firstAddress, { origin: 'http://evil.example' })).status, 403);
    assert.equal((await rawGet(firstAddress, { host: `evil.example:${port}` })).status, 403);
    assert.equal(await websocketRefused(`ws://127.0.0.1:${port}/vnc`, { origin: 'http://evil.example' }), 403);
    // Every answer carries the strict policy: no inline script, nothing from elsewhere.
    const refused = await fetch(`${origin}/`);
    assert.match(refused.headers.get('content-security-policy') ?? '', /script-src 'self';.*frame-ancestors 'none'/);
  });

  it('a wrong passphrase is refused on the page', async () => {
    await page.goto(served.firstAddress);
    const error = await signInOnPage(page, 'not the passphrase');
    assert.match(error, /wrong passphrase for tester/);
    assert.equal(await inPage(page, 'document.body.dataset.phase'), 'sign-in');
    cookie = (await browser.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
  });

  it('the first address is spent: opened again, it is refused', async () => {
    assert.equal((await rawGet(served.firstAddress, {})).status, 403);
    // The page itself, with its cookie, still works; without an origin it may not act.
    assert.equal((await rawGet(`${served.origin}/api/status`, { cookie })).status, 200);
  });

  it("the right passphrase shows the guest's screen", async () => {
    await signInOnPage(page, passphrase);
    assert.notEqual(await inPage(page, 'document.body.dataset.phase'), 'sign-in');
    await page.waitForSelector('body[data-screen="connected"]', { timeout: 300_000 });
    assert.equal(await inPage(page, 'document.body.dataset.phase'), 'running');
    let lit = 0;
    for (let i = 0; i < 120 && lit < 500; i++) {
      lit = await litPixels(page);
      if (lit < 500) await new Promise((resolve) => setTimeout(resolve, 500));
    }
    assert.ok(lit >= 500, `the screen stayed dark (${lit} lit pixels)`);
  });

  it('launcher status --json names the page while it is served', async () => {
    const status = await launcherJson<{ page?: { address: string } }>(['status', '--stick', mount]);
    assert.equal(status.exitCode, 0, status.stderr);
    assert.equal(status.json.page?.address, `${served.origin}/`);
  });

  it('the page shows the status and the table rule waiting for confirmation', async () => {
    await page.click('#status-button');
    await page.waitForFunction("document.getElementById('status').textContent.includes('waiting for confirmation: /host/waiting')", { timeout: 30_000 });
    assert.match(await inPage<string>(page, "document.getElementById('status').textContent"), /default: \w+, up \d+ s\ntcg, \d+ MiB/);
  });

  it('confirms the waiting rule on the page with the passphrase, signed as launcher tables confirm signs it', async () => {
    const file = join(stick.root, 'users', 'tester', 'tables-confirmed.json');
    assert.equal(existsSync(file), false);
    // The list is drawn again with every status the page fetches: find and click the button in one step.
    const rule = '#waiting-rules button[data-rule="registry:Waiting"]';
    await page.waitForSelector(rule);
    await page.$eval(rule, (button) => (button as unknown as { click(): void }).click());
    await page.waitForSelector('#confirm-form:not([hidden])');
    await page.type('#confirm-passphrase', passphrase);
    await page.click('#confirm-button');
    await page.waitForSelector('body[data-confirm]', { timeout: 60_000 });
    const said = await inPage<string>(page, "document.getElementById('confirm-message').textContent");
    assert.equal(await inPage(page, 'document.body.dataset.confirm'), 'confirmed', said);
    assert.match(said, /^confirmed \/host\/waiting ← .*; it applies from the next launch$/);
    // The record, and the status no longer lists the rule.
    assert.match(await readFile(file, 'utf8'), /\/host\/waiting/);
    await page.click('#status-button');
    await page.waitForFunction("!document.getElementById('status').textContent.includes('waiting for confirmation')", { timeout: 30_000 });
    // The passphrase field is cleared and the form gone.
    assert.equal(await inPage(page, "document.getElementById('confirm-passphrase').value"), '');
  });

  it('text typed on the page lands in a file that launcher exec reads', async () => {
    await page.click('#screen canvas');
    // The shell on tty1 may still be starting: type until the file is there.
    let content = '';
    for (let attempt = 0; attempt < 5 && content !== 'typed-through-page'; attempt++) {
      await typeOnScreen(page, 'echo typed-through-page >typed.txt\n');
      for (let i = 0; i < 20; i++) {
        const read = await launcher(['exec', '--stick', mount, '--', 'cat', 'typed.txt']);
        content = read.stdout.trim();
        if (content === 'typed-through-page') break;
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    }
    assert.equal(content, 'typed-through-page');
  });

  it('pulling the stick out shows the ended state on the page', async () => {
    bindfs!.kill('SIGKILL');
    await page.waitForSelector('body[data-phase="ended"]', { timeout: 60_000 });
    assert.equal(await inPage(page, 'document.body.dataset.ended'), 'removed');
    assert.match(await inPage<string>(page, "document.getElementById('ended-title').textContent"), /stick was pulled out/);
    assert.match(await inPage<string>(page, "document.getElementById('ended-message').textContent"), /stick was removed/);
    const ended = await served.run;
    assert.equal(ended.exitCode, 15, served.stderr());
  });
});

// The desktop guest through the launcher and the page, on one boot: a stick
// made with `init-stick --guest default --guest desktop`, the desktop signed
// in on the page (the wallpaper colour #3a6ea5, DESKTOP_WALLPAPER, and a
// terminal window), the host's known folders and the stick's FIT folders as
// links on the person's desktop, `launcher exec --guest desktop` reaching the
// person's display without a hand-set DISPLAY (the manifest's execEnv), and
// the guest's clipboard arriving on the page. The desktop image is built here
// when missing (desktop-machine.ts: once per test process, cached), not
// decided when the file loads, so CI runs it whatever order the files run in.
// POCKETVM_PAGE_GUEST names another graphical guest to run the same checks on.
const desktopGuest = process.env['POCKETVM_PAGE_GUEST'] ?? 'desktop';
const WALLPAPER = [0x3a, 0x6e, 0xa5] as const;

(hasChromium ? describe : describe.skip)(`the console page with the ${desktopGuest} guest (builds the desktop image when missing; boots it once)`, function () {
  this.timeout(2_400_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let served: PageRun;
  let browser: Browser;
  let page: Page;
  let hostFolders: string;
  const inGuest = (...command: string[]) => launcher(['exec', '--guest', desktopGuest, '--stick', stick.root, '--', ...command], { timeout: 120_000 });

  before(async function () {
    // Up to half an hour the first time (mmdebstrap); seconds when built.
    if (desktopGuest === 'desktop') await desktopImage();
    else if (!existsSync(join(repoRoot, 'payload', desktopGuest, 'guest.json'))) this.skip();
    const parent = await mkdtemp(join(tmpdir(), 'pocketvm-it-'));
    const root = join(parent, 'stick');
    const made = await launcher(['init-stick', root, '--guest', 'default', '--guest', desktopGuest], { timeout: 600_000 });
    assert.equal(made.exitCode, 0, made.stderr);
    stick = { root, dispose: () => rm(parent, { recursive: true, force: true }) };
    await addStickUser(stick.root, 'tester', passphrase);
    // A stick folder of the person's (FIT: no confirmation) and this host's Documents (XDG, a known folder).
    for (const [name, value] of [
      ['Table', 'FIT'],
      ['GuestPath', '/host/Notes'],
    ] as const) {
      // Each guest has its own registry: the rule goes into the desktop's.
      const set = await launcher(['reg', 'set', '--stick', stick.root, '--user', 'tester', '--guest', desktopGuest, 'Tables\\Rules\\Notes', name, value]);
      assert.equal(set.exitCode, 0, set.stderr);
    }
    hostFolders = join(parent, 'host');
    await mkdir(join(hostFolders, 'config'), { recursive: true });
    await mkdir(join(hostFolders, 'Dokumente'));
    await writeFile(join(hostFolders, 'Dokumente', 'from-host.txt'), 'a host document\n');
    await writeFile(join(hostFolders, 'config', 'user-dirs.dirs'), `XDG_DOCUMENTS_DIR="${join(hostFolders, 'Dokumente')}"\n`);
    served = await startPageRun(['--stick', stick.root, '--guest', desktopGuest, '--accel', 'tcg'], { XDG_CONFIG_HOME: join(hostFolders, 'config') });
    browser = await startChromium();
    page = await browser.newPage();
    await page.goto(served.firstAddress);
    await signInOnPage(page, passphrase);
    await page.waitForSelector('body[data-screen="connected"]', { timeout: 900_000 });
    // The screen connects long before the session is up (minutes under TCG on a loaded machine):
    // wait for the guest's own "session ready" (desktop-session's flag file) rather than a time.
    const deadline = Date.now() + 1_500_000;
    let ready = false;
    while (!ready && Date.now() < deadline) {
      ready = (await inGuest('test', '-e', '/run/pocketvm/session-ready')).exitCode === 0;
      if (!ready) await new Promise((resolve) => setTimeout(resolve, 2_000));
    }
    assert.ok(ready, 'the desktop session did not say it was ready');
  });
  after(async () => {
    await browser?.close();
    if (stick) await launcher(['stop', '--force', '--stick', stick.root]);
    served?.run.kill('SIGKILL');
    await stick?.dispose();
  });

  it('init-stick put both guests on the stick', async () => {
    const guests = await readFile(join(stick.root, 'payload', 'default', 'guest.json'), 'utf8');
    assert.match(guests, /"name": "default"/);
    assert.match(await readFile(join(stick.root, 'payload', desktopGuest, 'guest.json'), 'utf8'), new RegExp(`"name": "${desktopGuest}"`));
  });

  it("shows the desktop: most of the screen is the wallpaper's colour, and a terminal window is on it", async () => {
    const share = async () =>
      inPage<{ wallpaper: number; other: number }>(
        page,
        `(() => {
          const canvas = document.querySelector('#screen canvas');
          const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
          let wallpaper = 0, other = 0;
          for (let i = 0; i < data.length; i += 4) {
            const near = Math.abs(data[i] - ${WALLPAPER[0]}) + Math.abs(data[i + 1] - ${WALLPAPER[1]}) + Math.abs(data[i + 2] - ${WALLPAPER[2]}) < 24;
            if (near) wallpaper++; else other++;
          }
          return { wallpaper, other };
        })()`,
      );
    let seen = { wallpaper: 0, other: 1 };
    // Wait for both: the file manager draws the wallpaper before the terminal maps.
    // At least a fifth wallpaper (no other screen has its colour) beside a window's worth of other pixels.
    const enough = (s: typeof seen) => s.wallpaper / (s.wallpaper + s.other) >= 0.2 && s.other / (s.wallpaper + s.other) >= 0.05;
    for (let i = 0; i < 240 && !enough(seen); i++) {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      seen = await share();
    }
    const ratio = seen.wallpaper / (seen.wallpaper + seen.other);
    assert.ok(ratio >= 0.2, `the wallpaper covers ${(ratio * 100).toFixed(0)} % of the screen`);
    // The terminal window: a large part of the screen that is not wallpaper.
    assert.ok(seen.other / (seen.wallpaper + seen.other) >= 0.05, 'nothing but wallpaper: no terminal window');
  });

  it("puts /host, the host's folders and the stick's FIT folders on the person's desktop, and they resolve", async () => {
    // desktop-links runs once /host is mounted: give it time after the screen shows.
    const listing = '"$HOME"/Desktop/*';
    let links = '';
    for (let i = 0; i < 120 && !/Notes/.test(links); i++) {
      links = (await inGuest('sh', '-c', `for l in ${listing}; do [ -L "$l" ] && echo "\${l##*/} $(readlink "$l")"; done`)).stdout;
      if (!/Notes/.test(links)) await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
    assert.match(links, /^Host \/host$/m);
    assert.match(links, /^Documents \/host\/Documents$/m);
    assert.match(links, /^Notes \/host\/Notes$/m);
    // Through the links, as a click in pcmanfm opens them: the host's file, and a file written to the stick's folder.
    const read = await inGuest('cat', 'Desktop/Documents/from-host.txt');
    assert.equal(read.stdout, 'a host document\n', read.stderr);
    const written = await inGuest('sh', '-c', 'echo on-the-stick >Desktop/Notes/note.txt && cat /host/Notes/note.txt');
    assert.equal(written.stdout, 'on-the-stick\n', written.stderr);
    // pcmanfm draws ~/Desktop as the desktop's icons, as the person.
    const desktop = await inGuest('sh', '-c', 'ps -o user=,args= -C pcmanfm');
    assert.match(desktop.stdout, /^tester\s+pcmanfm --desktop/m, desktop.stderr);
  });

  it("launcher exec reaches the person's display without a hand-set DISPLAY", async () => {
    const windows = await inGuest('xdotool', 'search', '--onlyvisible', '--class', 'XTerm');
    assert.equal(windows.exitCode, 0, windows.stderr);
    assert.match(windows.stdout, /^\d+$/m);
    const env = await inGuest('sh', '-c', 'echo "$DISPLAY $XAUTHORITY"');
    assert.equal(env.stdout, ':0 /run/pocketvm/Xauthority\n');
  });

  it("text copied in the guest arrives in the page's clipboard", async () => {
    const copied = await inGuest('sh', '-c', 'printf copied-in-guest | xclip -selection clipboard');
    assert.equal(copied.exitCode, 0, copied.stderr);
    await page.waitForFunction("document.getElementById('clipboard').value === 'copied-in-guest'", { timeout: 60_000 });
  });

  it("text put in the page's clipboard box and sent arrives in the guest's X clipboard as it was", async () => {
    // The person's way: the text in the box, then "Send to the guest" (noVNC's extended ClientCutText → QEMU's
    // qemu-vdagent → spice-vdagent). Two lines and non-ASCII: no NUL after it, no \r before the line end
    // (src/console/assets/clipboard-to-guest.js), nothing lost to Latin-1.
    const text = 'from the page: ünïcode €\nsecond line';
    await page.$eval('#clipboard', (box, value) => ((box as unknown as { value: string }).value = value), text);
    await page.click('#clipboard-send');
    // xclip asks the clipboard's owner (spice-vdagent, once QEMU's grab reached it), which asks QEMU for the text.
    // Read as base64, so a NUL or a \r would show.
    const clipboard = async () => Buffer.from((await inGuest('sh', '-c', 'xclip -o -selection clipboard | base64 -w0')).stdout, 'base64').toString('utf8');
    let pasted = '';
    for (let i = 0; i < 60 && !pasted.startsWith('from the page'); i++) {
      pasted = await clipboard();
      if (!pasted.startsWith('from the page')) await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
    assert.equal(pasted, text, "the guest's clipboard does not hold the page's text as it was");
  });
});

(hasChromium ? describe : describe.skip)('run --detach --display page: the session process serves the page (boots the default guest once)', function () {
  this.timeout(600_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let browser: Browser;

  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, 'tester', passphrase);
    browser = await startChromium();
  });
  after(async () => {
    await browser?.close();
    await launcher(['stop', '--force', '--stick', stick.root]);
    await stick.dispose();
  });

  it('prints the address, status names it, the page shows the screen, and Eject ends in "safe to remove"', async () => {
    const started = await launcherJson<{ pid: number; pageFirstAddress?: string; page?: { address: string } }>(
      ['run', '--detach', '--display', 'page', '--stick', stick.root, '--user', 'tester', '--passphrase-stdin', '--accel', 'tcg'],
      { input: `${passphrase}\n`, env: { NO_COLOR: '1', POCKETVM_OPEN_PAGE: '0' } },
    );
    assert.equal(started.exitCode, 0, started.stderr);
    const first = started.json.pageFirstAddress;
    assert.match(first ?? '', /^http:\/\/127\.0\.0\.1:\d+\/\?t=[A-Za-z0-9_-]+$/);
    const origin = new URL(first!).origin;
    assert.equal(started.json.page?.address, `${origin}/`);
    // The token never goes into the session's log on the stick.
    assert.ok(!(await readFile(join(stick.root, 'run', 'session.log'), 'utf8')).includes(new URL(first!).searchParams.get('t')!));
    const status = await launcher(['status', '--stick', stick.root]);
    assert.match(status.stdout, new RegExp(`console page ${origin}/`));
    const page = await browser.newPage();
    page.on('dialog', (dialog) => void dialog.accept());
    await page.goto(first!);
    await page.waitForSelector('body[data-screen="connected"]', { timeout: 120_000 });
    await page.click('#eject-button');
    await page.waitForSelector('body[data-phase="ended"]', { timeout: 120_000 });
    assert.equal(await inPage(page, 'document.body.dataset.ended'), 'ejected');
    assert.match(await inPage<string>(page, "document.getElementById('ended-message').textContent"), /safe to remove/);
    assert.ok(await waitUntil(() => !processAlive(started.json.pid), 30_000), 'the session process did not exit');
  });
});
