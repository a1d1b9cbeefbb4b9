// A stable name for "this host" that reveals nothing about it: a salted hash
// of facts that identify the machine. The salt lives on the stick, so the same
// host hashes differently on two sticks and the hash cannot be looked up.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, hostname, platform, release } from 'node:os';
import { dirname } from 'node:path';

async function stickSalt(saltFile: string): Promise<string> {
  try {
    const salt = (await readFile(saltFile, 'utf8')).trim();
    if (/^[0-9a-f]{64}$/.test(salt)) return salt;
  } catch {
    // first use on this stick
  }
  const salt = randomBytes(32).toString('hex');
  await mkdir(dirname(saltFile), { recursive: true });
  await writeFile(saltFile, `${salt}\n`);
  return salt;
}

export async function hostFingerprint(saltFile: string): Promise<string> {
  const salt = await stickSalt(saltFile);
  const facts = [platform(), hostname(), release(), cpus()[0]?.model ?? '?', String(cpus().length)].join('\0');
  return createHash('sha256').update(salt).update('\0').update(facts).digest('hex').slice(0, 32);
}
