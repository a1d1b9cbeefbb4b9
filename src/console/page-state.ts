// What the console page shows, as one value the server pushes to the page on
// every change (server-sent events): signing in, starting, the guest's screen,
// or the last state once the session is over. The page renders it and nothing
// else, so what it shows after a yank or a shutdown is what the launcher knew.
export type PagePhase =
  | { phase: 'sign-in'; users: string[]; error?: string }
  | { phase: 'starting'; message: string; /** QEMU's screen can be shown already (the boot on it). */ screen?: boolean }
  | { phase: 'running'; guest: string; user: string | null; clipboard: boolean }
  | { phase: 'ended'; reason: 'removed' | 'stopped' | 'suspended' | 'ejected' | 'failed'; message: string };

type Listener = (state: PagePhase) => void;

export class PageState {
  #state: PagePhase;
  readonly #listeners = new Set<Listener>();

  constructor(initial: PagePhase) {
    this.#state = initial;
  }

  get current(): PagePhase {
    return this.#state;
  }

  /** An ended page stays ended: nothing after the last state replaces it. */
  set(state: PagePhase): void {
    if (this.#state.phase === 'ended') return;
    this.#state = state;
    for (const listener of this.#listeners) listener(state);
  }

  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    listener(this.#state);
    return () => this.#listeners.delete(listener);
  }
}
