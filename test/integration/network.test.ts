// The guest's network (docs/network.md) on two boots of the real payload.
// With the network on (the default): the guest has an address from DHCP,
// resolves a name through user-mode networking's DNS (forwarded to a tiny DNS
// server this test runs on the host's 127.0.0.1, named in a private
// /etc/resolv.conf) and fetches a page from an HTTP server on the host's
// 127.0.0.1 as 10.0.2.2; a person's login shell has the host's proxy (probed
// from the launcher's environment, a loopback proxy rewritten to 10.0.2.2) and
// a fetch through it arrives at the proxy. With Network\Enabled false the
// guest keeps its card but reaches neither the name nor the host.
import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { execa } from 'execa';
import { addStickUser, freshStick, launcher, launcherJson, launcherPath, loginArgs } from './harness.ts';
import {
  canRunLoopbackResolver,
  type DnsServer,
  HOST_FROM_GUEST,
  type RecordingHttpServer,
  startDnsServer,
  startHttpServer,
  withResolverOnLoopback,
} from './network-servers.ts';

const PASSPHRASE = 'nina network passphrase';
const NAME = 'files.pocketvm-test.example';
const PROXIED = 'proxied.pocketvm-test.example';

describe('the guest on the network (boots the real guest twice)', function () {
  this.timeout(600_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let dns: DnsServer;
  let http: RecordingHttpServer;
  const guest = (...command: string[]) => launcher(['exec', '--stick', stick.root, '--', ...command], { timeout: 120_000 });

  /** `launcher run --detach` inside a mount namespace whose resolv.conf names the test's DNS server. */
  async function boot(): Promise<void> {
    const run = await withResolverOnLoopback([launcherPath, 'run', '--detach', '--accel', 'tcg', '--stick', stick.root, ...loginArgs('nina')]);
    try {
      const started = await execa(run.command, run.args, {
        input: `${PASSPHRASE}\n`,
        reject: false,
        timeout: 240_000,
        // The host's proxy, as the probe reads it on Linux: a proxy on the host's loopback (the test's HTTP server).
        env: { NO_COLOR: '1', http_proxy: `http://127.0.0.1:${http.port}`, no_proxy: `${NAME},.corp.example` },
      });
      assert.equal(started.exitCode, 0, String(started.stderr));
    } finally {
      // The namespace keeps its mount: the file can go.
      await run.dispose();
    }
  }

  before(async function () {
    if (!canRunLoopbackResolver) this.skip();
    dns = await startDnsServer([NAME, PROXIED]);
    http = await startHttpServer();
    stick = await freshStick();
    await addStickUser(stick.root, 'nina', PASSPHRASE);
  });
  after(async () => {
    if (!stick) return;
    await launcher(['stop', '--force', '--stick', stick.root]);
    await stick.dispose();
    await dns.close();
    await http.close();
  });

  describe('with the network on (the default)', () => {
    before(boot);
    after(async () => {
      const stopped = await launcher(['stop', '--stick', stick.root]);
      assert.equal(stopped.exitCode, 0, stopped.stderr);
    });

    it('launcher status names the network and the address the guest leased', async () => {
      const status = await launcherJson<{ network: unknown }>(['status', '--stick', stick.root]);
      assert.deepEqual(status.json.network, { mode: 'user', leasedAddress: '10.0.2.15', hostLoopback: HOST_FROM_GUEST });
      const text = await launcher(['status', '--stick', stick.root]);
      assert.match(text.stdout, /network: user-mode, the guest is 10\.0\.2\.15; the host's 127\.0\.0\.1 is 10\.0\.2\.2 to it/);
    });

    it('has an address and a default route from DHCP, and a resolver from the lease', async () => {
      const result = await guest('sh', '-c', 'cat /run/pocketvm/network-address; ip route show default; cat /etc/resolv.conf');
      assert.equal(result.exitCode, 0, result.stderr);
      assert.match(result.stdout, /^10\.0\.2\.15\n/);
      assert.match(result.stdout, new RegExp(`default via ${HOST_FROM_GUEST.replaceAll('.', '\\.')} dev eth0`));
      assert.match(result.stdout, /^nameserver 10\.0\.2\.3$/m);
    });

    it("resolves a name through the host's resolver and fetches a page from the host's 127.0.0.1", async () => {
      const result = await guest('wget', '-q', '-Y', 'off', '-O', '-', `http://${NAME}:${http.port}/direct`);
      assert.equal(result.exitCode, 0, result.stderr);
      assert.equal(result.stdout, 'pocketvm-net /direct\n');
      assert.ok(dns.queries.includes(NAME), `the DNS server was not asked for ${NAME}: ${dns.queries.join(', ')}`);
      assert.ok(http.requests.includes('GET /direct'), http.requests.join(', '));
    });

    it("gives a login shell the host's proxy, a loopback proxy as the host's address, and a fetch goes through it", async () => {
      const env = await guest('sh', '-lc', 'echo "$http_proxy|$no_proxy"');
      assert.equal(env.stdout, `http://${HOST_FROM_GUEST}:${http.port}|localhost,127.0.0.1,${NAME},.corp.example\n`);
      // busybox wget honours http_proxy: the proxy gets the absolute URL and the guest never resolves the name.
      const asked = dns.queries.length;
      const proxied = await guest('sh', '-lc', `wget -q -O - http://${PROXIED}/via-proxy`);
      assert.equal(proxied.exitCode, 0, proxied.stderr);
      assert.equal(proxied.stdout, `pocketvm-net http://${PROXIED}/via-proxy\n`);
      assert.ok(http.requests.includes(`GET http://${PROXIED}/via-proxy`), http.requests.join(', '));
      assert.ok(!dns.queries.slice(asked).includes(PROXIED), 'the proxied name was resolved in the guest');
    });

    it('listens on nothing on the host, after all that traffic', async () => {
      assert.deepEqual(await qemuListening(), []);
    });
  });

  /** QEMU's listening TCP sockets (IPv4 and IPv6), by its socket descriptors' inodes in /proc/net/tcp*. */
  async function qemuListening(): Promise<string[]> {
    const { json } = await launcherJson<{ qemuPid: number }>(['status', '--stick', stick.root]);
    const fdDir = `/proc/${json.qemuPid}/fd`;
    const inodes = new Set(
      (await readdir(fdDir)).flatMap((fd) => {
        let target: string;
        try {
          target = readlinkSync(`${fdDir}/${fd}`, { encoding: 'utf8' });
        } catch {
          return []; // closed since the listing
        }
        const socket = /^socket:\[(\d+)\]$/.exec(target);
        return socket ? [socket[1]!] : [];
      }),
    );
    assert.ok(inodes.size > 0, 'QEMU has no sockets at all: the check looks at the wrong process');
    const listening: string[] = [];
    for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
      for (const line of (await readFile(table, 'utf8')).split('\n').slice(1)) {
        const fields = line.trim().split(/\s+/);
        // st 0A is LISTEN; the inode is the tenth field.
        if (fields[3] === '0A' && inodes.has(fields[9]!)) listening.push(`${table} ${fields[1]}`);
      }
    }
    return listening;
  }

  describe('with Network\\Enabled false', () => {
    before(async () => {
      const set = await launcher(['reg', 'set', 'Network', 'Enabled', 'false', '--type', 'bool', '--stick', stick.root, '--user', 'nina']);
      assert.equal(set.exitCode, 0, set.stderr);
      await boot();
    });

    it('keeps the card (DHCP still answers) but reaches neither a name nor the host', async () => {
      const status = await launcherJson<{ network: unknown }>(['status', '--stick', stick.root]);
      assert.deepEqual(status.json.network, { mode: 'isolated', leasedAddress: '10.0.2.15' });
      const address = await guest('cat', '/run/pocketvm/network-address');
      assert.equal(address.stdout, '10.0.2.15\n');
      const [asked, served] = [dns.queries.length, http.requests.length];
      const byName = await guest('timeout', '60', 'wget', '-q', '-Y', 'off', '-O', '-', `http://${NAME}:${http.port}/blocked-by-name`);
      assert.notEqual(byName.exitCode, 0, byName.stdout);
      const byAddress = await guest('timeout', '60', 'wget', '-q', '-Y', 'off', '-O', '-', `http://${HOST_FROM_GUEST}:${http.port}/blocked`);
      assert.notEqual(byAddress.exitCode, 0, byAddress.stdout);
      assert.deepEqual(dns.queries.slice(asked), [], 'a DNS query got through');
      assert.deepEqual(http.requests.slice(served), [], 'a request reached the host');
    });

    it('the guest cannot turn it back on', async () => {
      const result = await guest('reg', 'set', 'Network', 'Enabled', 'bool', 'true');
      assert.equal(result.exitCode, 2);
      assert.match(result.stderr, /Network\\ says whether the guest may use the network; it is set from the host/);
    });
  });
});
