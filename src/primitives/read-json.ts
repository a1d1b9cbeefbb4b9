// Reading a small JSON record that may not exist yet (a guest's state, a
// lock's holder): absent is `undefined`, any other failure is thrown.
import { readFile } from 'node:fs/promises';

export async function readJson<T>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  return JSON.parse(text) as T;
}
