// What a launch opened (channel services, logs, the registry, keys to zero),
// closed in reverse: when a later launch step fails, or at the session's end.
// The launch gathers the hooks as it goes; the session it hands them to adds
// its own (control server, watches) and runs them all once QEMU is gone.
export type TeardownHook = () => Promise<void> | void;

export class Teardown {
  readonly #hooks: TeardownHook[] = [];

  /** Runs at teardown, newest first. */
  add(hook: TeardownHook): void {
    this.#hooks.unshift(hook);
  }

  /**
   * Runs every hook once, newest first; a hook that fails is passed over.
   * While `bounded()` says so (the stick is gone: a hook may wait on I/O that
   * never lands) each hook is waited on for at most `boundMs`.
   */
  async run(options: { bounded?: () => boolean; boundMs?: number } = {}): Promise<void> {
    for (const hook of this.#hooks.splice(0)) {
      const done = Promise.resolve()
        .then(hook)
        .catch(() => {});
      await (options.bounded?.() ? Promise.race([done, new Promise((resolve) => setTimeout(resolve, options.boundMs ?? 1_000).unref())]) : done);
    }
  }
}
