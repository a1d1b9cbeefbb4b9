// Launch step 5: what this launch's guest gets, as providers of channels,
// kernel command-line words and paused-QEMU steps (./feature.ts). With a
// user: their personal disk, their registry, the namespace compiled from
// their tables, a resume if they suspended this guest. Always: `launcher exec`.
// Their order is the machine's: channels, command line and attach steps come
// in this order (a saved state needs the same devices in the same order).
import { deriveStateKey } from '../../auth/state-key.ts';
import type { UnlockedUser } from '../../auth/users.ts';
import type { GuestRegistry } from '../../guestregistry/registry.ts';
import { guestLogPaths, systemOverlayPath } from '../../stick/layout.ts';
import { LOG_LIMITS, type LogWriter, openStickLog } from '../../primitives/capped-log.ts';
import type { ExecService } from '../exec-channel.ts';
import { consoleRootFeature } from '../features/console-root-feature.ts';
import { displayFeature } from '../features/display-feature.ts';
import { diskGenerationFeature } from '../features/disk-generation-feature.ts';
import { execFeature } from '../features/exec-feature.ts';
import { namespaceFeature } from '../features/namespace-feature.ts';
import { personalDiskFeature } from '../features/personal-disk-feature.ts';
import { registryFeature } from '../features/registry-feature.ts';
import { resumeFeature } from '../features/resume-feature.ts';
import { systemDiskFeature } from '../features/system-disk-feature.ts';
import { checkOverlayBase, imageSystemFeature } from '../features/image-system-feature.ts';
import { privateHostDir } from './private-host-dir.ts';
import { overlayBase } from '../system-disk.ts';
import { SystemImageError } from '../../errors.ts';
import type { MachineSizing } from '../sizing.ts';
import { fitMemoryQuota, readUserQuota } from '../user-quotas.ts';
import { sizeBesideOthers } from './size-beside-others.ts';
import { diskRoomAtLaunch, usersRunningGuests } from './user-quota.ts';
import type { StickLimits } from '../stick-limits.ts';
import type { StateContext } from '../suspend.ts';
import type { LaunchFeature } from './feature.ts';
import type { LaunchContext } from './launch-context.ts';
import type { HostReading } from './read-host.ts';
import type { PreparedStick } from './prepare-stick.ts';

export interface LaunchFeatures {
  /** In machine order. */
  features: LaunchFeature[];
  logs: { console: string; qemu: string; session: string };
  /** The launcher's notes beside QEMU's own in the guest's QEMU log. */
  transportLog: Pick<LogWriter, 'line'>;
  execs: ExecService;
  registry?: GuestRegistry;
  limits?: StickLimits;
  /** The guest's size from its manifest, this host and the features' overrides (before any resume's shape). */
  sizing: MachineSizing;
  /** What suspending needs from the login; undefined without a user. */
  stateContext?: StateContext;
  /** The VNC socket the console page bridges (with a page display). */
  vncSocket?: string;
}

export async function openFeatures(ctx: LaunchContext, stick: PreparedStick, host: HostReading, user: UnlockedUser | undefined): Promise<LaunchFeatures> {
  const { options, teardown } = ctx;
  const { layout, payload } = stick;
  const { guest } = options;
  const logs = guestLogPaths(layout, guest);
  // The launcher's notes beside QEMU's own (capped and rate-limited: the guest can provoke some in a loop).
  const transportLog = openStickLog(logs.qemu, LOG_LIMITS.transport);
  teardown.add(() => transportLog.close());
  const log = (message: string) => transportLog.line(`launcher: ${message}`);
  const features: LaunchFeature[] = [];
  const hostDir = privateHostDir(stick.lock, teardown);
  if (user) features.push(personalDiskFeature({ layout, guest, user, onMessage: (message) => ctx.emit({ stage: 'boot', message }) }));
  let chosen: Awaited<ReturnType<typeof overlayBase>> | undefined;
  if (payload.base) {
    // An image guest's system is a user's own overlay: there is none without a user.
    if (!user)
      throw new SystemImageError(`the ${guest} guest boots from a disk image and needs a signed-in user for its system overlay`, {
        details: { reason: 'no-user' },
      });
    chosen = await overlayBase(layout, payload, user.name, guest);
    if (!chosen.current)
      ctx.notice(`a newer ${guest} base is on the stick; ${user.name}'s system stays on its older base until \`launcher upgrade --guest ${guest}\``);
    features.push(
      systemDiskFeature({
        chosen,
        guest,
        user,
        teardown,
        hostDir,
        onMessage: (message) => ctx.emit({ stage: 'boot', message }),
        onCorrupt: (error) => {
          log(error.message);
          ctx.notice(`${error.message}: the guest is being stopped`);
        },
      }),
    );
  }
  const image = options.platform?.image;
  if (image) {
    // A guest made from a catalog image: its system is the user's overlay over the image (src/guests/image-source.ts).
    if (!user)
      throw new SystemImageError(`the ${guest} guest is made from the image ${image.name} and needs a signed-in user for its system overlay`, {
        details: { reason: 'no-user' },
      });
    const overlay = systemOverlayPath(layout, user.name, guest);
    await checkOverlayBase(overlay, image, user.name, guest);
    features.push(imageSystemFeature({ image, overlay, user, onMessage: (message) => ctx.emit({ stage: 'boot', message }) }));
  }
  // The stick owner's quotas for this user (docs/guests.md, "Per-user quotas"): the disk's before anything is made.
  const quota = user ? await readUserQuota(layout, user.name) : {};
  const filesCapBytes =
    user && quota.diskMiB !== undefined
      ? await diskRoomAtLaunch({ layout, user: user.name, guest, quotaMiB: quota.diskMiB, ...(chosen ? { overlay: chosen } : {}) })
      : undefined;
  if (options.consoleAsRoot) features.push(consoleRootFeature());
  let registry: GuestRegistry | undefined;
  let limits: StickLimits | undefined;
  if (user) {
    // The user's registry: its Machine overrides size the guest, its port serves `reg`.
    const opened = await registryFeature({
      layout,
      guest,
      ...(options.payload ? { payload: options.payload } : {}),
      user: user.name,
      profile: host.profile,
      teardown,
      notice: ctx.notice,
      log,
      ...(filesCapBytes === undefined ? {} : { filesCapBytes }),
    });
    ({ registry, limits } = opened);
    features.push(opened.feature);
    features.push(
      await namespaceFeature({
        layout,
        guest,
        user,
        registry: opened.registry,
        manifest: payload.manifest,
        logFile: logs.qemu,
        quota: opened.limits.files,
        teardown,
        notice: ctx.notice,
      }),
    );
  }
  const exec = execFeature();
  features.push(exec.feature);
  // After exec: a screen adds a serial port (the clipboard), and a saved state needs the ports before it in the same order.
  const display = options.display ? await displayFeature(options.display, hostDir) : undefined;
  if (display) features.push(display.feature);
  // Sized before a saved state is looked at: a host too small for the guest is refused either way.
  // The guest's platform (guest config) over the user's registry overrides: the stick's owner sized it.
  const platformSizing = {
    ...(options.platform?.memoryMiB ? { memoryMiB: options.platform.memoryMiB } : {}),
    ...(options.platform?.cpus ? { cpus: options.platform.cpus } : {}),
  };
  // Read the others, size, record: one launch at a time, so two started at the same instant see each other.
  const sizing = await sizeBesideOthers({
    layout,
    lock: stick.lock,
    guest,
    manifest: payload.manifest,
    profile: host.profile,
    overrides: Object.assign({}, ...features.map((feature) => feature.sizing ?? {}), platformSizing),
    ...(user ? { user: user.name, memoryQuotaMiB: quota.memoryMiB } : {}),
  });
  for (const reason of sizing.reasons) log(`sizing: ${reason}`);
  // The session keeps a key for saved states, derived before the disk key is zeroed.
  const stateContext = user ? stateContextFor(ctx, user, host) : undefined;
  if (user && stateContext) {
    // A suspended guest of this user resumes instead of booting (src/session/resume.ts).
    const resume = await resumeFeature({
      layout,
      guest,
      user,
      stateKey: stateContext.key,
      qemu: stick.qemu,
      accelerators: host.plan.candidates,
      profile: host.profile,
    });
    // A saved state's memory is fixed: under the user's memory quota it fits whole or is refused.
    if (resume?.shape && quota.memoryMiB !== undefined && resume.shape.memoryMiB > sizing.memoryMiB)
      fitMemoryQuota({
        user: user.name,
        guest,
        quotaMiB: quota.memoryMiB,
        wantedMiB: resume.shape.memoryMiB,
        minimumMiB: resume.shape.memoryMiB,
        running: await usersRunningGuests(layout, user.name),
        fixed: true,
      });
    // The lock says the size the guest will really have: the next launch shares the host and the quota with that.
    if (resume?.shape && (resume.shape.memoryMiB !== sizing.memoryMiB || resume.shape.cpus !== sizing.cpus))
      await stick.lock.update({ machine: { memoryMiB: resume.shape.memoryMiB, cpus: resume.shape.cpus } });
    if (resume) features.push(resume);
    features.push(diskGenerationFeature({ layout, guest, user, stateContext }));
  }
  return {
    features,
    sizing,
    logs,
    transportLog,
    execs: exec.execs,
    ...(registry ? { registry } : {}),
    ...(limits ? { limits } : {}),
    ...(stateContext ? { stateContext } : {}),
    ...(display?.vncSocket ? { vncSocket: display.vncSocket } : {}),
  };
}

function stateContextFor(ctx: LaunchContext, user: UnlockedUser, host: HostReading): StateContext {
  const stateContext: StateContext = { key: deriveStateKey(user.diskKey), user: user.name, userId: user.id, host: host.profile.fingerprint };
  ctx.teardown.add(() => void stateContext.key.fill(0));
  return stateContext;
}
