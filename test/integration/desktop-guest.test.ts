// The desktop guest's inside (images/desktop/), on one boot of the real image
// under bare QEMU (test/integration/desktop-machine.ts): the session comes up
// logged in as the person with X, openbox, a terminal window and the known
// wallpaper colour (QMP screendump); a new size from QEMU's VNC (what a
// browser window's resize sends through noVNC) reaches xrandr; keyboard
// layout, locale and time zone follow the registry's Host\... values served
// on the real registry port; the clipboard agent and the guest agent run.
// With the launcher's user-mode network card the guest takes its lease,
// resolves a name (through a DNS server this test runs on the host's
// 127.0.0.1, when it runs as root: a private resolv.conf) and fetches a page
// from an HTTP server there as 10.0.2.2; the person's session and a login
// shell have the host's proxy from the registry's Host\Proxy values, a
// loopback proxy rewritten to 10.0.2.2, and a fetch goes through it.
// The image is built once and cached in .cache/desktop-image/ (minutes the
// first time; docs/desktop.md, "Building the image").
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestRegistry } from '../../src/guestregistry/registry.ts';
import { DESKTOP_WALLPAPER } from '../../src/payload/desktop-guest.ts';
import { bootDesktop, desktopImage, type DesktopMachine } from './desktop-machine.ts';
import {
  canRunLoopbackResolver,
  type DnsServer,
  HOST_FROM_GUEST,
  type RecordingHttpServer,
  startDnsServer,
  startHttpServer,
  withResolverOnLoopback,
} from './network-servers.ts';
import { VncDesktopSize } from './vnc-desktop-size.ts';

const USER = 'dora';
/** This PC's settings as the host probe would record them (session facts). */
const HOST = { Keyboard: 'de', KeyboardVariant: 'nodeadkeys', Locale: 'fr-CA', Timezone: 'Asia/Tokyo' };
const NAME = 'desktop.pocketvm-test.example';
const PROXIED = 'proxied.pocketvm-test.example';

describe('the desktop guest (boots the desktop image)', function () {
  this.timeout(1_800_000);
  let machine: DesktopMachine | undefined;
  let registryDir: string;
  let registry: GuestRegistry;
  let readyMs: number;
  let dns: DnsServer | undefined;
  let http: RecordingHttpServer;
  let resolver: Awaited<ReturnType<typeof withResolverOnLoopback>> | undefined;
  const sh = async (script: string) => {
    const result = await machine!.sh(script);
    assert.equal(result.code, 0, `${script}: ${result.stderr}`);
    return result.stdout.trim();
  };

  before(async function () {
    // The image build: up to half an hour on a loaded machine the first time.
    await desktopImage();
    http = await startHttpServer();
    // The host's resolvers, as libslirp reads them, name the test's DNS server (root only: unshare -m, port 53).
    if (canRunLoopbackResolver) {
      dns = await startDnsServer([NAME, PROXIED]);
      resolver = await withResolverOnLoopback([]);
    }
    registryDir = await mkdtemp(join(tmpdir(), 'pocketvm-desktop-registry-'));
    registry = GuestRegistry.open({
      file: join(registryDir, 'registry.db'),
      hostId: 'desktop-test-host',
      session: [
        ...Object.entries(HOST).map(([name, data]) => ({ key: 'Host', name, value: { type: 'string' as const, data } })),
        // A proxy on the host's loopback (the test's HTTP server), as the host probe records it.
        { key: 'Host\\Proxy', name: 'Http', value: { type: 'string' as const, data: `http://127.0.0.1:${http.port}` } },
        { key: 'Host\\Proxy', name: 'NoProxy', value: { type: 'multi-string' as const, data: [NAME, '.corp.example'] } },
      ],
    });
    machine = await bootDesktop({ user: USER, registry, network: true, ...(resolver ? { wrap: resolver } : {}) });
    readyMs = await machine.waitForSessionReady(900_000);
    process.stderr.write(`      boot to session ready: ${(readyMs / 1000).toFixed(1)} s (bare QEMU, TCG)\n`);
  });

  after(async () => {
    await machine?.stop();
    registry?.close();
    if (registryDir) await rm(registryDir, { recursive: true, force: true });
    await resolver?.dispose();
    await dns?.close();
    await http?.close();
  });

  it('runs X, openbox and a terminal window as the person', async () => {
    assert.match(await sh('xdpyinfo | grep -m1 dimensions'), /dimensions:\s+\d+x\d+ pixels/);
    assert.match(await sh('xprop -root _NET_SUPPORTING_WM_CHECK | grep -o "0x[0-9a-f]*" | xargs -I{} xprop -id {} _NET_WM_NAME'), /"Openbox"/);
    const terminal = await sh('xdotool search --onlyvisible --class XTerm | head -1');
    assert.match(terminal, /^\d+$/, 'a visible XTerm window');
    assert.equal(await sh(`ps -o user= -p "$(xdotool getwindowpid ${terminal})"`), USER);
    assert.equal(await sh('ps -o user= -C openbox'), USER);
  });

  it('shows the known wallpaper colour (QMP screendump)', async () => {
    const file = join(machine!.dir, 'screen.ppm');
    await machine!.qmp.execute('screendump', { filename: file });
    const { width, height, pixel } = readPpm(await readFile(file));
    // The bottom-right quarter holds no window and no desktop icon.
    let wallpaper = 0;
    let total = 0;
    for (let y = Math.floor(height * 0.75); y < height; y += 7) {
      for (let x = Math.floor(width * 0.75); x < width; x += 7) {
        total++;
        if (pixel(x, y).every((v, i) => v === DESKTOP_WALLPAPER.rgb[i])) wallpaper++;
      }
    }
    assert.ok(wallpaper / total > 0.95, `${wallpaper} of ${total} sampled pixels have the wallpaper colour ${DESKTOP_WALLPAPER.hex}`);
  });

  it('follows a new window size from the display to xrandr', async () => {
    const before = await sh('xrandr --query | awk \'/ current /{print $8 "x" $10}\' | tr -d ,');
    assert.notEqual(before, '1024x640');
    const vnc = await VncDesktopSize.open(machine!.vncSocket);
    try {
      vnc.setDesktopSize(1024, 640);
      let now = before;
      const deadline = Date.now() + 120_000;
      while (now !== '1024x640' && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        now = await sh('xrandr --query | awk \'/ current /{print $8 "x" $10}\' | tr -d ,');
      }
      assert.equal(now, '1024x640', 'the X screen took the size the display asked for');
    } finally {
      vnc.close();
    }
  });

  it("takes keyboard layout, locale and time zone from the registry's Host values", async () => {
    const keyboard = await sh('setxkbmap -query');
    assert.match(keyboard, /^layout:\s+de$/m);
    assert.match(keyboard, /^variant:\s+nodeadkeys$/m);
    assert.equal(await sh('cat /etc/timezone'), 'Asia/Tokyo');
    assert.equal(await sh('date +%Z'), 'JST');
    // fr-CA (a BCP 47 tag, as Windows gives it) becomes fr_CA.UTF-8, compiled at boot.
    assert.equal(await sh('. /etc/default/locale && echo "$LANG"'), 'fr_CA.UTF-8');
    assert.match(await sh('locale -a'), /^fr_CA\.utf8$/m);
    const terminalEnv = await sh('tr "\\0" "\\n" </proc/"$(pgrep -n -x xterm)"/environ');
    assert.match(terminalEnv, /^LANG=fr_CA\.UTF-8$/m);
  });

  it('takes its address, route and resolver from user-mode networking', async () => {
    assert.equal(await sh('cat /run/pocketvm/network-address'), '10.0.2.15');
    assert.match(await sh('ip route show default'), new RegExp(`^default via ${HOST_FROM_GUEST.replaceAll('.', '\\.')} dev `));
    assert.match(await sh('cat /etc/resolv.conf'), /^nameserver 10\.0\.2\.3$/m);
  });

  it("fetches a page from the host's 127.0.0.1 as 10.0.2.2, and resolves a name through the host's resolver", async () => {
    // The payload's busybox wget (the image's own DHCP client is the same binary), through glibc's resolver; no proxy.
    const fetch = (host: string, path: string) => sh(`busybox wget -q -Y off -O - http://${host}:${http.port}${path}`);
    assert.equal(await fetch(HOST_FROM_GUEST, '/desktop-direct'), 'pocketvm-net /desktop-direct');
    assert.ok(http.requests.includes('GET /desktop-direct'), http.requests.join(', '));
    if (!dns) return; // not root: no private resolv.conf for QEMU
    assert.equal(await sh(`getent ahostsv4 ${NAME} | head -1 | cut -d' ' -f1`), HOST_FROM_GUEST);
    assert.ok(dns.queries.includes(NAME), `the DNS server was not asked for ${NAME}: ${dns.queries.join(', ')}`);
    assert.equal(await fetch(NAME, '/desktop-by-name'), 'pocketvm-net /desktop-by-name');
  });

  it("gives the person's session and a login shell the host's proxy, a loopback proxy as the host's address", async () => {
    const proxy = `http://${HOST_FROM_GUEST}:${http.port}`;
    const noProxy = `localhost,127.0.0.1,${NAME},.corp.example`;
    const terminalEnv = await sh('tr "\\0" "\\n" </proc/"$(pgrep -n -x xterm)"/environ');
    assert.match(terminalEnv, new RegExp(`^http_proxy=${proxy.replaceAll('.', '\\.')}$`, 'm'));
    assert.match(terminalEnv, new RegExp(`^no_proxy=${noProxy.replaceAll('.', '\\.')}$`, 'm'));
    assert.equal(await sh(`runuser -u ${USER} -- bash -lc 'echo "$http_proxy|$no_proxy"'`), `${proxy}|${noProxy}`);
    // A fetch through it (busybox wget, the payload's, honours http_proxy): the proxy gets the absolute URL.
    assert.equal(
      await sh(`runuser -u ${USER} -- bash -lc 'busybox wget -q -O - http://${PROXIED}/via-desktop-proxy'`),
      `pocketvm-net http://${PROXIED}/via-desktop-proxy`,
    );
    assert.ok(http.requests.includes(`GET http://${PROXIED}/via-desktop-proxy`), http.requests.join(', '));
  });

  it('runs the clipboard agent and the guest agent', async () => {
    assert.match(await sh('pgrep -x spice-vdagentd && pgrep -u ' + USER + ' -x spice-vdagent'), /^\d+\n\d+$/);
    assert.match(await sh('pgrep -x qemu-ga'), /^\d+$/);
  });
});

/** A binary PPM (P6, 8 bits), as QEMU's screendump writes it. */
function readPpm(data: Buffer): { width: number; height: number; pixel: (x: number, y: number) => [number, number, number] } {
  const header = /^P6\s+(\d+)\s+(\d+)\s+255\s/.exec(data.subarray(0, 64).toString('latin1'));
  assert.ok(header, 'a P6 PPM');
  const width = Number(header[1]);
  const height = Number(header[2]);
  const offset = header[0].length;
  return {
    width,
    height,
    pixel: (x, y) => {
      const i = offset + (y * width + x) * 3;
      return [data[i]!, data[i + 1]!, data[i + 2]!];
    },
  };
}
