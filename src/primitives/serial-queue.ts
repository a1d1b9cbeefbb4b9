// Runs async functions one after another, each starting when the one before
// has settled (fulfilled or rejected): a check-then-change sequence or a
// read-modify-write never interleaves with another through the same queue.
// A rejection goes to its own caller and does not stop the queue.
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn, fn);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}
