// What every launch step is given besides its own input: the caller's
// options, this host's adapter, where events and notices go, the teardown the
// step adds what it opens to, and the launch's cancellation.
import type { UnlockedUser } from '../../auth/users.ts';
import { PocketError } from '../../errors.ts';
import type { HostAdapter } from '../../hostprobe/host-adapter.ts';
import type { LaunchEvent, LaunchOptions } from './launch-options.ts';
import { Teardown } from './teardown.ts';

export interface LaunchContext {
  readonly options: LaunchOptions;
  readonly host: HostAdapter;
  /** performance.now() at the launch call. */
  readonly started: number;
  readonly emit: (event: LaunchEvent) => void;
  readonly notice: (message: string) => void;
  /** What the steps opened, closed in reverse when a later step fails or at the session's end. */
  readonly teardown: Teardown;
  /**
   * The person the launch runs for, once known (given, or signed in). The
   * launch zeroes their disk key when it ends, and a stick pulled out during
   * the launch is reported with or without a disk at risk.
   */
  user: UnlockedUser | undefined;
  /** Throws `interrupted` once the caller cancelled the launch (src/cli/session-runner.ts). */
  checkCancelled(): void;
}

export function interrupted(): PocketError {
  return new PocketError('interrupted', 'interrupted before the guest was ready');
}

export function launchContext(options: LaunchOptions, host: HostAdapter): LaunchContext {
  return {
    options,
    host,
    started: performance.now(),
    emit: options.onEvent ?? (() => {}),
    notice: (message) => options.onNotice?.(message),
    teardown: new Teardown(),
    user: options.user,
    checkCancelled: () => {
      if (options.signal?.aborted) throw interrupted();
    },
  };
}
