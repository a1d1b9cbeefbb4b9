// `launcher status`: is a guest running from this stick, and how is it.
import type { Command } from 'commander';
import { NoSessionError, PocketError } from '../../errors.ts';
import { sendControl } from '../../session/control-client.ts';
import { describeNetwork } from '../../session/network-setting.ts';
import { stickLayout } from '../../stick/layout.ts';
import { describeHolder } from '../../stick/lock.ts';
import type { SessionLock } from '../../stick/session-locks.ts';
import { resolveStickRoot } from '../../stick/stick-root.ts';
import type { Output } from '../output.ts';
import { jsonOption, runningGuestOption, stickOption } from './options.ts';
import { findSessions } from '../running-guest.ts';

export function registerStatus(program: Command, output: () => Output): void {
  const command = program.command('status').description('show the session running from the stick (exit 8 when none)');
  stickOption(command);
  runningGuestOption(command);
  jsonOption(command);
  command.action(async (options: { stick?: string; guest?: string }) => {
    const out = output();
    const stick = stickLayout(resolveStickRoot(options.stick));
    const found = await findSessions(stick, options.guest, 'status');
    if (found.live.length === 0) {
      const holder = found.stale?.holder;
      if (!holder) throw new NoSessionError(stick.root);
      // A dead session's lock: say so (the stick was pulled out, or the launcher killed).
      throw new PocketError(
        'noSession',
        `no guest is running from ${stick.root}; the last session, ${describeHolder(holder)}, did not end cleanly (the stick was pulled out, or the launcher was killed)`,
        {
          hint: 'the next launcher run checks and repairs what it left',
          details: {
            stickRoot: stick.root,
            lastSession: { command: holder.command, pid: holder.pid, hostname: holder.hostname, startedAt: holder.startedAt },
          },
        },
      );
    }
    // Several guests running and none named: each one's status, a JSON array of them.
    if (found.live.length === 1) {
      out.data(await statusOf(found.live[0]!, out));
      return;
    }
    const all: unknown[] = [];
    for (const session of found.live) all.push(await statusOf(session, out));
    out.data(all);
  });
}

/** One session's status: its lines printed, its JSON document returned. */
async function statusOf(session: SessionLock, out: Output): Promise<unknown> {
  const { holder, layout } = session;
  if (holder.state !== 'ready' || !holder.control) {
    out.line(`${holder.guest ?? 'a guest'} is ${holder.state ?? 'starting'}: ${describeHolder(holder)}`);
    if (holder.page) out.line(`  console page ${holder.page.address}`);
    return { state: holder.state ?? 'starting', holder, ...(holder.page ? { page: holder.page } : {}) };
  }
  const status = await sendControl(layout, 'status', {});
  out.line(`${status.guest}: ${status.state}  (up ${status.uptimeSeconds} s, ${status.accelerator}, ${status.memoryMiB} MiB, ${status.cpus} vCPU)`);
  if (status.stickFull) out.line(`  ${status.stickFull.message} (since ${status.stickFull.since})`);
  for (const full of [status.storage?.files.full, status.storage?.registry?.full]) if (full) out.line(`  ${full.message} (since ${full.since})`);
  if (status.storage) {
    const { files, registry } = status.storage;
    const mib = (bytes: number) => `${Math.ceil(bytes / 1024 ** 2)}`;
    out.line(
      `  the guest's writes to the stick: /host ${mib(files.usedBytes)} of ${mib(files.capBytes)} MiB${registry ? `, registry ${Math.ceil(registry.bytes / 1024)} of ${Math.floor(registry.limits.totalBytes / 1024)} KiB` : ''} (Storage\\ in the registry)`,
    );
  }
  if (status.network) out.line(`  ${describeNetwork(status.network)}`);
  out.line(`  session pid ${status.pid}, QEMU pid ${status.qemuPid}, stick ${status.stick}`);
  if (status.user) out.line(`  user ${status.user} (home on an encrypted disk)`);
  if (status.page) out.line(`  console page ${status.page.address}`);
  out.line(`  logs: ${status.logs.console}`);
  return status;
}
